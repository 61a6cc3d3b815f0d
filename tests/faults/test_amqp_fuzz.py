"""Malformed input against the AMQP listener over real sockets.

* Hypothesis builds one bad thing per connection, after a valid pipelined
  handshake, and knows what RabbitMQ answers to it: frames larger than
  frame_max, a bad frame-end octet, an unknown frame type (501
  FRAME_ERROR); method frames too short for their ids (501); arguments cut
  short (502 SYNTAX_ERROR); unknown class/method ids (503
  COMMAND_INVALID); methods on channels never opened (504 CHANNEL_ERROR);
  content frames out of order, on channel 0, heartbeats on a channel (505
  UNEXPECTED_FRAME); more body than announced (501); a bad protocol header
  (our header back). Plus garbage, where any connection.close will do.
  Every input is sent split at random points.
* Real pika sessions, captured from the broker's side of the socket, are cut
  at every byte and mutated (bit flips, interesting 32-bit values in frame
  sizes, cuts, insertions, duplicated runs).

The broker never dies, its RSS grows by less than RSS_BOUND_MIB (the bound
of the Kafka fuzzers: nothing is buffered beyond a frame, frame_max is
128 KiB), and a pika client publishing with confirms and reading back on
another connection never fails or waits more than 10 s.
"""

from __future__ import annotations

import random
import struct
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pamqp import commands as C

from dovecote.amqp.codec import PROTOCOL_HEADER, encode_method
from dovecote.amqp.codec.methods import SPECS
from tests.faults.amqp import SteadyAMQP
from tests.faults.amqp_wire import (
    FRAME_MAX,
    capture_pika_sessions,
    closed_with,
    content_header,
    frame,
    handshake,
    send_and_read,
)
from tests.faults.fuzzing import Watch, blast, mutate
from tests.faults.harness import SCALE, Broker, scaled, seeded

RSS_BOUND_MIB = 128
# Bad connections are logged at most once per kind every 10 s (rate-limited):
# a garbage flood must not become a log flood.
MAX_LOG_LINES = 200
SECONDS = 5 * SCALE
FRAME_ERROR, SYNTAX_ERROR, COMMAND_INVALID, CHANNEL_ERROR, UNEXPECTED_FRAME = range(501, 506)
CLOSE_CODES = {501, 502, 503, 504, 505, 530, 540, 541}
PUBLISH = encode_method(1, C.Basic.Publish(exchange="", routing_key="fuzz"))
# Methods whose arguments are cut short for the 502 cases.
CUTTABLE = [
    C.Queue.Declare(queue="q", durable=True, arguments={"x-max-length": 5}),
    C.Exchange.Declare(exchange="e", exchange_type="topic", arguments={"a": "b"}),
    C.Basic.Publish(exchange="e", routing_key="k"),
    C.Basic.Consume(queue="q", consumer_tag="t", arguments={"x": 1}),
    C.Basic.Ack(delivery_tag=1),
    C.Queue.Bind(queue="q", exchange="e", routing_key="k"),
]


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    broker = Broker(tmp_path_factory.mktemp("amqp-fuzz") / "data", amqp=True).start()
    yield broker
    broker.stop()


@pytest.fixture(autouse=True)
def no_internal_errors(broker):
    """Bad input gets a protocol answer: an internal error (541, logged with a
    traceback) is a bug the input found in a handler."""
    start = broker.log_path.stat().st_size
    yield
    with open(broker.log_path, "rb") as f:
        f.seek(start)
        added = f.read().decode("utf-8", "replace")
    bad = [line for line in added.splitlines() if "Traceback" in line or "internal error" in line]
    assert not bad, f"{len(bad)} internal errors, e.g.:\n" + added[added.find(bad[0]) :][:3000]


def payload(method) -> bytes:
    return encode_method(1, method)[7:-1]


