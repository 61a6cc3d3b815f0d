"""Random version-4 UUID text for message and request ids, without a syscall each.

``uuid.uuid4()`` reads 16 bytes from the OS per call (about 6 us here, more
than the rest of a message's bookkeeping); ids need to be unique, not secret,
so they come from a generator seeded once from the OS.
"""

from __future__ import annotations

import os
import random

_random = random.Random(os.urandom(32))
_VERSION_4 = (0x4 << 76) | (0x2 << 62)  # version nibble and RFC 4122 variant bits
_KEEP = ~((0xF << 76) | (0x3 << 62)) & ((1 << 128) - 1)


def uuid4_text() -> str:
    """``xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx`` from 128 random bits."""
    value = (_random.getrandbits(128) & _KEEP) | _VERSION_4
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def reseed_after_fork() -> None:
    """A forked child must not repeat its parent's ids."""
    _random.seed(os.urandom(32))


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=reseed_after_fork)
