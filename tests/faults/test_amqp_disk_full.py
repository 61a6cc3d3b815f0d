"""Disk full through AMQP: the broker's data directory is a small tmpfs.

* Without the disk alarm (``disk_free_limit_bytes`` = 0) a pika publisher
  with confirms fills the disk: what does not fit is nacked (basic.nack),
  never confirmed and never half-stored, and the connection stays up.
* The broker survives SIGKILL on the full disk and restarts on it with the
  alarm on (RabbitMQ's disk watermark): publishing connections get
  connection.blocked and are no longer read, so a confirm waits instead of
  failing; once space returns the alarm clears, connection.unblocked
  arrives and the waiting publishes are stored and confirmed.
* Every confirmed message is there at the end; a message appears twice only
  if it was sent twice (republished after a nack).
"""

from __future__ import annotations

import threading
import time

import pika.exceptions

from tests.faults.amqp import PERSISTENT, connect, declare, read_queue, wait_for
from tests.faults.disk import free_bytes, top_off
from tests.faults.harness import Broker

QUEUE = "full-q"
FILLER_MB = 1
PAD = b"." * (16 << 10)
ALARM_LIMIT = 256 << 10  # free bytes below which the disk alarm blocks publishers
AFTER = 20  # messages confirmed once space is back


def depth(broker: Broker) -> int:
    connection = connect(broker)
    try:
        return connection.channel().queue_declare(QUEUE, passive=True).method.message_count
    finally:
        connection.close()


def message(n: int) -> bytes:
    return b"%d:" % n + PAD


class Publisher:
    """Publishes numbered messages with confirms, one at a time, from a thread;
    a nacked number is sent again."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.confirmed: list[int] = []
        self.sends: dict[int, int] = {}
        self.nacks = 0
        self.errors: list[str] = []
        self.stop = threading.Event()
        self.limit: int | None = None  # stop after this many confirmed
        self.n = 0

    def run(self) -> None:
        connection = connect(self.broker)
        try:
            channel = connection.channel()
            channel.confirm_delivery()
            while not self.stop.is_set() and (
                self.limit is None or len(self.confirmed) < self.limit
            ):
                self.sends[self.n] = self.sends.get(self.n, 0) + 1
                try:
                    channel.basic_publish("", QUEUE, message(self.n), PERSISTENT)
                except pika.exceptions.NackError:
                    self.nacks += 1
                    continue
                self.confirmed.append(self.n)
                self.n += 1
        except Exception as exc:
            self.errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            if connection.is_open:
                connection.close()


def test_amqp_disk_full_nacks_blocks_and_recovers(small_disk, fault_report):
    data = small_disk
    filler = data / "filler"
    filler.write_bytes(b"\0" * (FILLER_MB << 20))
    no_alarm = {"disk_free_limit_bytes": "0", "alarm_check_interval_ms": "100"}
    broker = Broker(data, amqp=True, settings=no_alarm).start()
    publisher = Publisher(broker)
    blocked: list[str] = []
    crashes = 0
    try:
        declare(broker, QUEUE)
        # 1. No alarm: the disk fills; what does not fit is nacked.
        publisher.stop.clear()
        filling = threading.Thread(target=publisher.run)
        filling.start()
        assert wait_for(lambda: publisher.nacks >= 3 or publisher.errors, 60), "never filled"
        publisher.stop.set()
        filling.join(30)
        assert not publisher.errors, (
            f"the publisher failed instead of being nacked: {publisher.errors}"
        )
        top_off(data / "top-off")
        assert free_bytes(data) == 0
        full_at = len(publisher.confirmed)
        assert depth(broker) >= full_at, "the queue's depth is readable on a full disk"
        assert broker.check()

        # 2. SIGKILL on the full disk, restart with the disk alarm on.
        broker.kill()
        broker.env = broker.env | {"DOVECOTE_DISK_FREE_LIMIT_BYTES": str(ALARM_LIMIT)}
        broker.start()
        watcher = connect(broker)
        watcher.add_on_connection_blocked_callback(lambda _c, m: blocked.append(m.method.reason))
        watcher.add_on_connection_unblocked_callback(lambda _c, _m: blocked.append("unblocked"))
        publisher.stop.clear()
        publisher.limit = full_at + AFTER
        waiting = threading.Thread(target=publisher.run)
        waiting.start()
        watcher.channel().basic_publish("", "no-such-queue", b"x")  # publishing: gets blocked

        def seen(what: str) -> bool:
            watcher.process_data_events(0.05)
            return any(what in reason for reason in blocked)

        assert wait_for(lambda: seen("low on disk"), 30), f"no connection.blocked: {blocked}"
        before = len(publisher.confirmed)
        time.sleep(0.5)
        assert len(publisher.confirmed) == before, "confirmed while blocked on a full disk"

        # 3. Space returns: unblocked, the waiting publishes are confirmed.
        filler.unlink()
        (data / "top-off").unlink()
        assert wait_for(lambda: seen("unblocked"), 30), f"no connection.unblocked: {blocked}"
        waiting.join(60)
        watcher.close()
        assert not publisher.errors, publisher.errors
        assert len(publisher.confirmed) >= full_at + AFTER, "publishing did not resume"
        assert broker.stop() == 0, broker.log_tail()
        broker.start()
        stored = read_queue(broker, QUEUE)
    finally:
        publisher.stop.set()
        broker.stop()
        crashes = broker.crashes

    numbers = [int(body.split(b":", 1)[0]) for body in stored]
    present = set(numbers)
    lost = [n for n in publisher.confirmed if n not in present]
    duplicates = len(numbers) - len(present)
    unexplained = [n for n in present if numbers.count(n) > publisher.sends.get(n, 0)]
    fault_report(
        "disk full (AMQP, tmpfs)",
        runs=1,
        acknowledged=len(publisher.confirmed),
        lost=len(lost),
        duplicates=duplicates,
        crashes=crashes,
        nacked=publisher.nacks,
        blocked=sum(1 for b in blocked if b != "unblocked"),
        unblocked=blocked.count("unblocked"),
    )
    assert crashes == 0
    assert not lost, f"{len(lost)} confirmed messages lost, e.g. {lost[:5]}"
    assert not unexplained, f"stored more often than sent: {unexplained[:5]}"
