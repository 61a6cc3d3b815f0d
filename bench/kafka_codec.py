"""Kafka codec micro-benchmarks: kio against dovecote.kafka.codec's fast paths, in µs per operation.

    PYTHONPATH=. python bench/kafka_codec.py [--repeats 5] [--budget 0.2]

Each figure is the best of ``--repeats`` timings of as many calls as fit in
``--budget`` seconds (the minimum is the least noisy estimate of the code's own
cost). Single process, no I/O: this measures the codec, not a broker.
"""

from __future__ import annotations

import argparse
import importlib
import io
import timeit
import uuid
from collections.abc import Callable
from dataclasses import fields
from datetime import timedelta

from kio.schema.errors import ErrorCode
from kio.serial import entity_writer

from dovecote.kafka.codec import (
    FrameReader,
    RequestHeader,
    decode_produce_request,
    decode_request,
    encode_fetch_response,
    encode_request_header,
    encode_response_body,
    frame,
    request_class,
    response_module,
)
from dovecote.kafka.codec.bounds import bounds_checker
from dovecote.kafka.codec.produce import _entity_classes
from dovecote.kafka.codec.schemas import KIO_VERSIONS, body_reader
from dovecote.kafka.codec.writer import encode_entity

SUPPORTED = dict(KIO_VERSIONS)
KIB = 1024
MIB = 1024 * KIB


def measure(fn: Callable[[], object], repeats: int, budget: float) -> float:
    """Best time per call in µs."""
    number = 1
    while timeit.timeit(fn, number=number) < budget / 10 and number < 1_000_000:
        number *= 4
    return min(timeit.repeat(fn, number=number, repeat=repeats)) / number * 1e6


def write(entity: object) -> bytes:
    """kio's own writer."""
    out = io.BytesIO()
    entity_writer(type(entity))(out, entity)
    return out.getvalue()


def build(cls: type, **values: object) -> object:
    """A kio entity from those ``values`` its version has."""
    return cls(**{f.name: values[f.name] for f in fields(cls) if f.name in values})


def produce_body(version: int, partitions: int, size: int) -> bytes:
    request_cls, topic_cls, partition_cls = _entity_classes(version)
    records = bytes(size)
    data = tuple(partition_cls(index=i, records=records) for i in range(partitions))
    topic = topic_cls(name="orders", partition_data=data)
    return write(
        request_cls(
            transactional_id=None, acks=-1, timeout=timedelta(seconds=30), topic_data=(topic,)
        )
    )


def request_frame(body: bytes, key: int, version: int, flexible: bool) -> bytes:
    header = encode_request_header(RequestHeader(key, version, 1, "bench"), flexible)
    return header + body


def fetch_entity(version: int, partitions: int, records: bytes) -> object:
    m = response_module(1, version)
    parts = tuple(
        m.PartitionData(
            partition_index=i,
            error_code=ErrorCode.none,
            high_watermark=1000,
            last_stable_offset=1000,
            log_start_offset=0,
            aborted_transactions=None,
            preferred_read_replica=-1,
            records=records,
        )
        for i in range(partitions)
    )
    topic = m.FetchableTopicResponse(topic_id=uuid.UUID(int=1), partitions=parts)
    return m.FetchResponse(
        throttle_time=timedelta(0), error_code=ErrorCode.none, session_id=0, responses=(topic,)
    )


def metadata_entity(topics: int, partitions: int) -> object:
    m = response_module(3, 12)
    return m.MetadataResponse(
        throttle_time=timedelta(0),
        brokers=(m.MetadataResponseBroker(node_id=1, host="localhost", port=9092, rack=None),),
        cluster_id="dovecote",
        controller_id=1,
        topics=tuple(
            m.MetadataResponseTopic(
                error_code=ErrorCode.none,
                name=f"topic-{t}",
                topic_id=uuid.UUID(int=t + 1),
                is_internal=False,
                partitions=tuple(
                    m.MetadataResponsePartition(
                        error_code=ErrorCode.none,
                        partition_index=p,
                        leader_id=1,
                        leader_epoch=0,
                        replica_nodes=(1,),
                        isr_nodes=(1,),
                        offline_replicas=(),
                    )
                    for p in range(partitions)
                ),
                topic_authorized_operations=-(2**31),
            )
            for t in range(topics)
        ),
    )


