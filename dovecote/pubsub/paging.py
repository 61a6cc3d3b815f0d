"""List pagination as Google's List* RPCs do it: ``page_size`` (0 = all) and an
opaque ``page_token`` (here: the last name of the previous page)."""

from __future__ import annotations

import bisect

from dovecote.pubsub.rpc import invalid


def page(sorted_names: list[str], page_size: int, page_token: str) -> tuple[list[str], str]:
    """One page of ``sorted_names`` and the token of the next ('' at the end)."""
    if page_size < 0:
        raise invalid("The value for page_size is too small. It must be at least 0.")
    start = bisect.bisect_right(sorted_names, page_token) if page_token else 0
    if page_size == 0:
        return sorted_names[start:], ""
    chunk = sorted_names[start : start + page_size]
    more = start + page_size < len(sorted_names)
    return chunk, chunk[-1] if more and chunk else ""
