"""Consumer-group timings: Dovecote vs Tansu in one run, same client (librdkafka).

    python -m bench.groups [--repeats 3]

- failover: three members share a six-partition topic under steady produce;
  one is killed with SIGKILL; the figure is the time until a survivor consumes
  a record produced after the kill from one of the dead member's partitions.
  It is bounded below by the session timeout (6 s here), which is the point
  of reporting it: the broker's own share is what is left.
- scale-out: three more members join a stable group of three; the figure is
  the time until all six own one partition each and each has consumed.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
import uuid
from pathlib import Path

import confluent_kafka

from bench.common import Result, append_results, summarize
from bench.drivers.kafka import KafkaDriver
from bench.kafka_member import MemberProcess
from bench.peers.dovecote import dovecote
from bench.peers.tansu import tansu

COMMAND = "python -m bench.groups " + " ".join(sys.argv[1:])
SESSION_TIMEOUT_S = 6.0
PARTITIONS = 6


class Feeder:
    """Produces a small record to every partition in turn until stopped."""

    def __init__(self, bootstrap: str, topic: str, rate: int = 600) -> None:
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(bootstrap, topic, rate), daemon=True)
        self.thread.start()

    def _run(self, bootstrap: str, topic: str, rate: int) -> None:
        producer = confluent_kafka.Producer({"bootstrap.servers": bootstrap, "linger.ms": 1})
        i = 0
        while not self.stop.is_set():
            producer.produce(topic, b"%f" % time.time(), partition=i % PARTITIONS)
            producer.poll(0)
            i += 1
            time.sleep(1 / rate)
        producer.flush(10)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(10)


def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    driver = KafkaDriver(bootstrap)
    try:
        driver.create(topic, partitions)
    finally:
        driver.close()


def wait_for(predicate, timeout: float) -> float:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return time.time()
        time.sleep(0.01)
    raise TimeoutError("condition not reached")


def consumed_after(member: MemberProcess, partitions: set[int], since: float) -> bool:
    return any(
        e.get("p") in partitions and float(e["v"]) > since for e in list(member.events) if "p" in e
    )


def failover(bootstrap: str) -> float:
    topic = f"fo-{uuid.uuid4().hex[:8]}"
    create_topic(bootstrap, topic, PARTITIONS)
    feeder = Feeder(bootstrap, topic)
    group = f"g-{uuid.uuid4().hex[:6]}"
    members = [MemberProcess("confluent", bootstrap, topic, group) for _ in range(3)]
    try:
        wait_for(lambda: sorted(len(m.assigned) for m in members) == [2, 2, 2], 60)
        time.sleep(1)
        victim, survivors = members[0], members[1:]
        lost = set(victim.assigned)
        killed = time.time()
        victim.kill()
        resumed = wait_for(lambda: any(consumed_after(m, lost, killed) for m in survivors), 60)
        return resumed - killed
    finally:
        feeder.close()
        for m in members:
            m.leave()


def scale_out(bootstrap: str) -> float:
    topic = f"so-{uuid.uuid4().hex[:8]}"
    create_topic(bootstrap, topic, PARTITIONS)
    feeder = Feeder(bootstrap, topic)
    group = f"g-{uuid.uuid4().hex[:6]}"
    members = [MemberProcess("confluent", bootstrap, topic, group) for _ in range(3)]
    try:
        wait_for(lambda: sorted(len(m.assigned) for m in members) == [2, 2, 2], 60)
        time.sleep(1)
        started = time.time()
        members += [MemberProcess("confluent", bootstrap, topic, group) for _ in range(3)]

        def settled() -> bool:
            return all(len(m.assigned) == 1 for m in members) and all(
                consumed_after(m, set(m.assigned), started) for m in members
            )

        return wait_for(settled, 90) - started
    finally:
        feeder.close()
        for m in members:
            m.leave()


def run(repeats: int) -> list[Result]:
    results = []
    for label, starter in (
        ("dovecote", lambda: dovecote(protocol="kafka")),
        ("tansu (memory)", tansu),
    ):
        with starter() as peer:
            bootstrap = f"{peer.host}:{peer.port}"
            for name, measure in (
                ("group failover after SIGKILL", failover),
                ("group scale-out 3->6", scale_out),
            ):
                stats = summarize(measure(bootstrap) for _ in range(repeats))
                results.append(
                    Result.from_stats(
                        name,
                        label,
                        stats,
                        "s",
                        COMMAND,
                        session_timeout_s=SESSION_TIMEOUT_S,
                        version=peer.version,
                    )
                )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, default=Path("bench/results/groups.json"))
    args = parser.parse_args()
    results = run(args.repeats)
    append_results(results, args.json)
    for r in results:
        print(
            f"{r.name:35} {r.system:16} {r.figure:6.2f} s  ({r.spread.get('min', 0):.2f}-{r.spread.get('max', 0):.2f})"
        )


if __name__ == "__main__":
    main()
