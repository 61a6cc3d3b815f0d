"""Request checks shared by the Pub/Sub services, with Google's texts."""

from __future__ import annotations

import re
from collections.abc import Mapping

from dovecote.pubsub.rpc import invalid

_LABEL_KEY = re.compile(r"[\w\-]{0,63}", re.UNICODE)
MAX_LABELS = 64


def check_labels(labels: Mapping[str, str]) -> None:
    """Google's label rules: at most 64; keys 1-63 characters starting with a
    lowercase letter, of lowercase letters, digits, ``_`` and ``-``; values up
    to 63 of the same."""
    if len(labels) > MAX_LABELS:
        raise invalid(f"Too many labels: at most {MAX_LABELS} are allowed.")
    for key, value in labels.items():
        if not key or not key[0].islower() or not _label_text(key):
            raise invalid(f"Invalid label key: '{key}'.")
        if not _label_text(value):
            raise invalid(f"Invalid label value: '{value}'.")


def _label_text(text: str) -> bool:
    return bool(_LABEL_KEY.fullmatch(text)) and text == text.lower()


def duration_ms(duration: object) -> int:
    """A google.protobuf.Duration in milliseconds."""
    seconds = getattr(duration, "seconds", 0)
    nanos = getattr(duration, "nanos", 0)
    return int(seconds) * 1000 + int(nanos) // 1_000_000


def mask_paths(request: object, message: str) -> list[str]:
    """The paths of an Update*Request's ``update_mask``; an empty mask gets the
    text Google's emulator sends (``message``: Topic, Subscription, Snapshot)."""
    paths = list(request.update_mask.paths)  # type: ignore[attr-defined]
    if not paths:
        raise invalid(
            f"The update_mask in the Update{message}Request must be set, and must contain a "
            "non-empty paths list."
        )
    return paths
