"""Overload and backpressure.

* Producers ten times faster than the consumer: the broker's memory stays
  bounded by its in-flight budget (max_inflight_bytes), producers are slowed
  (their connections pause; TCP pushes back), nothing acknowledged is lost.
* Produce quotas per client id: each client gets its quota, told through
  throttle_time_ms; a client that ignores the hint is held to it anyway (the
  broker mutes its connection, KIP-219).
"""

from __future__ import annotations

import random
import re
import struct
import threading
import time
import urllib.request
from dataclasses import dataclass, field

import confluent_kafka

from dovecote.storage.batch import Record, build_batch
from tests.compat.kafka.raw import RawKafka, ms
from tests.faults.fuzzing import MiB, Watch
from tests.faults.harness import SCALE, Broker, create_topic, read_topic, seeded

LIMIT = 2 * MiB  # max_inflight_bytes for the test broker: well below what 4 producers push
MAX_REQUEST = 2 * MiB
FETCH_MAX = 4 * MiB
# RSS may grow by the budget, one request past it, one fetch response, and
# 50 MiB for everything else the broker allocates meanwhile (segments and
# indexes in memory, read buffers of the connections, allocator slack).
RSS_BOUND_MIB = (LIMIT + MAX_REQUEST + FETCH_MAX) / MiB + 50
PRODUCERS = 4
PARTITIONS = 4
SECONDS = 4 * SCALE


def metrics(broker: Broker) -> dict[str, float]:
    with urllib.request.urlopen(broker.http + "/metrics", timeout=10) as response:
        text = response.read().decode()
    return {
        m.group(1): float(m.group(2))
        for m in re.finditer(r"^(dovecote_(?:inflight|produce)\w*) (\S+)$", text, re.M)
    }


@dataclass
class Counts:
    acked: int = 0
    acked_bytes: int = 0
    errors: list[str] = field(default_factory=list)
    throttles: int = 0
    keys: set[bytes] | None = None  # the keys acknowledged, when asked to keep them
    lock: threading.Lock = field(default_factory=threading.Lock)


def flood_producer(bootstrap: str, topic: str, index: int, counts: Counts, stop, **extra):
    """Produce as fast as librdkafka takes records until ``stop`` is set."""
    config = {
        "bootstrap.servers": bootstrap,
        "acks": "all",
        "enable.idempotence": True,
        "linger.ms": 20,
        "batch.size": MiB,
        "message.max.bytes": MiB,
        "queue.buffering.max.kbytes": 32 * 1024,
        "log_level": 0,
    } | extra

    def throttled(event) -> None:
        with counts.lock:
            counts.throttles += 1

    config["throttle_cb"] = throttled
    producer = confluent_kafka.Producer(config)
    value = random.Random(index).randbytes(200)

    def delivered(err, msg) -> None:
        if err is not None and err.code() == confluent_kafka.KafkaError._PURGE_QUEUE:
            return  # never sent: dropped by the producer itself when the test stopped
        with counts.lock:
            if err is None:
                counts.acked += 1
                counts.acked_bytes += len(msg.value())
                if counts.keys is not None:
                    counts.keys.add(msg.key())
            else:
                counts.errors.append(str(err))

    n = 0
    while not stop.is_set():
        try:
            producer.produce(
                topic, value, b"%d-%d" % (index, n), partition=n % PARTITIONS, on_delivery=delivered
            )
            n += 1
        except BufferError:  # librdkafka's queue is full: the broker is pushing back
            producer.poll(0.01)
        producer.poll(0)
    producer.purge(in_queue=True, in_flight=False)  # what was never sent need not be
    assert producer.flush(60) == 0


def slow_consumer(bootstrap: str, topic: str, stop, consumed: list[int]) -> None:
    """A group member that reads at most ~10,000 records per second."""
    consumer = confluent_kafka.Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "slow",
            "auto.offset.reset": "earliest",
            "fetch.max.bytes": MiB,
            "log_level": 0,
        }
    )
    consumer.subscribe([topic])
    try:
        while not stop.is_set():
            consumed[0] += sum(1 for m in consumer.consume(100, 0.1) if not m.error())
            time.sleep(0.01)
    finally:
        consumer.close()


