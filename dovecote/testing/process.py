"""A broker in a child process: what crash tests kill with SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from dovecote.settings import LISTENERS


class BrokerProcess:
    """``dovecote serve`` as a subprocess on free loopback ports.

    ``extra_args`` are passed to ``serve``; the bound addresses are read from
    the ready file the server writes once it is serving. ``env`` replaces the
    child's environment (default: this process's)."""

    def __init__(
        self,
        data_dir: str | Path,
        *extra_args: str,
        listeners: dict[str, str] | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.extra_args = list(extra_args)
        self.env = env
        self.listeners = {name: "127.0.0.1:0" for name in LISTENERS}
        if listeners:
            self.listeners.update(listeners)
        self.proc: subprocess.Popen[bytes] | None = None
        self.addresses: dict[str, str] = {}
        self.log_path = self.data_dir.parent / f"{self.data_dir.name}.broker.log"

    def start(self, timeout: float = 60) -> BrokerProcess:
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        ready = self.data_dir.parent / f"{self.data_dir.name}.ready.json"
        ready.unlink(missing_ok=True)
        args = [sys.executable, "-m", "dovecote", "serve", "--data-dir", str(self.data_dir)]
        for name, address in self.listeners.items():
            args += [f"--{name}", address]
        args += ["--ready-file", str(ready), *self.extra_args]
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=self.env)
        log.close()
        deadline = time.monotonic() + timeout
        while not ready.exists():
            if self.proc.poll() is not None:
                raise RuntimeError(f"broker exited with {self.proc.returncode}:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                self.kill()
                raise TimeoutError(f"broker did not start in {timeout}s:\n{self.log_tail()}")
            time.sleep(0.02)
        self.addresses = json.loads(ready.read_text())
        # Once ports are known, keep them for restarts so clients can reconnect.
        self.listeners.update(self.addresses)
        return self

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""

    def kill(self) -> None:
        """SIGKILL: no flush, no clean-shutdown marker."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM and wait: the clean shutdown path. Returns the exit code."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.proc.returncode

    @property
    def kafka_bootstrap(self) -> str:
        return self.addresses["kafka"]

    @property
    def amqp_url(self) -> str:
        return f"amqp://guest:guest@{self.addresses['amqp']}/"

    @property
    def aws_endpoint(self) -> str:
        return f"http://{self.addresses['aws']}"

    @property
    def pubsub_host(self) -> str:
        """``host:port`` of the Pub/Sub listener, for ``PUBSUB_EMULATOR_HOST``."""
        return self.addresses["pubsub"]

    def __enter__(self) -> BrokerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
