"""Durable queues and persistent messages across a clean restart and a SIGKILL."""

from __future__ import annotations

import asyncio
import threading
import time

import aio_pika
import pika
import pytest

from dovecote.testing import BrokerProcess
from tests.compat.amqp.conftest import ONLY_AMQP

PERSISTENT = pika.BasicProperties(delivery_mode=2)


def connect(proc: BrokerProcess) -> pika.BlockingConnection:
    return pika.BlockingConnection(pika.URLParameters(proc.amqp_url))


def test_restart_keeps_durable_queues_messages_and_unacked_state(tmp_path):
    proc = BrokerProcess(tmp_path / "data", listeners=ONLY_AMQP).start()
    try:
        conn = connect(proc)
        ch = conn.channel()
        ch.confirm_delivery()
        ch.exchange_declare("orders", "topic", durable=True)
        ch.queue_declare("orders.eu", durable=True, arguments={"x-max-priority": 3})
        ch.queue_bind("orders.eu", "orders", "eu.#")
        ch.queue_declare("scratch", durable=False)
        for i in range(100):
            ch.basic_publish("orders", "eu.de", b"o%d" % i, PERSISTENT)
        ch.basic_publish("", "scratch", b"transient queue", PERSISTENT)
        ch.basic_publish(
            "orders", "eu.fr", b"urgent", pika.BasicProperties(delivery_mode=2, priority=3)
        )
        # Take two without acking, ack one: the other is outstanding at shutdown.
        first, _p, body = ch.basic_get("orders.eu")
        assert body == b"urgent"
        ch.basic_ack(first.delivery_tag)
        _held, _p, body = ch.basic_get("orders.eu")
        assert body == b"o0"
        assert proc.stop() == 0
        proc.start()
        conn = connect(proc)
        ch = conn.channel()
        assert ch.queue_declare("orders.eu", passive=True).method.message_count == 100
        with pytest.raises(pika.exceptions.ChannelClosedByBroker):
            ch.queue_declare("scratch", passive=True)  # not durable: gone
        ch = conn.channel()
        ch.basic_publish("orders", "eu.it", b"after restart", PERSISTENT)  # binding survived
        got = []
        while True:
            method, _props, body = ch.basic_get("orders.eu", auto_ack=True)
            if method is None:
                break
            got.append((body, method.redelivered))
        assert got[0] == (b"o0", True)  # was delivered before the restart
        assert [b for b, _r in got] == [b"o%d" % i for i in range(100)] + [b"after restart"]
        conn.close()
    finally:
        proc.stop()


def test_every_confirmed_message_survives_kill_9(tmp_path):
    """A pipelined publisher with confirms; the broker is SIGKILLed mid-stream."""
    proc = BrokerProcess(tmp_path / "data", listeners=ONLY_AMQP).start()
    confirmed: list[int] = []
    enough = threading.Event()
    stop = threading.Event()

    async def publish() -> None:
        connection = await aio_pika.connect(proc.amqp_url)
        channel = await connection.channel(publisher_confirms=True)
        await channel.declare_queue("ledger", durable=True)
        window: set[asyncio.Future] = set()
        n = 0
        try:
            while not stop.is_set():
                message = aio_pika.Message(
                    b"%d" % n, delivery_mode=aio_pika.DeliveryMode.PERSISTENT
                )
                future = asyncio.ensure_future(
                    channel.default_exchange.publish(message, routing_key="ledger")
                )
                future.add_done_callback(
                    lambda f, n=n: confirmed.append(n) if not f.exception() else None
                )
                window.add(future)
                future.add_done_callback(window.discard)
                n += 1
                if len(confirmed) > 2000:
                    enough.set()
                while len(window) >= 200:
                    await asyncio.wait(window, return_when=asyncio.FIRST_COMPLETED)
        except Exception:
            pass  # the broker died under us
        finally:
            for future in window:
                future.cancel()

    publisher = threading.Thread(target=lambda: asyncio.run(publish()), daemon=True)
    publisher.start()
    try:
        assert enough.wait(60), "publisher made no progress"
        proc.kill()
        stop.set()
        publisher.join(30)
        acked = set(confirmed)
        proc.start()
        conn = connect(proc)
        ch = conn.channel()
        stored = set()
        while True:
            method, _props, body = ch.basic_get("ledger", auto_ack=True)
            if method is None:
                break
            stored.add(int(body))
        conn.close()
        assert acked, "nothing was confirmed"
        missing = acked - stored
        assert not missing, f"{len(missing)} confirmed messages lost, e.g. {sorted(missing)[:5]}"
    finally:
        stop.set()
        proc.kill()


def test_queue_and_exchange_deletions_are_durable(tmp_path):
    proc = BrokerProcess(tmp_path / "data", listeners=ONLY_AMQP).start()
    try:
        conn = connect(proc)
        ch = conn.channel()
        ch.exchange_declare("gone-ex", "fanout", durable=True)
        ch.queue_declare("gone-q", durable=True)
        ch.queue_bind("gone-q", "gone-ex")
        ch.basic_publish("gone-ex", "", b"x", PERSISTENT)
        ch.queue_delete("gone-q")
        ch.exchange_delete("gone-ex")
        ch.queue_declare("gone-q", durable=True)  # a new queue of the same name is empty
        proc.stop()
        time.sleep(0.1)
        proc.start()
        conn = connect(proc)
        ch = conn.channel()
        assert ch.queue_declare("gone-q", passive=True).method.message_count == 0
        with pytest.raises(pika.exceptions.ChannelClosedByBroker):
            ch.exchange_declare("gone-ex", passive=True)
        conn.close()
    finally:
        proc.stop()
