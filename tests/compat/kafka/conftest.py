"""A Dovecote process with its Kafka listener, shared by a test module."""

from __future__ import annotations

import uuid

import pytest

from dovecote.testing import BrokerProcess


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    data = tmp_path_factory.mktemp("kafka") / "data"
    with BrokerProcess(data, listeners={"amqp": "off"}) as proc:
        yield proc


@pytest.fixture
def topic_name() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


def records(n: int, prefix: str = "") -> list[tuple[bytes, bytes, list[tuple[str, bytes]]]]:
    """n keyed records over 17 keys; the value says (key, sequence within key)."""
    out = []
    for i in range(n):
        key = f"key-{i % 17}".encode()
        out.append(
            (
                key,
                f"{prefix}{i % 17}:{i // 17}".encode(),
                [("seq", str(i).encode()), ("kind", b"test")],
            )
        )
    return out


def check_order(consumed: list[tuple[int, bytes, bytes]]) -> None:
    """Per partition, each key's sequence numbers arrive in increasing order."""
    last: dict[tuple[int, bytes], int] = {}
    for partition, key, value in consumed:
        seq = int(value.rsplit(b":", 1)[1])
        previous = last.get((partition, key), -1)
        assert seq > previous, f"{key!r} went from {previous} to {seq} in partition {partition}"
        last[(partition, key)] = seq
