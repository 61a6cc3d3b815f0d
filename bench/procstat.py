"""CPU time and memory of a running broker, read from /proc.

Single-connection workloads are often bound by the Python client, not the
broker, so a throughput ratio alone can hide what the broker costs. The
broker's own CPU per record is the steadier figure; this module finds a
peer's processes and reads their CPU time and resident memory.
"""

from __future__ import annotations

import os
from pathlib import Path

from bench.peers._proc import PeerInfo, _proc_stat, descendants

_TICK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def _pids_by_cmdline(needle: str) -> list[int]:
    """Processes whose command line mentions ``needle`` (a peer's data dir)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if needle in cmdline:
            found.append(int(entry.name))
    return found


def broker_pids(info: PeerInfo) -> list[int]:
    """The peer's processes and all their descendants.

    Peers started through ``PeerProcess`` list their process groups in
    ``pgids``; a Dovecote peer may not, so it is found by its data directory
    on the command line (``dovecote serve --data-dir <data_dir>/...``).
    """
    roots = list(info.pgids) or _pids_by_cmdline(str(info.data_dir))
    pids = set(roots)
    for root in roots:
        pids.update(p.pid for p in descendants(root))
    return sorted(pids)


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time used so far by ``pids`` (threads included)."""
    ticks = 0
    for pid in pids:
        row = _proc_stat(pid)
        if row is not None:
            ticks += int(row[11]) + int(row[12])  # utime, stime
    return ticks / _TICK


def rss_bytes(pids: list[int]) -> int:
    """Resident memory of ``pids`` now (sum; shared pages are counted per process)."""
    total = 0
    for pid in pids:
        try:
            pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
        except (OSError, IndexError, ValueError):
            continue
        total += pages * _PAGE
    return total


class CpuMeter:
    """``with CpuMeter(pids) as m: ...`` then ``m.seconds``: broker CPU used inside the block."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids
        self.seconds = 0.0

    def __enter__(self) -> CpuMeter:
        self._start = cpu_seconds(self.pids)
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = cpu_seconds(self.pids) - self._start