def test_fast_producers_slow_consumer_stay_within_the_memory_budget(tmp_path, fault_report):
    broker = Broker(
        tmp_path / "data",
        settings={
            "max_inflight_bytes": LIMIT,
            "max_request_bytes": MAX_REQUEST,
            "fetch_max_bytes": FETCH_MAX,
        },
    ).start()
    counts = Counts()
    consumed = [0]
    stop = threading.Event()
    try:
        create_topic(broker.kafka_bootstrap, "load", PARTITIONS)
        threads = [
            threading.Thread(
                target=flood_producer,
                args=(broker.kafka_bootstrap, "load", i, counts, stop),
                # Not idempotent: that would cap each at 5 requests in flight;
                # this way each pipelines as many as the socket takes.
                kwargs={"enable.idempotence": False},
            )
            for i in range(PRODUCERS)
        ]
        reader = threading.Thread(
            target=slow_consumer, args=(broker.kafka_bootstrap, "load", stop, consumed)
        )
        with Watch(broker) as watch:
            for thread in [*threads, reader]:
                thread.start()
            time.sleep(SECONDS)
            stop.set()
            for thread in [*threads, reader]:
                thread.join(150)
        seen = metrics(broker)
        ends = {}
        consumer = confluent_kafka.Consumer(
            {"bootstrap.servers": broker.kafka_bootstrap, "group.id": "x"}
        )
        for p in range(PARTITIONS):
            ends[p] = consumer.get_watermark_offsets(confluent_kafka.TopicPartition("load", p), 30)
        consumer.close()
        stored = sum(high - low for low, high in ends.values())
        sample = read_topic(broker.kafka_bootstrap, "load", PARTITIONS) if stored < 200_000 else []
        alive = broker.settle(0.1)
    finally:
        stop.set()
        broker.stop()

    keys = [c.key for c in sample]
    fault_report(
        "overload: producers 10x faster than consumer",
        runs=1,
        acknowledged=counts.acked,
        lost=max(0, counts.acked - stored),
        duplicates=max(0, stored - counts.acked) + (len(keys) - len(set(keys))),
        crashes=broker.crashes,
        rss_growth_mib=round(watch.growth_mib, 1),
        rss_bound_mib=round(RSS_BOUND_MIB),
        inflight_peak_mib=round(seen["dovecote_inflight_request_bytes_peak"] / MiB, 1),
        budget_mib=LIMIT // MiB,
        budget_waits=int(seen["dovecote_inflight_budget_waits_total"]),
        produced_per_s=int(counts.acked / SECONDS),
        consumed_per_s=int(consumed[0] / SECONDS),
    )
    assert alive and broker.crashes == 0
    assert not counts.errors, counts.errors[:5]
    assert stored == counts.acked, f"{counts.acked} acknowledged, {stored} stored"
    assert len(keys) == len(set(keys)), "duplicates"
    assert seen["dovecote_inflight_budget_waits_total"] > 0, "the producers never hit the budget"
    assert seen["dovecote_inflight_request_bytes_peak"] <= LIMIT + MAX_REQUEST
    assert seen["dovecote_inflight_request_bytes"] == 0, "reservations leaked"
    assert watch.growth_mib < RSS_BOUND_MIB, f"RSS grew by {watch.growth_mib:.0f} MiB"
    assert counts.acked >= 10 * consumed[0], "the producers should be ten times faster"


# --- quotas ------------------------------------------------------------------------------

QUOTA = MiB  # bytes per second per client id
WINDOW_MS = 100  # quota_window_ms: rates over ~1.1 s, so a few seconds show the steady rate


def raw_produce_request(raw: RawKafka, topic: str, size: int) -> bytes:
    records = build_batch([Record(b"r" * size)])
    _, data = raw.request_bytes(
        0,
        9,
        {
            "transactional_id": None,
            "acks": 1,
            "timeout": ms(5000),
            "topic_data": [{"name": topic, "partition_data": [{"index": 0, "records": records}]}],
        },
    )
    return data


