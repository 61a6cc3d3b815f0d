"""aio-pika (asyncio, robust connection) against Dovecote: confirms, consumers, RPC."""

from __future__ import annotations

import asyncio
import uuid

import aio_pika
import pytest
from aio_pika.exceptions import DeliveryError


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


def test_publish_with_confirms_and_consume(url, name):
    async def main():
        connection = await aio_pika.connect_robust(url)
        async with connection:
            channel = await connection.channel(publisher_confirms=True)
            await channel.set_qos(prefetch_count=50)
            exchange = await channel.declare_exchange(
                f"{name}.ex", aio_pika.ExchangeType.TOPIC, auto_delete=True
            )
            queue = await channel.declare_queue(name, durable=True)
            await queue.bind(exchange, "orders.*")
            confirms = [
                exchange.publish(
                    aio_pika.Message(
                        b"order-%d" % i,
                        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                        headers={"n": i},
                    ),
                    routing_key="orders.new",
                )
                for i in range(500)
            ]
            await asyncio.gather(*confirms)  # pipelined: all outstanding at once
            seen = []
            async with queue.iterator() as messages:
                async for message in messages:
                    async with message.process():
                        seen.append((message.headers["n"], message.body, message.redelivered))
                    if len(seen) == 500:
                        break
            assert [n for n, _b, _r in seen] == list(range(500))
            assert not any(r for _n, _b, r in seen)
            await queue.delete()

    run(main())


def test_confirm_nack_surfaces_as_delivery_error(url, name):
    async def main():
        connection = await aio_pika.connect(url)
        async with connection:
            channel = await connection.channel(publisher_confirms=True)
            await channel.declare_queue(
                name,
                exclusive=True,
                arguments={"x-max-length": 1, "x-overflow": "reject-publish"},
            )
            results = await asyncio.gather(
                *(
                    channel.default_exchange.publish(aio_pika.Message(b"%d" % i), routing_key=name)
                    for i in range(4)
                ),
                return_exceptions=True,
            )
            assert not isinstance(results[0], Exception)
            assert all(isinstance(r, DeliveryError) for r in results[1:]), results

    run(main())


def test_rpc_over_direct_reply_to(url, name):
    async def main():
        connection = await aio_pika.connect(url)
        async with connection:
            server_channel = await connection.channel()
            requests = await server_channel.declare_queue(name, auto_delete=True)

            async def serve(message: aio_pika.abc.AbstractIncomingMessage) -> None:
                async with message.process():
                    await server_channel.default_exchange.publish(
                        aio_pika.Message(
                            b"re:" + message.body, correlation_id=message.correlation_id
                        ),
                        routing_key=message.reply_to,
                    )

            await requests.consume(serve)
            client_channel = await connection.channel()
            replies = await client_channel.get_queue("amq.rabbitmq.reply-to", ensure=False)
            pending: dict[str, asyncio.Future[bytes]] = {}

            async def on_reply(message: aio_pika.abc.AbstractIncomingMessage) -> None:
                pending.pop(message.correlation_id).set_result(message.body)

            await replies.consume(on_reply, no_ack=True)
            loop = asyncio.get_running_loop()
            calls = []
            for i in range(20):
                cid = uuid.uuid4().hex
                pending[cid] = loop.create_future()
                calls.append(pending[cid])
                await client_channel.default_exchange.publish(
                    aio_pika.Message(
                        b"%d" % i, reply_to="amq.rabbitmq.reply-to", correlation_id=cid
                    ),
                    routing_key=name,
                )
            assert await asyncio.gather(*calls) == [b"re:%d" % i for i in range(20)]

    run(main())


def test_consumer_cancelled_when_queue_deleted(url, name):
    async def main():
        connection = await aio_pika.connect(url)
        async with connection:
            channel = await connection.channel()
            underlay = await channel.get_underlay_channel()
            cancelled: asyncio.Future[str] = asyncio.get_running_loop().create_future()
            underlay.on_consumer_cancel_callbacks.add(
                lambda frame: cancelled.set_result(frame.consumer_tag)
            )
            queue = await channel.declare_queue(name)

            async def ignore(message: aio_pika.abc.AbstractIncomingMessage) -> None:
                pass

            tag = await queue.consume(ignore)
            other = await connection.channel()
            await other.queue_delete(name)
            assert await asyncio.wait_for(cancelled, 5) == tag
            assert tag not in underlay.consumers

    run(main())


@pytest.mark.parametrize("transactional", [True, False])
def test_get_and_reject_redelivers(url, name, transactional):
    async def main():
        connection = await aio_pika.connect(url)
        async with connection:
            channel = await connection.channel(publisher_confirms=not transactional)
            queue = await channel.declare_queue(name, exclusive=True)
            tx = channel.transaction() if transactional else None
            if tx is not None:
                await tx.select()
            await channel.default_exchange.publish(aio_pika.Message(b"once"), routing_key=name)
            if tx is not None:
                await tx.commit()
            message = await queue.get(timeout=5)
            await message.reject(requeue=True)
            if tx is not None:
                await tx.commit()
            again = await queue.get(timeout=5)
            assert again.body == b"once" and again.redelivered
            await again.ack()
            if tx is not None:
                await tx.commit()
            assert await queue.get(fail=False) is None

    run(main())
