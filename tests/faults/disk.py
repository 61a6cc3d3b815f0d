"""A small disk for the disk-full scenarios: a tmpfs the test mounts as the
broker's data directory, and ways to take its last free bytes.

Mounting needs root (or CAP_SYS_ADMIN), which CI has. Without it the test
fails and says so: a reliability suite that quietly skips its disk-full case
would report a guarantee it never checked. ``DOVECOTE_FAULTS_NO_MOUNT=1``
turns the failure into an explicit skip on machines where that is known.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

SIZE_MB = 6


@contextmanager
def mounted_tmpfs(mount: Path, size_mb: int = SIZE_MB) -> Iterator[Path]:
    """A tmpfs of ``size_mb`` at ``mount`` (created), unmounted afterwards."""
    mount.mkdir()
    command = ["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "dovecote-full", str(mount)]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        message = (
            f"the disk-full test mounts a {size_mb} MiB tmpfs and could not "
            f"({' '.join(command)}: {result.stderr.strip() or result.returncode}); run it as root "
            "or with CAP_SYS_ADMIN, or set DOVECOTE_FAULTS_NO_MOUNT=1 to skip it knowingly"
        )
        if os.environ.get("DOVECOTE_FAULTS_NO_MOUNT") == "1":
            pytest.skip(message)
        pytest.fail(message, pytrace=False)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def grow(mount: Path, size_mb: int) -> None:
    subprocess.run(
        ["mount", "-o", f"remount,size={size_mb}m", str(mount)], check=True, capture_output=True
    )


def top_off(path: Path) -> None:
    """Take the last free bytes too: a refused write leaves a few pages that
    small writes (a group commit) would still fit in."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        for size in (1 << 16, 4096, 512, 1):
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError:
                continue
    finally:
        os.close(fd)


def free_bytes(path: Path) -> int:
    stat = os.statvfs(path)
    return stat.f_bavail * stat.f_frsize