def test_produce_quota_per_client_id_with_throttle_time_and_muting(tmp_path, fault_report):
    seed, _rng = seeded()
    broker = Broker(
        tmp_path / "data",
        settings={"produce_quota_bytes_per_sec": QUOTA, "quota_window_ms": WINDOW_MS},
    ).start()
    per_client = {name: Counts(keys=set()) for name in ("heavy-1", "heavy-2")}
    stop = threading.Event()
    try:
        create_topic(broker.kafka_bootstrap, "quota", PARTITIONS)
        threads = [
            threading.Thread(
                target=flood_producer,
                args=(broker.kafka_bootstrap, "quota", i, per_client[name], stop),
                kwargs={"client.id": name, "linger.ms": 5, "batch.size": 64 * 1024},
            )
            for i, name in enumerate(per_client)
        ]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        time.sleep(SECONDS)
        stop.set()
        elapsed = time.monotonic() - started
        acked_bytes = {name: c.acked_bytes for name, c in per_client.items()}
        for thread in threads:
            thread.join(150)

        # A client that ignores throttle_time_ms: requests pipelined back to
        # back on one connection. The broker stops reading from it instead.
        raw = RawKafka(broker.kafka_bootstrap, timeout=30)
        request = raw_produce_request(raw, "quota", 32 * 1024)
        answered = []

        def read_answers() -> None:
            while True:
                try:
                    size = struct.unpack(">i", raw._read(4))[0]
                    raw._read(size)
                except (ConnectionError, OSError):
                    return
                answered.append(time.monotonic())

        def write_requests() -> None:
            while not raw_done.is_set():
                try:
                    raw.sock.sendall(request)  # blocks while the broker does not read
                except OSError:
                    return

        raw_done = threading.Event()
        raw.sock.settimeout(None)
        threading.Thread(target=read_answers, daemon=True).start()
        raw_started = time.monotonic()
        threading.Thread(target=write_requests, daemon=True).start()
        time.sleep(SECONDS)
        raw_done.set()
        raw_seconds = time.monotonic() - raw_started
        raw_bytes = sum(1 for t in answered if t <= raw_started + raw_seconds) * len(request)
        raw.close()
        seen = metrics(broker)
        stored = read_topic(broker.kafka_bootstrap, "quota", PARTITIONS)
    finally:
        stop.set()
        broker.stop()

    stored_keys = {c.key for c in stored}
    acked = sum(c.acked for c in per_client.values())
    missing = [k for c in per_client.values() for k in c.keys or () if k not in stored_keys]
    rates = {name: acked_bytes[name] / elapsed / QUOTA for name in per_client}
    raw_rate = raw_bytes / raw_seconds / QUOTA
    fault_report(
        "produce quota per client id",
        runs=len(per_client) + 1,
        acknowledged=acked,
        lost=len(missing),
        crashes=broker.crashes,
        quota_mib_s=QUOTA / MiB,
        rate_vs_quota=",".join(f"{r:.2f}" for r in rates.values()),
        ignoring_client_vs_quota=round(raw_rate, 2),
        throttle_events=sum(c.throttles for c in per_client.values()),
        seed=seed,
    )
    assert broker.crashes == 0
    for name, counts in per_client.items():
        assert not counts.errors, counts.errors[:3]
        assert counts.throttles > 0, f"{name} was never told to slow down"
    # A burst of about one measured span (~1.1 s of quota) passes before the
    # throttling starts; after it, each client runs at its quota.
    for name, rate in rates.items():
        assert 0.5 <= rate <= 1.6, f"{name} ran at {rate:.2f}x its quota"
    assert raw_rate <= 1.6, f"a client ignoring throttle_time_ms ran at {raw_rate:.2f}x its quota"
    assert seen["dovecote_produce_throttled_total"] > 0
    assert not missing, f"{len(missing)} acknowledged records lost"
