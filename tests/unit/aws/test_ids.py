"""Message and request ids: RFC 4122 version-4 UUID text, unique."""

from __future__ import annotations

import uuid

from dovecote.aws.ids import uuid4_text


def test_ids_are_version_4_uuids_and_do_not_repeat():
    seen = set()
    for _ in range(10_000):
        text = uuid4_text()
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122
        seen.add(text)
    assert len(seen) == 10_000
