"""Overload through AMQP: eight pika publishers with confirms push 512 KiB
messages (four frames each) as fast as they are confirmed, ten times faster
than a consumer takes them, against a broker whose in-flight budget
(max_inflight_bytes) is 1 MiB: less than the messages the publishers have
in flight together.

What must hold: the budget is used up and connections wait for it (the
publishers are slowed: their connections stop being read and TCP pushes
back); bytes in flight stay below the budget plus one message per
publishing connection (a connection already holding budget takes what it
needs to finish, see dovecote/core/flow.py); no reservation leaks; RSS
grows by less than that plus 50 MiB (queue data goes to the log, not to
memory); and every confirmed message is stored.
"""

from __future__ import annotations

import threading
import time
import urllib.request

import pika

from tests.faults.amqp import GONE, PERSISTENT, connect, declare
from tests.faults.fuzzing import MiB, Watch
from tests.faults.harness import SCALE, Broker

LIMIT = 1 * MiB
MESSAGE = 512 << 10
PUBLISHERS = 8
QUEUE = "load-q"
SECONDS = 4 * SCALE
CONSUMER_PAUSE = 0.05  # per message: at most 20 a second
RSS_BOUND_MIB = (LIMIT + PUBLISHERS * MESSAGE) / MiB + 50


def metrics(broker: Broker) -> dict[str, float]:
    with urllib.request.urlopen(broker.http + "/metrics", timeout=10) as response:
        lines = response.read().decode().splitlines()
    return {
        name: float(value)
        for name, _, value in (line.partition(" ") for line in lines)
        if name.startswith("dovecote_inflight")
    }


def publish(broker: Broker, index: int, stop: threading.Event, confirmed: list[int], errors):
    body = bytes([index]) * MESSAGE
    try:
        connection = connect(broker)
        channel = connection.channel()
        channel.confirm_delivery()
        while not stop.is_set():
            channel.basic_publish("", QUEUE, body, PERSISTENT)
            confirmed[index] += 1
        connection.close()
    except (*GONE, pika.exceptions.NackError) as exc:
        errors.append(f"publisher {index}: {type(exc).__name__}: {exc}")


def consume(broker: Broker, stop: threading.Event, consumed: list[int]) -> None:
    connection = connect(broker)
    channel = connection.channel()
    channel.basic_qos(prefetch_count=1)
    for method, _props, _body in channel.consume(QUEUE, inactivity_timeout=0.1):
        if stop.is_set():
            break
        if method is not None:
            channel.basic_ack(method.delivery_tag)
            consumed[0] += 1
            time.sleep(CONSUMER_PAUSE)
    channel.cancel()
    connection.close()


def test_fast_amqp_publishers_slow_consumer_stay_within_the_budget(tmp_path, fault_report):
    broker = Broker(
        tmp_path / "data", amqp=True, settings={"max_inflight_bytes": str(LIMIT)}
    ).start()
    stop = threading.Event()
    confirmed = [0] * PUBLISHERS
    consumed = [0]
    errors: list[str] = []
    try:
        declare(broker, QUEUE)
        threads = [
            threading.Thread(target=publish, args=(broker, i, stop, confirmed, errors))
            for i in range(PUBLISHERS)
        ]
        reader = threading.Thread(target=consume, args=(broker, stop, consumed))
        with Watch(broker) as watch:
            for thread in [*threads, reader]:
                thread.start()
            time.sleep(SECONDS)
            stop.set()
            for thread in [*threads, reader]:
                thread.join(60)
        seen = metrics(broker)
        connection = connect(broker)
        depth = connection.channel().queue_declare(QUEUE, passive=True).method.message_count
        connection.close()
        alive = broker.settle(0.1)
    finally:
        stop.set()
        broker.stop()

    acked = sum(confirmed)
    stored = depth + consumed[0]
    peak = seen["dovecote_inflight_request_bytes_peak"]
    fault_report(
        "overload: AMQP publishers 10x faster than consumer",
        runs=1,
        acknowledged=acked,
        lost=max(0, acked - stored),
        duplicates=max(0, stored - acked),
        crashes=broker.crashes,
        rss_growth_mib=round(watch.growth_mib, 1),
        rss_bound_mib=round(RSS_BOUND_MIB),
        inflight_peak_mib=round(peak / MiB, 1),
        budget_mib=LIMIT // MiB,
        budget_waits=int(seen["dovecote_inflight_budget_waits_total"]),
        published_per_s=int(acked / SECONDS),
        consumed_per_s=int(consumed[0] / SECONDS),
    )
    assert alive and broker.crashes == 0
    assert not errors, errors[:5]
    assert stored == acked, f"{acked} confirmed, {stored} stored"
    assert seen["dovecote_inflight_budget_waits_total"] > 0, "the publishers never hit the budget"
    assert peak <= LIMIT + PUBLISHERS * (MESSAGE + 1024), f"{peak} bytes in flight"
    assert seen["dovecote_inflight_request_bytes"] == 0, "reservations leaked"
    assert watch.growth_mib < RSS_BOUND_MIB, f"RSS grew by {watch.growth_mib:.0f} MiB"
    assert acked >= 10 * consumed[0], "the publishers should be ten times faster"