def fetch_tuples(partitions: int, records: bytes) -> list:
    return [
        (uuid.UUID(int=1), [(i, 0, 1000, 1000, 0, None, -1, records) for i in range(partitions)])
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--budget", type=float, default=0.2)
    args = parser.parse_args()

    def run(label: str, fn: Callable[[], object]) -> None:
        print(f"  {label:<48} {measure(fn, args.repeats, args.budget):10.2f}")

    print("Produce request decode, v9 (µs)")
    reader = body_reader(0, 9)
    walk = bounds_checker(request_class(0, 9))
    for partitions, size in [
        (1, KIB),
        (1, 16 * KIB),
        (1, 64 * KIB),
        (8, 16 * KIB),
        (1, MIB),
        (4, MIB),
    ]:
        body = produce_body(9, partitions, size)
        shape = f"{partitions} x {size // KIB} KiB"
        run(f"{shape}: kio reader", lambda body=body: reader(body, 0))
        run(f"{shape}: bounds walk + kio reader", lambda b=body: (walk(b, 0, len(b)), reader(b, 0)))
        run(f"{shape}: zero-copy decoder", lambda b=body: decode_produce_request(b, 0, 9))
        wire = request_frame(body, 0, 9, True)
        run(f"{shape}: decode_request", lambda w=wire: decode_request(w, SUPPORTED))

    print("Fetch response encode, v16 (µs)")
    for partitions, size in [(1, KIB), (8, 16 * KIB), (8, MIB), (100, 0)]:
        records = bytes(size)
        entity = fetch_entity(16, partitions, records)
        shape = f"{partitions} x {size // KIB} KiB"
        run(f"{shape}: kio writer (entity built)", lambda e=entity: write(e))
        run(
            f"{shape}: kio build + write",
            lambda p=partitions, r=records: write(fetch_entity(16, p, r)),
        )
        if size < MIB:  # it appends record data to one bytearray and copies that to bytes
            run(f"{shape}: compiled writer (entity built)", lambda e=entity: encode_entity(e))
        run(
            f"{shape}: encode_fetch_response",
            lambda p=partitions, r=records: encode_fetch_response(
                1, 16, 0, 0, 0, fetch_tuples(p, r)
            ),
        )

    print("Other messages (µs)")
    m = response_module(0, 9)
    produce_response = m.ProduceResponse(
        responses=(
            m.TopicProduceResponse(
                name="orders",
                partition_responses=tuple(
                    m.PartitionProduceResponse(
                        index=i, error_code=ErrorCode.none, base_offset=i * 100, record_errors=()
                    )
                    for i in range(8)
                ),
            ),
        ),
        throttle_time=timedelta(0),
    )
    run("produce response v9, 8 partitions: kio writer", lambda: write(produce_response))
    run(
        "produce response v9, 8 partitions: compiled writer",
        lambda: encode_entity(produce_response),
    )
    run(
        "produce response v9, 8 partitions: encode_response",
        lambda: encode_response_body(1, produce_response),
    )
    metadata_response = metadata_entity(20, 10)
    run("metadata response v12, 20 x 10 partitions: kio writer", lambda: write(metadata_response))
    run(
        "metadata response v12, 20 x 10 partitions: compiled",
        lambda: encode_entity(metadata_response),
    )
    fm = importlib.import_module(request_class(1, 15).__module__)
    fetch_body = write(
        build(
            fm.FetchRequest,
            max_wait=timedelta(milliseconds=500),
            min_bytes=1,
            max_bytes=50 * MIB,
            isolation_level=0,
            session_id=0,
            session_epoch=-1,
            topics=(
                fm.FetchTopic(
                    topic_id=uuid.UUID(int=1),
                    partitions=tuple(
                        build(
                            fm.FetchPartition,
                            partition=i,
                            current_leader_epoch=0,
                            fetch_offset=100,
                            last_fetched_epoch=-1,
                            log_start_offset=-1,
                            partition_max_bytes=MIB,
                        )
                        for i in range(10)
                    ),
                ),
            ),
            forgotten_topics_data=(),
            rack_id="",
        )
    )
    wire = request_frame(fetch_body, 1, 15, True)
    run("fetch request v15, 10 partitions: decode_request", lambda: decode_request(wire, SUPPORTED))
    mm = importlib.import_module(request_class(3, 12).__module__)
    metadata_body = write(
        mm.MetadataRequest(
            topics=(mm.MetadataRequestTopic(topic_id=None, name="orders"),),
            allow_auto_topic_creation=True,
            include_topic_authorized_operations=False,
        )
    )
    wire = request_frame(metadata_body, 3, 12, True)
    run("metadata request v12: decode_request", lambda: decode_request(wire, SUPPORTED))

    print("Framing (µs per feed)")
    small = frame(wire) * 100
    run("100 small frames in one chunk", lambda: FrameReader(MIB).feed(small))
    big = frame(bytes(MIB))
    chunks = [big[i : i + 64 * KIB] for i in range(0, len(big), 64 * KIB)]

    def feed_chunks() -> None:
        reader = FrameReader(2 * MIB)
        for chunk in chunks:
            reader.feed(chunk)

    run("one 1 MiB frame in 64 KiB chunks (17 feeds)", feed_chunks)


if __name__ == "__main__":
    main()
