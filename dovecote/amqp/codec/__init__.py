"""AMQP 0-9-1 codec: sans-I/O, no sockets, no asyncio -- bytes in, typed events out.

The AMQP server adapter drives one :class:`CommandReader` per connection and
writes what the encoders return. pamqp supplies the method classes; decoding
and encoding use this package's compiled plans and fast paths (5-10x faster
than pamqp, byte-identical output).

Reading (client -> server)
--------------------------
``CommandReader(*, frame_max=4096, max_body_size=128 MiB, expect_protocol_header=True,
check_properties=True)``
    ``.feed(data) -> list[ProtocolHeader | MethodFrame | Message | Heartbeat]``;
    ``.frame_max`` (assign after tune-ok; 0 = unlimited); ``.discard(channel)``
    drops partial content when a channel closes.
``FrameReader(*, frame_max=4096, expect_protocol_header=True, sink=None)``
    The frame layer alone: ``.feed(data) -> list[ProtocolHeader | MethodFrame |
    ContentHeaderFrame | ContentBodyFrame | Heartbeat]``; with a ``sink`` (a
    ``FrameSink``) method/header/body frames go to its hooks instead.
``ContentAssembler(*, max_body_size, check_properties=True)``
    ``.process(frame_event) -> Message | event | None``; the ``FrameSink`` hooks
    ``on_method``/``on_header``/``on_body``; ``.in_progress(ch)``, ``.discard(ch)``.
Events: ``ProtocolHeader(major, minor, revision)``, ``MethodFrame(channel, method)``
(``method`` is a pamqp object such as ``pamqp.commands.Basic.Qos``),
``ContentHeaderFrame(channel, class_id, weight, body_size, properties)``,
``ContentBodyFrame(channel, payload)``, ``Heartbeat(channel=0)``, and
``Message(channel, method, property_block, body)`` with a lazy ``.properties``.
``decode_method(payload, channel=0) -> pamqp method`` decodes one method payload.

Errors (all subclasses of ``CodecError``; ``.events`` = what decoded before it; ``.fatal`` =
stream out of sync, stop reading)
    ``BadProtocolHeader(received)``: send ``PROTOCOL_HEADER``, close the socket.
    ``AMQPError`` with ``reply_code``, ``reply_text``, ``channel``, ``class_id``,
    ``method_id`` and ``close_method()`` -> ``Connection.Close``:
    ``FrameError`` 501, ``SyntaxError_`` 502, ``CommandInvalid`` 503, ``UnexpectedFrame`` 505.

Writing (server -> client)
--------------------------
``encode_method(channel, method) -> bytes`` (any pamqp method),
``encode_frame(type, channel, payload)``, ``HEARTBEAT_FRAME``, ``PROTOCOL_HEADER``,
``encode_content_header(channel, body_size, property_block)``,
``encode_body_frames(channel, body, frame_max) -> list[bytes]``,
``encode_delivery(channel, consumer_tag, delivery_tag, redelivered, exchange,
routing_key, property_block, body, frame_max=0) -> bytes`` and
``encode_delivery_parts(...) -> list[bytes | memoryview]`` (for ``writelines``),
``encode_get_ok(channel, delivery_tag, redelivered, exchange, routing_key,
message_count, property_block, body, frame_max=0)``,
``encode_return(channel, reply_code, reply_text, exchange, routing_key,
property_block, body, frame_max=0)``,
``encode_basic_ack(channel, delivery_tag, multiple=False)``,
``encode_basic_nack(channel, delivery_tag, multiple=False, requeue=True)``.

Properties (the raw block = property flags + property list of a content header)
-------------------------------------------------------------------------------
``split_content_header(payload) -> (class_id, weight, body_size, block)``,
``check_properties(block)`` (502 unless fully decodable),
``read_properties(block, wanted=PROPERTY_NAMES) -> dict`` (decodes only ``wanted``;
``ROUTING_FIELDS`` names what the broker needs), ``Properties(block)`` (lazy
mapping/attribute view, ``.to_pamqp()``), ``encode_properties(mapping=None, **fields)
-> bytes``, ``properties_from_pamqp(props)``, ``update_properties(block, **changes)``,
``update_headers(block, {key: value | REMOVE})``; ``EMPTY_PROPERTIES``.
Field tables: ``encode_table``, ``decode_table``, ``encode_value``, ``Typed(code, value)``
to force a type, ``Timestamp`` (int seconds, what ``T`` decodes to).

Records (see :mod:`~dovecote.amqp.codec.records` for the convention)
--------------------------------------------------------------------
``PROPERTIES_HEADER = "amqp.properties"``, ``record_headers_for_publish(block)`` (the block
plus ``neutral_headers(block)``), ``stored_property_block(headers)``,
``property_block_for_record(headers, timestamp_ms=-1)`` (the stored block while the headers
match it, else ``block_from_headers(headers, timestamp_ms)``). The neutral names and typed
values are :mod:`dovecote.core.headers`; the table is in docs/architecture.md.

Sketch of a server loop::

    reader = CommandReader()
    try:
        for event in reader.feed(data):
            ...                                   # dispatch on type(event)
    except BadProtocolHeader:
        transport.write(PROTOCOL_HEADER); transport.close()
    except AMQPError as exc:
        handle(exc.events)
        transport.write(encode_method(0, exc.close_method()))
"""