@st.composite
def bad_input(draw) -> tuple[str, bytes, int | None]:
    """(kind, bytes after the handshake, expected connection.close code or None)."""
    kind = draw(
        st.sampled_from(
            [
                "oversize",
                "bad-end",
                "unknown-type",
                "short-method",
                "cut-arguments",
                "unknown-method",
                "unopened-channel",
                "content-on-channel-0",
                "header-without-method",
                "body-without-header",
                "method-inside-content",
                "body-too-long",
                "heartbeat-on-channel",
                "garbage",
            ]
        )
    )
    junk = draw(st.binary(max_size=64))
    if kind == "oversize":
        size = draw(st.integers(FRAME_MAX + 1, 2**32 - 1))
        return kind, struct.pack(">BHI", draw(st.sampled_from([1, 2, 3])), 1, size) + junk, 501
    if kind == "bad-end":
        end = draw(st.integers(0, 255).filter(lambda b: b != 0xCE))
        body = draw(st.binary(min_size=0, max_size=100))
        return kind, frame(draw(st.sampled_from([1, 2, 3, 8])), 1, body, end=end), 501
    if kind == "unknown-type":
        ftype = draw(st.integers(0, 255).filter(lambda t: t not in (1, 2, 3, 8)))
        return kind, frame(ftype, draw(st.sampled_from([0, 1, 2])), junk), 501
    if kind == "short-method":
        return kind, frame(1, 1, draw(st.binary(max_size=3))), 501
    if kind == "cut-arguments":
        full = payload(draw(st.sampled_from(CUTTABLE)))
        cut = draw(st.integers(4, len(full) - 1))
        return kind, frame(1, 1, full[:cut]), 502
    if kind == "unknown-method":
        index = draw(st.integers(0, 2**32 - 1).filter(lambda i: i not in SPECS))
        return kind, frame(1, 1, struct.pack(">I", index) + junk), 503
    if kind == "unopened-channel":
        channel = draw(st.integers(2, 2047))
        return kind, encode_method(channel, C.Queue.Declare(queue="q")), 504
    if kind == "content-on-channel-0":
        if draw(st.booleans()):
            return kind, frame(3, 0, junk), 505
        return kind, content_header(0, len(junk)), 505
    if kind == "header-without-method":
        return kind, content_header(1, draw(st.integers(0, 1000))), 505
    if kind == "body-without-header":
        return kind, PUBLISH + frame(3, 1, junk or b"x"), 505
    if kind == "method-inside-content":
        size = draw(st.integers(1, 1000))
        return kind, PUBLISH + content_header(1, size) + payload_frame(C.Basic.Qos()), 505
    if kind == "body-too-long":
        size = draw(st.integers(1, 100))  # (0: the header alone completes the message)
        return kind, PUBLISH + content_header(1, size) + frame(3, 1, b"b" * (size + 1)), 501
    if kind == "heartbeat-on-channel":
        return kind, frame(8, draw(st.integers(1, 65535)), b""), 505
    return kind, draw(st.binary(min_size=1, max_size=300)), None


def payload_frame(method) -> bytes:
    return encode_method(1, method)


@settings(
    max_examples=scaled(500),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=bad_input(), chunks=st.lists(st.integers(1, 64), max_size=4))
def test_bad_frames_get_rabbitmqs_answer_and_never_kill_the_broker(broker, case, chunks):
    kind, bad, expected = case
    methods, _first, _hung_up = send_and_read(broker.amqp_address, handshake() + bad, chunks)
    assert broker.check(), f"{kind}: broker died on {bad.hex()}:\n{broker.crash_logs[-1]}"
    code = closed_with(methods)
    if expected is not None:
        assert code == expected, f"{kind}: {bad.hex()} got {methods[-1:]}, expected {expected}"
    else:
        assert code is None or code in CLOSE_CODES, f"garbage {bad.hex()}: {methods[-1:]}"


@settings(max_examples=scaled(50), deadline=None)
@given(head=st.binary(min_size=8, max_size=8).filter(lambda h: h != PROTOCOL_HEADER))
def test_a_bad_protocol_header_gets_ours_back(broker, head):
    methods, first, hung_up = send_and_read(broker.amqp_address, head + b"more")
    assert first == PROTOCOL_HEADER and hung_up and not methods, (head, first, methods)
    assert broker.check()


@pytest.fixture(scope="module")
def sessions() -> list[bytes]:
    return capture_pika_sessions()


