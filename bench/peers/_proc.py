"""Start, watch and stop one peer broker process without leaving anything behind.

Every peer starter uses :class:`PeerProcess` so that they all behave the same:
their own session (so stop reaches helpers they spawn), a log file in their
data directory (so a failed start can show why), a bounded wait for
readiness, and SIGTERM then SIGKILL on stop.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

HOST = "127.0.0.1"


class PeerStartError(RuntimeError):
    """A peer did not become ready; the message carries its log tail."""


@dataclass(frozen=True)
class PeerInfo:
    """What a workload needs to talk to a running peer, and how it was started."""

    name: str
    host: str
    port: int
    version: str
    startup_s: float
    command: tuple[str, ...]
    data_dir: Path
    extra: Mapping[str, str] = field(default_factory=dict)
    #: Process-group leaders started for this peer, so a caller can verify
    #: that nothing is left once the context manager has exited.
    pgids: tuple[int, ...] = ()

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


def _die_with_parent(argv: list[str]) -> list[str]:
    """Prefix ``argv`` so the peer gets SIGKILL if the harness itself dies.

    This is the guarantee that a crashed or killed benchmark run does not
    leave brokers running. ``setpriv`` (util-linux, Essential in Debian) sets
    PR_SET_PDEATHSIG and execs the peer; that avoids a ``preexec_fn``, which
    is unsafe once client libraries have started threads. The signal is tied
    to the thread that started the peer.
    """
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "KILL", "--", *argv] if setpriv else argv


def make_data_dir(peer: str, base_dir: str | Path | None) -> Path:
    """A fresh private directory for one peer run (under ``base_dir`` if given)."""
    if base_dir is not None:
        Path(base_dir).mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"dovecote-bench-{peer}-", dir=base_dir))


class PeerProcess:
    """One child process in its own process group, logging to ``log_path``."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        log_path: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        extra_logs: tuple[Path, ...] = (),
    ) -> None:
        self.name = name
        self.extra_logs = extra_logs  # other log files worth showing when start fails
        self.argv = argv
        self.log_path = log_path
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0

    def start(self) -> PeerProcess:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                _die_with_parent(self.argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
            )
        self.started_at = time.monotonic()
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None, "not started"
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        tails = []
        for path in (self.log_path, *self.extra_logs):
            try:
                text = path.read_text(errors="replace")
            except FileNotFoundError:
                continue
            tail = "\n".join(text.splitlines()[-lines:])
            tails.append(tail if path == self.log_path else f"--- {path}:\n{tail}")
        return "\n".join(t for t in tails if t) or "(log is empty)"

    def wait_ready(self, probe: Callable[[], T | None], timeout: float, interval: float = 0.1) -> T:
        """Poll ``probe`` until it returns a value; fail fast if the process exits.

        Bounded by ``timeout`` seconds; the error shows the peer's log tail.
        Polls every 10 ms at first, backing off to ``interval``, so fast peers'
        start-up times are not rounded up to the polling interval.
        """
        deadline = time.monotonic() + timeout
        last_error: Exception | None = None
        pause = min(0.01, interval)
        while True:
            if not self.alive():
                code = self.proc.returncode if self.proc else None
                raise PeerStartError(
                    f"{self.name} exited with code {code} before it was ready.\n"
                    f"command: {' '.join(self.argv)}\nlog {self.log_path} (tail):\n{self.log_tail()}"
                )
            try:
                value = probe()
            except Exception as exc:  # the probe's failures mean "not yet"
                last_error = exc
                value = None
            if value is not None:
                return value
            if time.monotonic() >= deadline:
                raise PeerStartError(
                    f"{self.name} was not ready after {timeout:.0f}s "
                    f"(last probe error: {last_error!r}).\n"
                    f"command: {' '.join(self.argv)}\nlog {self.log_path} (tail):\n{self.log_tail()}"
                )
            time.sleep(pause)
            pause = min(pause * 2, interval)

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM the process group, SIGKILL it after ``timeout``; return the exit code.

        Helpers that left the group (Erlang's port programs call setsid) are
        found as descendants before the stop and killed if they outlive it.
        """
        if self.proc is None:
            return None
        pgid = self.proc.pid  # leader of its own session, so pgid == pid
        helpers = set(descendants(pgid))
        if self.proc.poll() is None:
            _signal_group(pgid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            # Poll rather than wait(): helpers spawned during shutdown count too.
            while self.proc.poll() is None and time.monotonic() < deadline:
                helpers.update(descendants(pgid))
                time.sleep(0.05)
            if self.proc.poll() is None:
                _signal_group(pgid, signal.SIGKILL)
                self.proc.wait(5)
        _signal_group(pgid, signal.SIGKILL)
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            left = [p for p in helpers if p.alive()]
            if not left and not group_alive(pgid):
                break
            for p in left:
                p.kill()
            time.sleep(0.05)
        else:
            print(f"warning: {self.name} left processes behind: {left}", file=sys.stderr)
        return self.proc.returncode


@dataclass(frozen=True)
class _Proc:
    """A process identified by pid and start time, so a reused pid is not mistaken for it."""

    pid: int
    start: str

    def alive(self) -> bool:
        row = _proc_stat(self.pid)
        return row is not None and row[0] != "Z" and row[19] == self.start

    def kill(self) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(self.pid, signal.SIGKILL)


def _proc_stat(pid: int | str) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name: state, ppid, pgrp, ..."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _proc_table() -> dict[int, list[str]]:
    table = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (row := _proc_stat(entry.name)) is not None:
            table[int(entry.name)] = row
    return table


def descendants(pid: int) -> list[_Proc]:
    """All live descendants of ``pid`` (any process group or session)."""
    table = _proc_table()
    children: dict[int, list[int]] = {}
    for child, row in table.items():
        children.setdefault(int(row[1]), []).append(child)
    found: list[_Proc] = []
    stack = list(children.get(pid, []))
    while stack and len(found) < 10_000:
        child = stack.pop()
        found.append(_Proc(child, table[child][19]))
        stack.extend(children.get(child, []))
    return found


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def group_alive(pgid: int) -> bool:
    """True while any process of the group still exists (zombies excluded)."""
    return any(row[2] == str(pgid) and row[0] != "Z" for row in _proc_table().values())


@contextlib.contextmanager
def running(
    process: PeerProcess, data_dir: Path, keep_data: bool, stop_timeout: float
) -> Iterator[PeerProcess]:
    """Start ``process``; always stop it and (unless kept) remove ``data_dir``.

    The data directory is kept when the start failed, so its logs can be read.
    """
    failed = False
    process.start()
    try:
        yield process
    except PeerStartError:
        failed = True
        raise
    finally:
        process.stop(stop_timeout)
        if not keep_data and not failed:
            shutil.rmtree(data_dir, ignore_errors=True)


def tcp_accepts(host: str, port: int, timeout: float = 0.5) -> bool:
    """True if a TCP connection to host:port is accepted."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def recv_until(
    sock: socket.socket, predicate: Callable[[bytes], bool], limit: int = 1 << 20
) -> bytes:
    """Read from ``sock`` until ``predicate(data)`` holds (bounded by ``limit`` bytes)."""
    data = b""
    while not predicate(data):
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("peer closed the connection")
        data += chunk
        if len(data) > limit:
            raise ConnectionError("reply too large")
    return data
