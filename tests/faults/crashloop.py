"""What the crash-loop scenarios share: a worker thread that runs until told
to stop, the loop that SIGKILLs the broker at random moments and restarts
it on the same ports, and the order check on first appearances."""

from __future__ import annotations

import bisect
import random
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from tests.faults.harness import Broker


@dataclass(kw_only=True)
class Worker:
    """A daemon thread running :meth:`_run` until :attr:`stop` is set; what
    it could not make sense of goes to :attr:`errors` (a finding, not a
    restart)."""

    errors: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Worker:
        self._thread = threading.Thread(target=self._run, name=type(self).__name__, daemon=True)
        self._thread.start()
        return self

    def join(self, timeout: float) -> None:
        self.stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        raise NotImplementedError


@dataclass
class Lives:
    """When each life of the broker began (``ups``: its start returned) and
    ended (``kills``: appended just before each SIGKILL). Between a kill and
    the next start nobody serves."""

    kills: list[float] = field(default_factory=list)
    ups: list[float] = field(default_factory=list)
    restarts: list[float] = field(default_factory=list)  # seconds each restart took

    @property
    def current(self) -> int:
        return len(self.kills)

    def serving(self, when: float) -> int | None:
        """The life whose broker was serving at ``when``, None if none was."""
        life = bisect.bisect_right(self.ups, when) - 1
        if life < 0 or (life < len(self.kills) and when >= self.kills[life]):
            return None
        return life

    def age_at_kill(self, life: int, when: float) -> float | None:
        """How long before the end of ``life`` ``when`` was; None for the last life."""
        return self.kills[life] - when if life < len(self.kills) else None


def kill_loop(broker: Broker, rng: random.Random, count: int, lives: Lives) -> None:
    """``count`` SIGKILLs at random moments (now and then two in quick
    succession), each followed by a restart on the same ports; a death we did
    not cause ends a life too, is restarted and is counted by the broker."""
    if not lives.ups:
        lives.ups.append(time.monotonic())
    for _ in range(count):
        time.sleep(rng.uniform(0, 0.3) if rng.random() < 0.3 else rng.uniform(0.15, 0.6))
        lives.kills.append(time.monotonic())
        if broker.check():
            broker.kill()
            time.sleep(rng.uniform(0, 0.1))
        # else: a crash, counted by the broker; its life ends here too
        restarting = time.monotonic()
        broker.start()
        lives.ups.append(time.monotonic())
        lives.restarts.append(lives.ups[-1] - restarting)


def first_appearances(values: list[int]) -> list[int]:
    """Each value where it first appears: the order a redelivery cannot spoil."""
    seen: set[int] = set()
    return [v for v in values if not (v in seen or seen.add(v))]


def assert_survived(broker: Broker, workers: list[Worker], seed: int) -> None:
    """The broker never died on its own, and no worker met what it could
    not make sense of."""
    assert broker.crashes == 0, f"seed {seed}: broker died on its own:\n" + "\n".join(
        broker.crash_logs
    )
    errors = [e for w in workers for e in w.errors]
    assert not errors, f"seed {seed}: {errors[:5]}"


def assert_settlements_kept(
    found: Iterable[dict], seed: int, window: float, what: str = "acks"
) -> None:
    """No settlement (ack, delete) came undone without a kill, nor by a kill
    more than ``window`` after it was made; ``found`` holds each queue's or
    subscription's ``undone_without_kill`` and ``undone_acks`` (ages)."""
    found = list(found)
    without_kill = [n for f in found for n in f["undone_without_kill"]]
    assert not without_kill, f"seed {seed}: {what} undone with no kill: {without_kill[:10]}"
    undone = [age for f in found for age in f["undone_acks"]]
    assert not undone, (
        f"seed {seed}: {len(undone)} {what} made more than {window}s before a kill "
        f"were undone by it (oldest {max(undone):.2f}s)"
    )