def test_pika_sessions_cut_at_every_byte_and_mutated(broker, sessions, fault_report):
    seed, rng = seeded()
    cuts = [stream[:end] for stream in sessions for end in range(1, len(stream))]
    mutated = [mutate_stream(rng.choice(sessions), rng) for _ in range(scaled(800))]
    inputs = cuts + mutated
    batches = ([data] for data in inputs)
    with (
        SteadyAMQP(broker, f"steady-{uuid.uuid4().hex[:8]}") as steady,
        Watch(broker) as watch,
    ):
        sent = blast(
            ":".join(map(str, broker.amqp_address)),
            batches,
            120 * SCALE,
            concurrency=8,
            read_for=0.5,
            alive=broker.check,
        )
    broker.settle()
    fault_report(
        "truncated and mutated pika sessions",
        runs=sent.frames,
        acknowledged=steady.rounds,
        lost=len(steady.failures),
        crashes=broker.crashes,
        sessions_bytes=sum(len(s) for s in sessions),
        mutated=len(mutated),
        rss_growth_mib=round(watch.growth_mib, 1),
        steady_p99_s=round(steady.p99, 3),
        seed=seed,
    )
    assert broker.crashes == 0, broker.crash_logs[-1]
    assert sent.frames == len(inputs), f"sent {sent.frames} of {len(inputs)}"
    assert not steady.failures, steady.failures[:5]
    assert steady.rounds > 0
    assert watch.growth_mib < RSS_BOUND_MIB, f"RSS grew by {watch.growth_mib:.0f} MiB"


def log_lines(broker: Broker) -> int:
    with open(broker.log_path, "rb") as f:
        return sum(1 for _ in f)


def mutate_stream(stream: bytes, rng: random.Random) -> bytes:
    """:func:`tests.faults.fuzzing.mutate` on a whole AMQP byte stream."""
    return mutate(struct.pack(">i", len(stream)) + stream, rng)[4:]


def test_frame_floods_and_garbage_with_a_steady_client(broker, fault_report):
    """Many connections at once sending bad frames of every kind, big lying
    sizes and stalled content, while a pika client works."""
    seed, rng = seeded()

    def batches():
        while True:
            choice = rng.randrange(4)
            if choice == 0:  # announce a huge message, send a little, stall
                size = rng.choice([1 << 20, 100 << 20, 2**31, 2**63])
                yield [handshake() + PUBLISH + content_header(1, size) + frame(3, 1, b"x" * 1000)]
            elif choice == 1:  # a frame that claims more than frame_max
                yield [handshake() + struct.pack(">BHI", 3, 1, 2**32 - 1) + rng.randbytes(4096)]
            elif choice == 2:  # many channels with content in progress
                data = handshake(channels=50)
                for n in range(1, 51):
                    data += encode_method(n, C.Basic.Publish(routing_key="x"))
                    data += content_header(n, 1 << 20) + frame(3, n, b"y" * 100)
                yield [data]
            else:
                yield [handshake() + rng.randbytes(rng.randint(1, 2000))]

    lines_before = log_lines(broker)
    with (
        SteadyAMQP(broker, f"steady-{uuid.uuid4().hex[:8]}") as steady,
        Watch(broker) as watch,
    ):
        sent = blast(
            ":".join(map(str, broker.amqp_address)),
            batches(),
            SECONDS,
            concurrency=32,
            read_for=0.5,
            alive=broker.check,
        )
    logged = log_lines(broker) - lines_before
    fault_report(
        "malformed AMQP frames",
        runs=sent.frames,
        acknowledged=steady.rounds,
        lost=len(steady.failures),
        crashes=broker.crashes,
        rss_growth_mib=round(watch.growth_mib, 1),
        steady_p99_s=round(steady.p99, 3),
        log_lines=logged,
        seed=seed,
    )
    assert broker.settle(), broker.crash_logs[-1]
    assert logged < MAX_LOG_LINES, f"{logged} log lines for {sent.connections} bad connections"
    assert not steady.failures, steady.failures[:5]
    assert watch.growth_mib < RSS_BOUND_MIB, f"RSS grew by {watch.growth_mib:.0f} MiB"
