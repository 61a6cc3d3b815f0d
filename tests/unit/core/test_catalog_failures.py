"""A catalog write that fails (disk full) leaves nothing behind: the change
does not come back on the next start, and the next change's line is whole."""

from __future__ import annotations

import asyncio
import errno
import os

import pytest

from dovecote.core import catalog as catalog_module
from dovecote.core.catalog import Catalog


def test_a_failed_write_is_cut_off_the_file(tmp_path, monkeypatch):
    async def run() -> None:
        catalog = Catalog(tmp_path)
        catalog.load()
        await catalog.put("topic", "a", {"n": 1})
        size = os.path.getsize(catalog.path)

        real_pwrite = os.pwrite

        def half_then_full(fd, data, offset):
            if fd == catalog._fd:
                real_pwrite(fd, bytes(data[: len(data) // 2]), offset)  # a torn line
                raise OSError(errno.ENOSPC, "No space left on device")
            return real_pwrite(fd, data, offset)

        monkeypatch.setattr(catalog_module.os, "pwrite", half_then_full)
        with pytest.raises(OSError):
            await catalog.put("topic", "b", {"n": 2})
        assert os.path.getsize(catalog.path) == size
        assert catalog.get("topic", "b") is None
        monkeypatch.setattr(catalog_module.os, "pwrite", real_pwrite)

        await catalog.put("topic", "c", {"n": 3})
        catalog.close()
        reopened = Catalog(tmp_path)
        reopened.load()
        assert sorted(reopened.items("topic")) == ["a", "c"]
        reopened.close()

    asyncio.run(run())
