"""Declarations as RabbitMQ answers them where clients depend on it: unbinding
what is already gone, unknown exchange types, reserved names and x-argument
errors (the AMQP rules that moved out of the core into amqp/arguments.py)."""

from __future__ import annotations

import asyncio

import aio_pika
import pika
import pytest
from pika.exceptions import ChannelClosedByBroker


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


def test_unbind_of_what_is_gone_answers_unbind_ok(connection, name):
    channel = connection.channel()
    channel.exchange_declare(f"{name}.ex", "direct")
    channel.exchange_declare(f"{name}.dest", "fanout")
    channel.queue_declare(name)
    channel.queue_bind(name, f"{name}.ex", "k")
    channel.exchange_bind(f"{name}.dest", f"{name}.ex", "k")
    # The binding is gone (unbound twice).
    channel.queue_unbind(name, f"{name}.ex", "k")
    channel.queue_unbind(name, f"{name}.ex", "k")
    channel.queue_unbind(name, f"{name}.ex", "never-bound")
    # The queue is gone.
    channel.queue_delete(name)
    channel.queue_unbind(name, f"{name}.ex", "k")
    # The exchange is gone (source or destination).
    channel.exchange_delete(f"{name}.dest")
    channel.exchange_unbind(f"{name}.dest", f"{name}.ex", "k")
    channel.exchange_delete(f"{name}.ex")
    channel.queue_unbind(name, f"{name}.ex", "k")
    channel.exchange_unbind(f"{name}.dest", f"{name}.ex", "k")
    assert channel.is_open
    # A binding that exists is still removed by an unbind.
    channel.exchange_declare(f"{name}.ex2", "direct")
    channel.queue_declare(f"{name}.q2")
    channel.queue_bind(f"{name}.q2", f"{name}.ex2", "k")
    channel.queue_unbind(f"{name}.q2", f"{name}.ex2", "k")
    channel.basic_publish(f"{name}.ex2", "k", b"unrouted")
    assert channel.queue_declare(f"{name}.q2", passive=True).method.message_count == 0
    channel.queue_delete(f"{name}.q2")
    channel.exchange_delete(f"{name}.ex2")


def test_unknown_exchange_type_closes_the_channel_with_406(connection, name):
    channel = connection.channel()
    with pytest.raises(ChannelClosedByBroker) as info:
        channel.exchange_declare(name, "no-such-type")
    assert (info.value.reply_code, info.value.reply_text) == (
        406,
        "PRECONDITION_FAILED - invalid exchange type 'no-such-type'",
    )
    assert connection.is_open  # a channel error, not a connection error
    other = connection.channel()
    other.exchange_declare(name, "direct")
    other.exchange_delete(name)


def test_reserved_names_and_standard_exchanges(connection, name):
    channel = connection.channel()
    # The standard exchanges exist and redeclaring them equivalently is fine.
    channel.exchange_declare("amq.direct", "direct", durable=True)
    channel.exchange_declare("amq.match", "headers", passive=True)
    with pytest.raises(ChannelClosedByBroker) as info:
        channel.exchange_declare(f"amq.{name}", "direct")
    assert (info.value.reply_code, info.value.reply_text) == (
        403,
        f"ACCESS_REFUSED - exchange name 'amq.{name}' contains reserved prefix 'amq.*'",
    )
    channel = connection.channel()
    with pytest.raises(ChannelClosedByBroker) as info:
        channel.exchange_delete("amq.topic")
    assert info.value.reply_code == 403
    channel = connection.channel()
    with pytest.raises(ChannelClosedByBroker) as info:
        channel.queue_declare(f"amq.{name}")
    assert (info.value.reply_code, info.value.reply_text) == (
        403,
        f"ACCESS_REFUSED - queue name 'amq.{name}' contains reserved prefix 'amq.*'",
    )
    channel = connection.channel()
    server_named = channel.queue_declare("", exclusive=True).method.queue
    assert server_named.startswith("amq.gen-")


def test_x_argument_errors_and_inequivalent_redeclares(connection, name):
    channel = connection.channel()
    with pytest.raises(ChannelClosedByBroker) as info:
        channel.queue_declare(name, arguments={"x-max-length": "ten"})
    assert (info.value.reply_code, info.value.reply_text) == (
        406,
        f"PRECONDITION_FAILED - invalid arg 'x-max-length' for queue '{name}' in vhost '/': "
        '"expected integer, got longstr"',
    )
    channel = connection.channel()
    channel.queue_declare(name, arguments={"x-max-length": 5, "x-queue-type": "classic"})
    channel.queue_declare(name, arguments={"x-max-length": 5, "x-queue-type": "classic"})
    with pytest.raises(ChannelClosedByBroker) as info:
        channel.queue_declare(name, arguments={"x-max-length": 6, "x-queue-type": "classic"})
    assert (info.value.reply_code, info.value.reply_text) == (
        406,
        f"PRECONDITION_FAILED - inequivalent arg 'x-max-length' for queue '{name}' in vhost "
        "'/': received '6' but current is '5'",
    )
    channel = connection.channel()
    with pytest.raises(ChannelClosedByBroker) as info:
        channel.queue_declare(name, durable=True, arguments={"x-max-length": 5})
    assert info.value.reply_code == 406
    assert "inequivalent arg 'durable'" in info.value.reply_text
    channel = connection.channel()
    channel.queue_delete(name)


def test_overflow_nacks_only_the_refused_messages_of_a_burst(url, name):
    """A burst in one read to a queue that refuses when full: the core decides
    record by record, the adapter acks the stored ones and nacks the rest."""
    conn = pika.BlockingConnection(pika.URLParameters(url))
    channel = conn.channel()
    channel.queue_declare(name, arguments={"x-max-length": 3, "x-overflow": "reject-publish"})
    channel.confirm_delivery()
    outcomes = []
    for i in range(5):
        try:
            channel.basic_publish("", name, b"%d" % i)
            outcomes.append(True)
        except pika.exceptions.NackError:
            outcomes.append(False)
    assert outcomes == [True, True, True, False, False]
    assert channel.queue_declare(name, passive=True).method.message_count == 3
    channel.queue_delete(name)
    conn.close()


def test_aio_pika_unbind_after_delete_and_rpc_close(url, name):
    async def main():
        connection = await aio_pika.connect(url)
        async with connection:
            channel = await connection.channel()
            exchange = await channel.declare_exchange(f"{name}.ex", auto_delete=True)
            queue = await channel.declare_queue(name, auto_delete=True)
            await queue.bind(exchange, "k")
            await queue.delete()
            await queue.unbind(exchange, "k")  # queue gone: unbind-ok
            await exchange.delete()
            await queue.unbind(exchange, "k")  # exchange gone too

            rpc = await aio_pika.patterns.RPC.create(channel)

            async def double(*, x: int) -> int:
                return 2 * x

            await rpc.register(f"{name}.double", double, auto_delete=True)
            assert await rpc.call(f"{name}.double", kwargs={"x": 21}) == 42
            # Cancelling the consumer auto-deletes the result queue (and with
            # it its binding and the auto-delete exchange): the unbind that
            # follows must still answer unbind-ok.
            await rpc.close()
            assert not channel.is_closed

    run(main())
