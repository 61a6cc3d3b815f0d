"""An idempotent producer keeps writing while the broker restarts (cleanly or
killed): every acknowledged record is there exactly once, in order."""

from __future__ import annotations

import threading
import time

import confluent_kafka
import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from dovecote.testing import BrokerProcess

from .clients import consume

N = 30_000


@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
def test_idempotent_producer_across_restart(tmp_path, how):
    broker = BrokerProcess(tmp_path / "data", listeners={"amqp": "off", "http": "off"}).start()
    try:
        admin = AdminClient({"bootstrap.servers": broker.kafka_bootstrap})
        admin.create_topics([NewTopic("idem", 2, 1)])["idem"].result(30)
        producer = confluent_kafka.Producer(
            {
                "bootstrap.servers": broker.kafka_bootstrap,
                "enable.idempotence": True,
                "linger.ms": 2,
                "batch.num.messages": 200,
                "message.timeout.ms": 60_000,
                "reconnect.backoff.ms": 50,
                "reconnect.backoff.max.ms": 200,
            }
        )
        acked: list[bytes] = []
        failed: list[object] = []

        def report(err, msg):
            (failed if err is not None else acked).append(err or msg.value())

        def restart_midway() -> None:
            while len(acked) < N // 3:
                time.sleep(0.01)
            if how == "sigkill":
                broker.kill()
            else:
                broker.stop()
            time.sleep(0.3)
            broker.start()

        restarter = threading.Thread(target=restart_midway)
        restarter.start()
        for i in range(N):
            producer.produce("idem", b"%06d" % i, key=b"%d" % (i % 7), on_delivery=report)
            producer.poll(0)
            if i % 1000 == 0:
                time.sleep(0.01)  # spread the produce over the restart
        assert producer.flush(90) == 0
        restarter.join(60)
        assert not failed, failed[:3]
        got = consume("confluent", broker.kafka_bootstrap, "idem", len(acked), timeout=60)
        values = [v for _, _, v in got]
        assert len(values) == len(set(values)), "duplicates after the restart"
        assert set(values) >= set(acked), "acknowledged records lost"
        # Order per key (a key maps to one partition) follows production order.
        per_key: dict[bytes, list[bytes]] = {}
        for _, key, value in got:
            per_key.setdefault(key, []).append(value)
        for key, seq in per_key.items():
            assert seq == sorted(seq), f"order broken for key {key!r}"
    finally:
        broker.stop()
