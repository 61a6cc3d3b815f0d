"""A real pika client against a scripted server made only of this codec.

The server thread speaks just enough AMQP (handshake, channel, confirms,
publish, consume, ack, close) to prove that what pika really sends decodes and
that what the encoders write, pika accepts.
"""

from __future__ import annotations

import socket
import threading

import pika
from pamqp import commands as C

from dovecote.amqp.codec import (
    PROTOCOL_HEADER,
    CommandReader,
    Message,
    MethodFrame,
    ProtocolHeader,
    encode_basic_ack,
    encode_delivery,
    encode_method,
)

FRAME_MAX = 8192


class ScriptedServer(threading.Thread):
    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(10)
        self.port = self.listener.getsockname()[1]
        self.received: list = []
        self.raw = bytearray()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            conn, _ = self.listener.accept()
            with conn:
                conn.settimeout(10)
                self.serve(conn)
        except BaseException as exc:  # surfaced by the test
            self.error = exc
        finally:
            self.listener.close()

    def serve(self, conn: socket.socket) -> None:
        reader = CommandReader()
        publish_seq = 0
        delivered = False
        while True:
            data = conn.recv(65536)
            if not data:
                return
            self.raw += data
            for event in reader.feed(data):
                self.received.append(event)
                out = b""
                if isinstance(event, ProtocolHeader):
                    out = encode_method(
                        0,
                        C.Connection.Start(
                            server_properties={"product": "dovecote", "capabilities": {
                                "publisher_confirms": True, "basic.nack": True}},
                            mechanisms="PLAIN", locales="en_US",
                        ),
                    )  # fmt: skip
                elif isinstance(event, Message):
                    publish_seq += 1
                    out = encode_basic_ack(event.channel, publish_seq)
                elif isinstance(event, MethodFrame):
                    out = self.answer(event, reader)
                    if isinstance(event.method, C.Basic.Consume) and not delivered:
                        delivered = True
                        stored = self.received[-2]  # the message published before
                        out += encode_delivery(
                            1, event.method.consumer_tag, 1, False, "", "jobs",
                            stored.property_block, stored.body, FRAME_MAX,
                        )  # fmt: skip
                    if isinstance(event.method, C.Connection.Close):
                        conn.sendall(out)
                        return
                conn.sendall(out)

    @staticmethod
    def answer(event: MethodFrame, reader: CommandReader) -> bytes:
        method, channel = event.method, event.channel
        if isinstance(method, C.Connection.StartOk):
            return encode_method(0, C.Connection.Tune(2047, FRAME_MAX, 0))
        if isinstance(method, C.Connection.TuneOk):
            reader.frame_max = method.frame_max
            return b""
        replies = {
            C.Connection.Open: C.Connection.OpenOk(),
            C.Channel.Open: C.Channel.OpenOk(),
            C.Confirm.Select: C.Confirm.SelectOk(),
            C.Channel.Close: C.Channel.CloseOk(),
            C.Connection.Close: C.Connection.CloseOk(),
            C.Basic.Ack: None,
        }
        if isinstance(method, C.Queue.Declare):
            return encode_method(channel, C.Queue.DeclareOk(method.queue, 0, 0))
        if isinstance(method, C.Basic.Cancel):
            return encode_method(channel, C.Basic.CancelOk(method.consumer_tag))
        if isinstance(method, C.Basic.Consume):
            return encode_method(channel, C.Basic.ConsumeOk(method.consumer_tag or "ctag-1"))
        reply = replies[type(method)]
        return b"" if reply is None else encode_method(channel, reply)


def test_pika_round_trip_through_the_codec():
    server = ScriptedServer()
    server.start()
    params = pika.ConnectionParameters(
        "127.0.0.1", server.port, frame_max=FRAME_MAX, heartbeat=0, blocked_connection_timeout=5,
        socket_timeout=5, connection_attempts=1,
    )  # fmt: skip
    connection = pika.BlockingConnection(params)
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        channel.queue_declare("jobs", durable=True, arguments={"x-max-priority": 5})
        big = bytes(range(256)) * 100  # several body frames at frame_max 8192
        properties = pika.BasicProperties(
            content_type="application/octet-stream", delivery_mode=2, priority=3,
            headers={"x-delay": 10, "tags": ["a", "b"], "nested": {"ok": True}},
        )  # fmt: skip
        channel.basic_publish("", "jobs", big, properties, mandatory=True)  # waits for our ack
        got = []

        def on_message(ch, method, props, body):
            got.append((method.delivery_tag, props, body))
            ch.basic_ack(method.delivery_tag)
            ch.stop_consuming()

        channel.basic_consume("jobs", on_message, consumer_tag="ctag-1")
        channel.start_consuming()
        channel.close()
    finally:
        connection.close()
    server.join(10)
    assert server.error is None, server.error
    assert bytes(server.raw).startswith(PROTOCOL_HEADER)
    (message,) = [e for e in server.received if isinstance(e, Message)]
    assert message.body == big and message.method.mandatory
    assert message.properties.headers == {"x-delay": 10, "tags": ["a", "b"], "nested": {"ok": True}}
    ((tag, props, body),) = got
    assert (tag, body, props.priority, props.headers["tags"]) == (1, big, 3, ["a", "b"])
    acks = [e.method for e in server.received if isinstance(e, MethodFrame)
            and isinstance(e.method, C.Basic.Ack)]  # fmt: skip
    assert [(a.delivery_tag, a.multiple) for a in acks] == [(1, False)]
