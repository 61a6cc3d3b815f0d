"""Every version of every broker API: what kio writes, decode_request reads back.

Bodies are random kio entities (samples.py), a fixed set of seeds per class.
The tolerant reader (used when kio meets an unknown tag) and the bounds walk
must agree with kio's reader on all of them, the compiled writer with kio's
writer (responses: test_responses.py).
"""

from __future__ import annotations

import random

import pytest

from dovecote.kafka.codec import decode_request, request_class
from dovecote.kafka.codec.bounds import bounds_checker
from dovecote.kafka.codec.tolerant import tolerant_reader
from dovecote.kafka.codec.writer import encode_entity
from tests.unit.kafka.apis import ALL_VERSIONS, SUPPORTED, encode_body, request_frame
from tests.unit.kafka.samples import sample

SAMPLES = 25


@pytest.mark.parametrize(("name", "key", "version"), ALL_VERSIONS)
def test_request_round_trip(name, key, version):
    cls = request_class(key, version)
    rng = random.Random(f"{key}/{version}")
    for i in range(SAMPLES):
        body = sample(cls, rng)
        correlation_id = rng.randint(-(2**31), 2**31 - 1)
        client_id = None if i % 5 == 0 else f"client-{i}"
        request = decode_request(request_frame(body, correlation_id, client_id), SUPPORTED)
        assert (request.api_key, request.api_version) == (key, version)
        assert (request.correlation_id, request.client_id) == (correlation_id, client_id)
        assert request.body == body, f"sample {i}"
        raw = encode_body(body)
        assert encode_entity(body) == raw, f"sample {i}"
        assert tolerant_reader(cls)(raw, 0) == (body, len(raw)), f"sample {i}"
        assert bounds_checker(cls)(raw, 0, len(raw)) == len(raw), f"sample {i}"
