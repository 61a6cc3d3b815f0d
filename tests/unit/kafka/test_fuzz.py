"""Whatever bytes arrive, decode_request fails only with the codec's own errors."""

from __future__ import annotations

import random
import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dovecote.kafka.codec import KafkaCodecError, Request, RequestError, decode_request
from dovecote.kafka.codec.schemas import request_class
from tests.unit.kafka.apis import ALL_VERSIONS, SUPPORTED, request_frame
from tests.unit.kafka.samples import sample

FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))


def _valid_frames() -> list[bytes]:
    rng = random.Random(1)
    frames = []
    for _name, key, version in ALL_VERSIONS:
        cls = request_class(key, version)
        frames += [request_frame(sample(cls, rng), rng.randint(0, 1000)) for _ in range(2)]
    return frames


VALID = _valid_frames()


def decode_or_codec_error(frame: bytes) -> Request | None:
    try:
        return decode_request(frame, SUPPORTED)
    except RequestError as exc:
        if len(frame) >= 8:
            assert exc.correlation_id == struct.unpack_from(">i", frame, 4)[0]
        return None
    except KafkaCodecError:  # pragma: no cover - decode_request raises RequestErrors only
        raise AssertionError("not a RequestError") from None


@FUZZ
@given(st.binary(max_size=300))
def test_random_bytes(frame):
    decode_or_codec_error(frame)


@FUZZ
@given(st.sampled_from(ALL_VERSIONS), st.binary(max_size=300))
def test_random_bytes_after_a_valid_api_key_and_version(api, tail):
    _name, key, version = api
    decode_or_codec_error(struct.pack(">hhi", key, version, 1) + tail)


MUTATIONS = st.lists(
    st.tuples(
        st.sampled_from(["flip", "set", "insert", "delete", "truncate", "ff", "zero"]),
        st.integers(min_value=0, max_value=10**6),
        st.integers(min_value=0, max_value=255),
    ),
    min_size=1,
    max_size=4,
)


def mutate(frame: bytes, mutations: list[tuple[str, int, int]]) -> bytes:
    data = bytearray(frame)
    for kind, where, value in mutations:
        at = where % (len(data) + 1)
        if kind == "flip" and at < len(data):
            data[at] ^= 1 << (value % 8)
        elif kind == "set" and at < len(data):
            data[at] = value
        elif kind == "insert":
            data[at:at] = bytes([value]) * (1 + value % 5)
        elif kind == "delete":
            del data[at : at + 1 + value % 7]
        elif kind == "truncate":
            del data[at:]
        elif kind == "ff":  # lengths and counts become -1 / huge
            data[at : at + 4] = b"\xff" * 4
        elif kind == "zero":
            data[at : at + 4] = b"\x00" * 4
    return bytes(data)


@FUZZ
@given(st.sampled_from(VALID), MUTATIONS)
def test_mutated_valid_requests(frame, mutations):
    decode_or_codec_error(mutate(frame, mutations))


def test_mutated_header_bytes_keep_the_ids_when_they_survive():
    frame = VALID[0]
    for at in range(8, min(len(frame), 40)):
        for value in (0x00, 0x7F, 0x80, 0xFF):
            data = bytearray(frame)
            data[at] = value
            decode_or_codec_error(bytes(data))