from dovecote.amqp.codec.content import (
    DEFAULT_MAX_BODY_SIZE,
    Command,
    CommandReader,
    ContentAssembler,
    Message,
)
from dovecote.amqp.codec.errors import (
    AMQPError,
    BadProtocolHeader,
    CodecError,
    CommandInvalid,
    FrameError,
    SyntaxError_,
    UnexpectedFrame,
)
from dovecote.amqp.codec.frames import (
    FRAME_MIN_SIZE,
    PROTOCOL_HEADER,
    ContentBodyFrame,
    ContentHeaderFrame,
    FrameEvent,
    FrameReader,
    FrameSink,
    Heartbeat,
    MethodFrame,
    ProtocolHeader,
)
from dovecote.amqp.codec.methods import CONTENT_METHODS, decode_method, encode_method_payload
from dovecote.amqp.codec.properties import (
    EMPTY_PROPERTIES,
    PROPERTY_NAMES,
    ROUTING_FIELDS,
    Properties,
    check_properties,
    encode_properties,
    properties_from_pamqp,
    read_properties,
    split_content_header,
    update_headers,
    update_properties,
)
from dovecote.amqp.codec.records import (
    PROPERTIES_HEADER,
    block_from_headers,
    neutral_headers,
    property_block_for_record,
    record_headers_for_publish,
    stored_property_block,
)
from dovecote.amqp.codec.tables import (
    REMOVE,
    Timestamp,
    Typed,
    decode_table,
    encode_table,
    encode_value,
)
from dovecote.amqp.codec.writer import (
    HEARTBEAT_FRAME,
    encode_basic_ack,
    encode_basic_nack,
    encode_body_frames,
    encode_content_header,
    encode_delivery,
    encode_delivery_parts,
    encode_frame,
    encode_get_ok,
    encode_method,
    encode_return,
)

__all__ = [
    "CONTENT_METHODS",
    "DEFAULT_MAX_BODY_SIZE",
    "EMPTY_PROPERTIES",
    "FRAME_MIN_SIZE",
    "HEARTBEAT_FRAME",
    "PROPERTIES_HEADER",
    "PROPERTY_NAMES",
    "PROTOCOL_HEADER",
    "REMOVE",
    "ROUTING_FIELDS",
    "AMQPError",
    "BadProtocolHeader",
    "CodecError",
    "Command",
    "CommandInvalid",
    "CommandReader",
    "ContentAssembler",
    "ContentBodyFrame",
    "ContentHeaderFrame",
    "FrameError",
    "FrameEvent",
    "FrameReader",
    "FrameSink",
    "Heartbeat",
    "Message",
    "MethodFrame",
    "Properties",
    "ProtocolHeader",
    "SyntaxError_",
    "Timestamp",
    "Typed",
    "UnexpectedFrame",
    "block_from_headers",
    "check_properties",
    "decode_method",
    "decode_table",
    "encode_basic_ack",
    "encode_basic_nack",
    "encode_body_frames",
    "encode_content_header",
    "encode_delivery",
    "encode_delivery_parts",
    "encode_frame",
    "encode_get_ok",
    "encode_method",
    "encode_method_payload",
    "encode_properties",
    "encode_return",
    "encode_table",
    "encode_value",
    "neutral_headers",
    "properties_from_pamqp",
    "property_block_for_record",
    "read_properties",
    "record_headers_for_publish",
    "split_content_header",
    "stored_property_block",
    "update_headers",
    "update_properties",
]
