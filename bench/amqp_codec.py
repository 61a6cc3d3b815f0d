"""AMQP codec micro-benchmarks: pamqp against dovecote.amqp.codec, in µs per operation.

    python -m bench.amqp_codec [--repeats 5] [--number 20000]
    PYTHONPATH=. python bench/amqp_codec.py ...     # where bench/ is not a package

Each figure is the best of ``--repeats`` timings of ``--number`` calls (the
minimum is the least noisy estimate of the code's own cost). Single process,
no I/O: this measures the codec, not a broker.
"""

from __future__ import annotations

import argparse
import timeit
from collections.abc import Callable

from pamqp import body, commands, frame, header

from dovecote.amqp.codec import (
    ROUTING_FIELDS,
    CommandReader,
    check_properties,
    decode_method,
    encode_basic_ack,
    encode_delivery,
    encode_method,
    properties_from_pamqp,
    read_properties,
    update_headers,
)

PROPS = commands.Basic.Properties(
    content_type="application/json", delivery_mode=2, message_id="msg-0001", headers={"x-retry": 1}
)
BLOCK = PROPS.marshal()
BODY = b'{"hello": "world"}'
PUBLISH = (
    frame.marshal(commands.Basic.Publish(exchange="orders", routing_key="orders.eu"), 1)
    + frame.marshal(header.ContentHeader(0, len(BODY), PROPS), 1)
    + frame.marshal(body.ContentBody(BODY), 1)
)
PUBLISH_100 = PUBLISH * 100
PUBLISH_METHOD = frame.marshal(
    commands.Basic.Publish(exchange="orders", routing_key="orders.eu"), 1
)
ACK = frame.marshal(commands.Basic.Ack(42, False), 1)
DECLARE = frame.marshal(
    commands.Queue.Declare(queue="jobs", durable=True, arguments={"x-max-priority": 10}), 1
)
HEADER = frame.marshal(header.ContentHeader(0, len(BODY), PROPS), 1)


def pamqp_delivery() -> bytes:
    return b"".join(
        [
            frame.marshal(commands.Basic.Deliver("ctag-1", 7, False, "orders", "orders.eu"), 1),
            frame.marshal(header.ContentHeader(0, len(BODY), PROPS), 1),
            frame.marshal(body.ContentBody(BODY), 1),
        ]
    )


def pamqp_read_publishes() -> None:
    data = PUBLISH_100
    while data:
        used, _channel, _frame = frame.unmarshal(data)
        data = data[used:]


def codec_read_publishes() -> None:
    CommandReader(expect_protocol_header=False, frame_max=131072).feed(PUBLISH_100)


CASES: list[tuple[str, Callable[[], object], Callable[[], object], int]] = [
    (
        "encode small delivery (3 frames)",
        pamqp_delivery,
        lambda: encode_delivery(1, "ctag-1", 7, False, "orders", "orders.eu", BLOCK, BODY, 131072),
        1,
    ),
    (
        "encode basic.ack (confirm)",
        lambda: frame.marshal(commands.Basic.Ack(42, False), 1),
        lambda: encode_basic_ack(1, 42, False),
        1,
    ),
    (
        "decode basic.publish frame",
        lambda: frame.unmarshal(PUBLISH_METHOD),
        lambda: decode_method(PUBLISH_METHOD[7:-1]),
        1,
    ),
    ("decode basic.ack frame", lambda: frame.unmarshal(ACK), lambda: decode_method(ACK[7:-1]), 1),
    (
        "decode queue.declare frame",
        lambda: frame.unmarshal(DECLARE),
        lambda: decode_method(DECLARE[7:-1]),
        1,
    ),
    (
        "encode queue.declare-ok frame",
        lambda: frame.marshal(commands.Queue.DeclareOk("jobs", 5, 1), 1),
        lambda: encode_method(1, commands.Queue.DeclareOk("jobs", 5, 1)),
        1,
    ),
    (
        "read routing fields of a header",
        lambda: frame.unmarshal(HEADER),
        lambda: read_properties(BLOCK, ROUTING_FIELDS),
        1,
    ),
    ("vet a property block", lambda: frame.unmarshal(HEADER), lambda: check_properties(BLOCK), 1),
    ("encode a property block", PROPS.marshal, lambda: properties_from_pamqp(PROPS), 1),
    (
        "add x-death to a block",
        lambda: commands.Basic.Properties(
            **{**dict(PROPS), "headers": {**PROPS.headers, "x-death": [{"count": 1}]}}
        ).marshal(),
        lambda: update_headers(BLOCK, {"x-death": [{"count": 1}]}),
        1,
    ),
    ("read publish+header+body (per message)", pamqp_read_publishes, codec_read_publishes, 100),
]


def best(fn: Callable[[], object], number: int, repeats: int) -> float:
    return min(timeit.repeat(fn, number=number, repeat=repeats)) / number * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--number", type=int, default=20000)
    args = parser.parse_args()
    print(f"{'operation':42s} {'pamqp µs':>9s} {'codec µs':>9s} {'speed-up':>8s}")
    for name, reference, codec, per in CASES:
        number = max(args.number // per, 10)
        theirs = best(reference, number, args.repeats) / per
        mine = best(codec, number, args.repeats) / per
        print(f"{name:42s} {theirs:9.2f} {mine:9.2f} {theirs / mine:7.1f}x")


if __name__ == "__main__":
    main()
