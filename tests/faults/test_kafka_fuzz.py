"""Malformed framing against the Kafka listener over real sockets: lying
length prefixes, truncated and stalled frames, frames split anywhere,
unknown APIs and unsupported versions, broken headers, garbage, and real
client requests cut short at every byte. The broker process never dies, its
resident memory stays within RSS_BOUND_MIB of where it started, and a
well-behaved client doing produce/consume round trips keeps working.

Request bodies with random or mutated content (random bodies behind valid
headers, mutations of real client requests) are fuzzed in
test_kafka_fuzz_kio_crash.py, named after what they found in kio.

The memory bound: nothing a client sends is buffered beyond what arrived
(the frame reader holds received bytes only, and each connection has at
most 64 requests in flight), and the fuzzers send small frames; the budget
covers the broker's own growth (auto-created topics, per-connection state,
allocator slack). 128 MiB is ~2.5 times the broker's resident size at start.
"""

from __future__ import annotations

import socket
import struct
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dovecote.kafka.handlers import supported_versions
from tests.faults.capture import capture_client_requests
from tests.faults.fuzzing import SteadyClient, Watch, blast
from tests.faults.harness import SCALE, Broker, scaled, seeded

RSS_BOUND_MIB = 128
SECONDS = 20 * SCALE
SUPPORTED = supported_versions()
HEADER = struct.Struct(">hhih")


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    broker = Broker(tmp_path_factory.mktemp("kafka-fuzz") / "data").start()
    yield broker
    broker.stop()


def frame(api_key: int, version: int, body: bytes, client_id: bytes = b"fuzz") -> bytes:
    payload = HEADER.pack(api_key, version, 7, len(client_id)) + client_id + body
    return struct.pack(">i", len(payload)) + payload


def send_and_close(address: str, data: bytes, chunks: list[int]) -> None:
    """Send ``data`` in pieces, say we are done, read until the broker hangs up."""
    host, port = address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        try:
            pos = 0
            for size in [*chunks, len(data)]:
                if pos >= len(data):
                    break
                sock.sendall(data[pos : pos + max(1, size)])
                pos += max(1, size)
            sock.shutdown(socket.SHUT_WR)
            sock.settimeout(1)
            while sock.recv(65536):
                pass
        except (TimeoutError, OSError):
            pass  # the broker hung up first: what it does with bad input


prefixes = st.one_of(
    st.just(None),  # the right size
    st.integers(-(2**31), 2**31 - 1),
    st.sampled_from([0, 1, 7, 8, 9, 100 << 20, (100 << 20) + 1, 2**31 - 1, -1]),
)


@st.composite
def unsupported(draw) -> tuple[int, int]:
    """An api key and version the broker does not serve (so no body decoder runs)."""
    key = draw(st.one_of(st.sampled_from(sorted(SUPPORTED)), st.integers(-(2**15), 2**15 - 1)))
    lo, hi = SUPPORTED.get(key, (0, -1))
    version = draw(
        st.one_of(st.integers(-(2**15), lo - 1), st.integers(hi + 1, 2**15 - 1))
        if lo <= hi
        else st.integers(-(2**15), 2**15 - 1)
    )
    return key, version


@st.composite
def raw_frames(draw) -> bytes:
    kind = draw(st.sampled_from(["header", "garbage", "short"]))
    if kind == "garbage":
        return draw(st.binary(max_size=300))
    if kind == "short":
        payload = draw(st.binary(max_size=9))
    else:
        client_len = draw(st.one_of(st.just(None), st.integers(-(2**15), 2**15 - 1)))
        client = draw(st.binary(max_size=20))
        key, version = draw(unsupported())
        payload = HEADER.pack(
            key,
            version,
            draw(st.integers(-(2**31), 2**31 - 1)),
            len(client) if client_len is None else client_len,
        )
        payload += client + draw(st.binary(max_size=200))
    size = draw(prefixes)
    return struct.pack(">i", len(payload) if size is None else size) + payload


@settings(
    max_examples=scaled(200),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    frames=st.lists(raw_frames(), min_size=1, max_size=4),
    chunks=st.lists(st.integers(1, 64), max_size=4),
)
def test_framing_and_header_fuzz_never_kills_the_broker(broker, frames, chunks):
    send_and_close(broker.kafka_bootstrap, b"".join(frames), chunks)
    assert broker.check(), f"broker died on {b''.join(frames).hex()}:\n{broker.crash_logs[-1]}"


@pytest.fixture(scope="module")
def client_requests() -> list[bytes]:
    return capture_client_requests()


def test_real_requests_cut_short_at_every_byte(broker, client_requests, fault_report):
    """Each captured request, cut at every position: with the size prefix
    saying the cut length (the decoder sees a short body), or the original
    size (the broker waits for bytes that never come, then sees the end)."""
    cuts = [
        struct.pack(">i", end - 4 if fix else len(data) - 4) + data[4:end]
        for data in client_requests
        for end in range(4, len(data))
        for fix in (True, False)
    ]
    batches = (cuts[i : i + 16] for i in range(0, len(cuts), 16))
    with (
        SteadyClient(broker.kafka_bootstrap, f"steady-{uuid.uuid4().hex[:8]}") as steady,
        Watch(broker) as watch,
    ):
        sent = blast(broker.kafka_bootstrap, batches, 120, read_for=0.2, alive=broker.check)
    broker.settle()
    fault_report(
        "truncated Kafka requests",
        runs=sent.frames,
        acknowledged=steady.rounds,
        lost=len(steady.failures),
        crashes=broker.crashes,
        apis=len({struct.unpack_from(">h", d, 4)[0] for d in client_requests}),
        rss_growth_mib=round(watch.growth_mib, 1),
        steady_p99_s=round(steady.p99, 3),
    )
    assert broker.crashes == 0, broker.crash_logs[-1]
    assert sent.frames == len(cuts)
    assert not steady.failures, steady.failures[:5]
    assert watch.growth_mib < RSS_BOUND_MIB, f"RSS grew by {watch.growth_mib:.0f} MiB"


def test_lying_length_prefixes_and_stalled_frames(broker, fault_report):
    """Connections that announce up to the 100 MiB limit and send a little,
    or stall mid-frame, cost only what they sent."""
    seed, rng = seeded()

    def batches():
        while True:
            size = rng.choice([100 << 20, 50 << 20, 1 << 20, 2**31 - 1, -5, 3])
            head = frame(18, 3, b"\x00")[4:]
            yield [struct.pack(">i", size) + head + rng.randbytes(rng.randint(0, 4096))]

    with (
        SteadyClient(broker.kafka_bootstrap, f"steady-{uuid.uuid4().hex[:8]}") as steady,
        Watch(broker) as watch,
    ):
        sent = blast(
            broker.kafka_bootstrap,
            batches(),
            SECONDS / 4,
            concurrency=32,
            read_for=0.5,
            alive=broker.check,
        )
    fault_report(
        "malformed Kafka framing",
        runs=sent.frames,
        acknowledged=steady.rounds,
        lost=len(steady.failures),
        crashes=broker.crashes,
        rss_growth_mib=round(watch.growth_mib, 1),
        seed=seed,
    )
    assert broker.settle(), broker.crash_logs[-1]
    assert not steady.failures, steady.failures[:5]
    assert watch.growth_mib < RSS_BOUND_MIB
