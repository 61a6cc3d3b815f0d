"""Request bodies with random or mutated content against the Kafka listener.

These fuzzers were written against dovecote/kafka/wire.py, where they killed
the broker within seconds: kio 0.6.5's native decoder pre-allocates arrays
from lengths read off the wire, so a flexible request announcing a compact
array of 2**32 - 2 elements made it ask for 32 GiB and abort the process
("memory allocation of 34359738352 bytes failed", SIGABRT), taking every
connection with it; random bodies and mutated client requests found that
(and only that) 5 times out of 5 in 15 s. The hardened codec
(dovecote/kafka/codec/) checks every length against the bytes left before
kio reads it; on it they pass, and stay here so the crash cannot come back.

Each fuzzer restarts the broker after a crash and carries on, so one run
counts every crash it finds (up to 5) and names the frame that caused the
first. Same checks as test_kafka_fuzz.py otherwise: resident memory within
RSS_BOUND_MIB, a well-behaved client keeps working.
"""

from __future__ import annotations

import random
import struct
import uuid

import pytest

from dovecote.kafka.handlers import supported_versions
from tests.faults.capture import capture_client_requests
from tests.faults.fuzzing import (
    SteadyClient,
    Watch,
    blast,
    find_culprit,
    fuzz_with_restarts,
    mutate,
)
from tests.faults.harness import SCALE, Broker, seeded

RSS_BOUND_MIB = 128  # as in test_kafka_fuzz.py
SECONDS = 15 * SCALE
SUPPORTED = supported_versions()
METADATA, FLEXIBLE_METADATA = 3, 12


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    broker = Broker(tmp_path_factory.mktemp("kio-fuzz") / "data").start()
    yield broker
    broker.stop()


def frame(api_key: int, version: int, body: bytes, flexible: bool) -> bytes:
    payload = (
        struct.pack(">hhih", api_key, version, 1, 4) + b"fuzz" + (b"\x00" if flexible else b"")
    )
    payload += body
    return struct.pack(">i", len(payload)) + payload


def test_crafted_huge_compact_array_length(broker, fault_report):
    """The 20-byte reproducer: Metadata v12, topics = compact array of 2**32 - 2."""
    crafted = frame(METADATA, FLEXIBLE_METADATA, b"\xff\xff\xff\xff\x0f", flexible=True)
    blast(broker.kafka_bootstrap, iter([[crafted]]), 5, concurrency=1, read_for=1)
    alive = broker.settle()
    fault_report("kio crash reproducer", runs=1, crashes=broker.crashes, frame_bytes=len(crafted))
    if not alive:
        broker.start()
    assert alive, f"the broker died on {crafted.hex()}:\n{broker.crash_logs[-1][-600:]}"


def random_body_batches(rng: random.Random):
    """Batches of 1-8 requests with a supported api key and version, a valid
    header and a random body (sometimes built from plausible pieces)."""
    keys = sorted(SUPPORTED)
    pieces = [b"\x00", b"\x01", b"\xff\xff", b"\x00\x00\x00\x01", b"\x00\x05topic", b"\x06topic"]
    while True:
        batch = []
        for _ in range(rng.randint(1, 8)):
            key = rng.choice(keys)
            version = rng.randint(*SUPPORTED[key])
            if rng.random() < 0.5:
                body = rng.randbytes(rng.randint(0, 300))
            else:
                body = b"".join(
                    rng.choice([*pieces, rng.randbytes(rng.randint(1, 16))])
                    for _ in range(rng.randint(1, 20))
                )
            batch.append(frame(key, version, body, flexible=rng.random() < 0.5))
        yield batch


def mutated_batches(corpus: list[bytes], rng: random.Random):
    while True:
        yield [
            mutate(rng.choice(corpus), rng, fix_length=rng.random() < 0.9)
            for _ in range(rng.randint(1, 8))
        ]


def run_fuzzer(broker, batches, scenario, seed, fault_report, tmp_path) -> None:
    with (
        SteadyClient(broker.kafka_bootstrap, f"steady-{uuid.uuid4().hex[:8]}") as steady,
        Watch(broker) as watch,
    ):
        sent, crashes = fuzz_with_restarts(broker, batches, SECONDS)
    if crashes:
        crashes[0].culprit = find_culprit(crashes[0].recent, tmp_path / "culprit" / "data")
    fault_report(
        scenario,
        runs=sent.frames,
        acknowledged=steady.rounds,
        lost=len(steady.failures),
        crashes=len(crashes),
        rss_growth_mib=round(watch.growth_mib, 1),
        seed=seed,
    )
    assert not crashes, (
        f"seed {seed}: {len(crashes)} broker crashes in {sent.frames} frames; "
        f"first: {crashes[0].signature}; frame {crashes[0].culprit.hex() if crashes[0].culprit else '?'}"
    )
    assert not steady.failures, steady.failures[:5]
    assert watch.growth_mib < RSS_BOUND_MIB, f"RSS grew by {watch.growth_mib:.0f} MiB"


def test_random_bodies_behind_valid_headers(broker, fault_report, tmp_path):
    seed, rng = seeded()
    run_fuzzer(
        broker,
        random_body_batches(rng),
        "random Kafka request bodies",
        seed,
        fault_report,
        tmp_path,
    )


def test_mutated_client_requests(broker, fault_report, tmp_path):
    seed, rng = seeded()
    corpus = capture_client_requests()
    run_fuzzer(
        broker,
        mutated_batches(corpus, rng),
        "mutated Kafka client requests",
        seed,
        fault_report,
        tmp_path,
    )
