"""murmur2 must agree with Kafka's Java client, which kafka-python mirrors."""

from hypothesis import given
from hypothesis import strategies as st
from kafka.partitioner.default import murmur2 as kafka_python_murmur2

from dovecote.core.partitioner import Partitioner, murmur2, partition_for_key


@given(st.binary(max_size=64))
def test_murmur2_matches_kafka_python(data):
    theirs = kafka_python_murmur2(data)
    assert murmur2(data) & 0x7FFFFFFF == theirs & 0x7FFFFFFF


def test_known_java_values():
    # Values from Kafka's own UtilsTest.testMurmur2.
    assert murmur2(b"21") == -973932308
    assert murmur2(b"foobar") == -790332482
    assert murmur2(b"a-little-bit-long-string") == -985981536
    assert murmur2(b"a-little-bit-longer-string") == -1486304829
    assert murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8") == -58897971
    assert murmur2(b"abc") == 479470107


def test_keyless_round_robin_and_keyed_stable():
    p = Partitioner()
    assert [p.choose(None, 3) for _ in range(6)] == [0, 1, 2, 0, 1, 2]
    assert p.choose(b"k", 7) == partition_for_key(b"k", 7) == p.choose(b"k", 7)
