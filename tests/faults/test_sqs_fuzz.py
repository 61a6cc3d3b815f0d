"""Malformed input against the SQS listener: JSON bodies of every operation
with members of the wrong type, truncated, deeply nested or not UTF-8;
broken query forms and XML-ish garbage; wrong or missing X-Amz-Target and
other headers; bodies over ``aws_max_request_bytes``; a Content-Length that
lies; requests that stall. The broker never dies, no client error gets a
5xx (a 4xx with an AWS error body instead), resident memory stays within
RSS_BOUND_MIB, and a boto3 client sending, receiving and deleting
meanwhile keeps working and loses nothing it was told was sent."""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
import random
import re
import socket
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import pytest
from botocore.model import Shape
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dovecote.aws.model import service_model
from tests.faults.fuzzing import MiB, SteadyLoop, Watch
from tests.faults.harness import SCALE, Broker, scaled, seeded
from tests.faults.sqs import create_queue, sqs_client

RSS_BOUND_MIB = 128  # as for the other listeners (see test_kafka_fuzz.py)
SECONDS = 10 * SCALE
STALL_S = 2  # request_stall_timeout_ms of this broker: stalled requests go quickly
LIMIT = 2 * MiB  # aws_max_request_bytes (the default)
JSON_TYPE = "application/x-amz-json-1.0"
FORM_TYPE = "application/x-www-form-urlencoded"
SQS_JSON = service_model("sqs", "json")
OPERATIONS = sorted(SQS_JSON.operation_names)
STATUS = re.compile(rb"HTTP/1\.[01] (\d{3}) ")


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    broker = Broker(
        tmp_path_factory.mktemp("sqs-fuzz") / "data",
        settings={"request_stall_timeout_ms": str(STALL_S * 1000)},
    ).start()
    yield broker
    broker.stop()


@pytest.fixture(scope="module")
def fuzz_queues(broker) -> list[str]:
    """Queues the fuzzed requests name (and may delete, purge, reconfigure)."""
    return [create_queue(broker, "fuzz-std"), create_queue(broker, "fuzz.fifo", FifoQueue="true")]


@dataclass
class SteadySqs(SteadyLoop):
    """Sends one message, long-polls it back and deletes it, over and over,
    on its own queue; every message answered 200 must come back."""

    broker: Broker

    def setup(self) -> None:
        self.url = create_queue(self.broker, f"steady-{uuid.uuid4().hex[:8]}")

    def connect(self) -> Any:
        return sqs_client(self.broker.aws_endpoint, read_timeout=self.limit)

    def round_trip(self, client: Any, n: int) -> str | None:
        body = f"steady-{n}"
        client.send_message(QueueUrl=self.url, MessageBody=body)
        deadline = time.monotonic() + self.limit
        while time.monotonic() < deadline:
            got = client.receive_message(
                QueueUrl=self.url, MaxNumberOfMessages=10, WaitTimeSeconds=1
            ).get("Messages", [])
            for message in got:
                client.delete_message(QueueUrl=self.url, ReceiptHandle=message["ReceiptHandle"])
                if message["Body"] == body:
                    return None
        return "message not received back"


def server_errors(broker: Broker) -> list[str]:
    """Unhandled errors the broker logged (the listener logs every 5xx it makes)."""
    lines = broker.log_path.read_text(errors="replace").splitlines()
    return [line for line in lines if "request failed" in line or "Traceback" in line]


def is_aws_error(headers: dict[str, str], body: bytes) -> bool:
    """An AWS error body: JSON with __type and message, or a query ErrorResponse."""
    if headers.get("content-type", "").startswith(JSON_TYPE):
        try:
            document = json.loads(body)
        except ValueError:
            return False
        return isinstance(document, dict) and "__type" in document and "message" in document
    return body.startswith(b"<?xml") and b"<ErrorResponse" in body and b"<Code>" in body


def call(broker: Broker, body: bytes, headers: dict[str, str], path: str = "/") -> tuple:
    """POST one request; (status, lower-cased headers, body)."""
    host, port = broker.addresses["aws"].rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        answer = response.read()
        got = {k.lower(): v for k, v in response.getheaders()}
        return response.status, got, answer
    finally:
        conn.close()


def json_headers(operation: str) -> dict[str, str]:
    return {"Content-Type": JSON_TYPE, "X-Amz-Target": f"AmazonSQS.{operation}"}


# --- raw garbage over many connections -------------------------------------------------


def deep(depth: int) -> bytes:
    return b'{"QueueUrl":' + b"[" * depth + b"]" * depth + b"}"


def raw_request(rng: random.Random, queue_url: str) -> bytes:
    """One malformed request, or plain garbage."""
    kind = rng.randrange(12)
    target = rng.choice(
        [b"AmazonSQS.SendMessage", b"AmazonSQS.Nope", b"AmazonSNS.Publish", b"", b"\xff\xfe", b"."]
        + [b"AmazonSQS." + op.encode() for op in rng.sample(OPERATIONS, 2)]
    )
    good = json.dumps({"QueueUrl": queue_url, "MessageBody": "x"}).encode()
    if kind == 0:
        return rng.randbytes(rng.randint(1, 2000))
    if kind == 1:  # a body that is not JSON, not UTF-8, truncated, deeply nested
        body = rng.choice(
            [
                good[: rng.randrange(len(good))],
                b"\xff" + good,
                deep(rng.choice([50, 5000, 100000])),
                rng.randbytes(rng.randint(0, 300)),
                b"[]",
                b"null",
                b"1e999999",
                b'"\\ud800"',
            ]
        )
    elif kind == 2:  # a query form that is broken or XML-ish
        body = rng.choice(
            [
                b"Action=SendMessage&Version=2012-11-05&QueueUrl=%zz",
                b"Action=" + rng.randbytes(20),
                b"<?xml version='1.0'?><!DOCTYPE x [<!ENTITY a 'aaaa'>]><x>&a;</x>",
                b"Action=ReceiveMessage&Version=2012-11-05&MaxNumberOfMessages=99999999999999999",
                b"&&&===&Action&Version=" + b"%" * 100,
                b"Action=SendMessageBatch&Version=2012-11-05&SendMessageBatchRequestEntry.999999999.Id=a",
            ]
        )
        return (
            b"POST /000000000000/fuzz-std HTTP/1.1\r\nContent-Type: "
            + FORM_TYPE.encode()
            + b"\r\nContent-Length: %d\r\n\r\n" % len(body)
            + body
        )
    elif kind == 3:  # Content-Length lies: longer (the broker waits, then the stall watchdog)
        return (
            b"POST / HTTP/1.1\r\nX-Amz-Target: AmazonSQS.SendMessage\r\nContent-Length: "
            + rng.choice([b"100000", b"-1", b"abc", b"18446744073709551617", b"5, 7"])
            + b"\r\n\r\n"
            + good
        )
    elif kind == 4:  # shorter: the rest is read as the next request
        return (
            b"POST / HTTP/1.1\r\nX-Amz-Target: AmazonSQS.SendMessage\r\nContent-Length: 5\r\n\r\n"
            + good
        )
    elif kind == 5:  # a stalled request: headers never finish
        return b"POST / HTTP/1.1\r\nX-Amz-Target: AmazonSQS.SendMessage\r\nContent-"
    elif kind == 6:  # garbage headers: a signature that is not one, odd dates, control bytes
        extra = rng.choice(
            [
                b"Authorization: AWS4-HMAC-SHA256 Credential=/,,,==\r\n",
                b"Authorization: \xff\xff\r\n",
                b"X-Amz-Date: 99999999T999999Z\r\n",
                b"Host: \r\n",
                b"X-Amzn-Query-Mode: \x00\r\n",
                b"Content-Type: application/x-amz-json-9.9\r\n",
                b"X-Amz-Target: AmazonSQS.SendMessage\r\n",
            ]
        )
        return (
            b"POST / HTTP/1.1\r\nX-Amz-Target: "
            + target
            + b"\r\n"
            + extra
            + b"Content-Length: %d\r\n\r\n" % len(good)
            + good
        )
    elif kind == 7:  # over the limit, told in advance: 413 before the body is read
        return (
            b"POST / HTTP/1.1\r\nX-Amz-Target: AmazonSQS.SendMessage\r\nContent-Length: %d\r\n\r\n"
            % (LIMIT + rng.randint(1, 1 << 30))
            + b"x" * rng.randint(0, 65536)
        )
    elif kind == 8:  # chunked and over the limit: refused once the limit is passed
        chunk = b"x" * 65536
        return (
            b"POST / HTTP/1.1\r\nX-Amz-Target: AmazonSQS.SendMessage\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n" + (b"10000\r\n" + chunk + b"\r\n") * 40
        )
    elif kind == 9:  # broken chunked bodies
        return (
            b"POST / HTTP/1.1\r\nX-Amz-Target: AmazonSQS.SendMessage\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
            + rng.choice([b"zz\r\n", b"ffffffffffffffff\r\nxx", b"5\r\nab\r\n0\r\n\r\n"])
        )
    elif kind == 10:  # other methods and paths
        method = rng.choice([b"GET", b"PUT", b"DELETE", b"HEAD", b"OPTIONS", b"BREW"])
        path = rng.choice([b"/", b"/000000000000/fuzz-std", b"/sns.pem", b"*", b"/%00"])
        return method + b" " + path + b"?Action=ListQueues&Version=2012-11-05 HTTP/1.1\r\n\r\n"
    else:
        body = good
    return (
        b"POST / HTTP/1.1\r\nX-Amz-Target: "
        + target
        + b"\r\nContent-Type: application/x-amz-json-1.0"
        b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    )


@dataclass
class Answers:
    requests: int = 0
    connections: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    server_errors: list[bytes] = field(default_factory=list)


def answered_whole(received: bytes) -> bool:
    """One whole answer (head and its Content-Length of body) is in ``received``."""
    head, sep, body = received.partition(b"\r\n\r\n")
    match = re.search(rb"(?i)content-length: (\d+)", head)
    return bool(sep and match and len(body) >= int(match[1]))


async def _send(address: tuple[str, int], data: bytes, answers: Answers, read_for: float) -> None:
    try:
        reader, writer = await asyncio.open_connection(*address)
    except OSError:
        await asyncio.sleep(0.05)
        return
    answers.connections += 1
    answers.requests += 1
    received = b""
    try:
        writer.write(data)
        await writer.drain()
        deadline = time.monotonic() + read_for
        while (remaining := deadline - time.monotonic()) > 0 and len(received) < 1 << 16:
            chunk = await asyncio.wait_for(reader.read(65536), remaining)
            if not chunk:
                break
            received += chunk
            if answered_whole(received):
                break  # kept alive: no need to wait for more
    except (OSError, TimeoutError):
        pass
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except OSError:
            pass
    for match in STATUS.finditer(received):
        status = int(match[1])
        answers.statuses[status] = answers.statuses.get(status, 0) + 1
        if status >= 500:
            answers.server_errors.append(data[:300])


def blast_requests(broker: Broker, requests, seconds: float, concurrency: int = 16) -> Answers:
    host, port = broker.addresses["aws"].rsplit(":", 1)
    answers = Answers()

    async def worker(deadline: float) -> None:
        while time.monotonic() < deadline and broker.check():
            await _send((host, int(port)), next(requests), answers, 0.5)

    async def main() -> None:
        deadline = time.monotonic() + seconds
        await asyncio.gather(*(worker(deadline) for _ in range(concurrency)))

    asyncio.run(main())
    return answers


def test_malformed_sqs_requests_never_hurt_the_broker(broker, fuzz_queues, fault_report):
    seed, rng = seeded()

    def requests():
        while True:
            yield raw_request(rng, rng.choice(fuzz_queues))

    with SteadySqs(broker) as steady, Watch(broker) as watch:
        answers = blast_requests(broker, requests(), SECONDS)
    alive = broker.settle()
    errors = server_errors(broker)
    fault_report(
        "malformed SQS requests",
        runs=answers.requests,
        acknowledged=steady.rounds,
        lost=len(steady.failures),
        crashes=broker.crashes,
        server_errors=len(errors) + len(answers.server_errors),
        statuses=",".join(f"{k}:{v}" for k, v in sorted(answers.statuses.items())),
        steady_p99_ms=round(steady.p99 * 1000),
        rss_growth_mib=round(watch.growth_mib, 1),
        seed=seed,
    )
    assert alive, broker.crash_logs[-1]
    assert not answers.server_errors, answers.server_errors[:5]
    assert not errors, errors[:5]
    assert not steady.failures, steady.failures[:3]
    assert steady.rounds > 10, "the steady client should have kept going"
    assert watch.growth_mib < RSS_BOUND_MIB, f"RSS grew by {watch.growth_mib:.0f} MiB"


# --- oversized, lying and stalled requests, one at a time --------------------------------


def test_oversized_bodies_get_413_unread(broker, fault_report):
    """Fifty clients at once announce 1 GiB bodies and keep sending: each gets
    a 413 with an AWS error body after its headers, its connection is closed,
    and the broker's memory does not grow by what they sent."""
    host, port = broker.addresses["aws"].rsplit(":", 1)
    clients = 50
    statuses: list[int] = []
    sent_after = [0] * clients

    async def one(index: int) -> None:
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(
            b"POST / HTTP/1.1\r\nX-Amz-Target: AmazonSQS.SendMessage\r\n"
            b"Content-Type: application/x-amz-json-1.0\r\nContent-Length: %d\r\n\r\n" % (1 << 30)
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        statuses.append(int(head.split()[1]))
        length = int(re.search(rb"Content-Length: (\d+)", head)[1])
        body = await reader.readexactly(length)
        assert b"RequestEntityTooLarge" in body, body
        chunk = b"x" * (1 << 20)
        try:
            for _ in range(8):  # the broker has closed: sending fails soon
                writer.write(chunk)
                await asyncio.wait_for(writer.drain(), 5)
                sent_after[index] += len(chunk)
        except (OSError, TimeoutError):
            pass
        try:
            rest = await asyncio.wait_for(reader.read(), 10)
        except OSError:
            rest = b""  # reset: closed by the broker with our bytes unread
        assert rest == b"", rest[:100]  # closed by the broker
        writer.close()

    async def main() -> None:
        await asyncio.gather(*(one(i) for i in range(clients)))

    with Watch(broker) as watch:
        asyncio.run(main())
    fault_report(
        "SQS bodies over the limit",
        runs=clients,
        crashes=broker.crashes,
        rss_growth_mib=round(watch.growth_mib, 1),
        sent_after_413_mib=round(sum(sent_after) / MiB, 1),
    )
    assert broker.check()
    assert statuses == [413] * clients
    assert watch.growth_mib < 50, f"RSS grew by {watch.growth_mib:.0f} MiB"


def test_a_chunked_body_over_the_limit_is_refused(broker):
    host, port = broker.addresses["aws"].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            b"POST / HTTP/1.1\r\nX-Amz-Target: AmazonSQS.SendMessage\r\n"
            b"Content-Type: application/x-amz-json-1.0\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        chunk = b"100000\r\n" + b"x" * (1 << 20) + b"\r\n"
        # Two MiB, then just past the limit, then nothing: the broker has read
        # all we sent when it answers, so it closes without a reset.
        sock.sendall(chunk + chunk + b"1000\r\n" + b"x" * 4096 + b"\r\n")
        answer = b""
        while data := sock.recv(65536):
            answer += data
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    assert b"RequestEntityTooLarge" in answer


def test_a_lying_content_length_and_a_stall_are_closed(broker):
    """A body shorter than its Content-Length, then silence: the stall
    watchdog closes the connection (no answer is owed); a slow client that
    keeps sending a byte at a time is served."""
    host, port = broker.addresses["aws"].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=STALL_S * 5) as sock:
        sock.sendall(
            b"POST / HTTP/1.1\r\nX-Amz-Target: AmazonSQS.ListQueues\r\n"
            b"Content-Type: application/x-amz-json-1.0\r\nContent-Length: 1000\r\n\r\n{}"
        )
        started = time.monotonic()
        assert sock.recv(65536) == b""
        assert time.monotonic() - started < STALL_S * 3
    request = (
        b"POST / HTTP/1.1\r\nX-Amz-Target: AmazonSQS.ListQueues\r\n"
        b"Content-Type: application/x-amz-json-1.0\r\nContent-Length: 2\r\n\r\n{}"
    )
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        for i in range(0, len(request), 8):
            sock.sendall(request[i : i + 8])
            time.sleep(0.02)
        assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")


# --- well-formed requests, random content ----------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats()
    | st.text(max_size=20)
    | st.sampled_from(["", "0", "-1", "All", "String", "Binary", "Number", "\x00", "\ud7ff"]),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)


def members(shape: Shape | None) -> list[str]:
    names: set[str] = set()

    def walk(s: Shape | None, depth: int) -> None:
        if s is None or depth > 4:
            return
        if s.type_name == "structure":
            for name, member in s.members.items():
                names.add(name)
                walk(member, depth + 1)
        elif s.type_name == "list":
            walk(s.member, depth + 1)
        elif s.type_name == "map":
            walk(s.value, depth + 1)

    walk(shape, 0)
    return sorted(names)


MEMBER_NAMES = sorted(
    {n for op in OPERATIONS for n in members(SQS_JSON.operation_model(op).input_shape)}
)
field_names = st.sampled_from(MEMBER_NAMES)
json_bodies = st.one_of(
    st.dictionaries(field_names, json_values, max_size=6),
    st.dictionaries(
        field_names,
        st.lists(st.dictionaries(field_names, json_values, max_size=5), max_size=3),
        max_size=4,
    ),
    st.dictionaries(
        field_names,
        st.dictionaries(
            st.text(max_size=8), st.dictionaries(field_names, json_values, max_size=3), max_size=3
        ),
        max_size=3,
    ),
    json_values,
)


def no_long_poll(operation: str, document: Any) -> Any:
    """A fuzzed receive must not wait: its WaitTimeSeconds, if an integer, is 0."""
    if operation == "ReceiveMessage" and isinstance(document, dict):
        wait = document.get("WaitTimeSeconds")
        if wait is None or (isinstance(wait, int) and not isinstance(wait, bool)):
            document["WaitTimeSeconds"] = 0
    return document


@settings(
    max_examples=scaled(400),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    operation=st.sampled_from(OPERATIONS),
    body=json_bodies,
    url=st.sampled_from([0, 1, None]),
)
def test_random_json_on_every_operation_gets_a_4xx_aws_error(
    broker, fuzz_queues, operation, body, url
):
    if url is not None and isinstance(body, dict):
        body["QueueUrl"] = fuzz_queues[url]  # far enough to reach the operation
    body = no_long_poll(operation, body)
    data = json.dumps(body).encode()
    status, headers, answer = call(broker, data, json_headers(operation))
    assert broker.check(), broker.crash_logs[-1]
    assert status < 500, f"{operation} {data[:300]!r} -> {status} {answer[:300]!r}"
    if status >= 400:
        assert is_aws_error(headers, answer), (operation, data[:200], answer[:200])


# Requests of the right shape with odd values: what reaches the operations themselves.
ODD_STRINGS = [
    "", "0", "-1", "20", "262144", "1209600", "99999999999", "All", "String", "Binary", "Number",
    "String.x", "Number.1", "true", "\x00", "é" * 10, "x" * 300, "y" * 70000, "{", "[]", "null",
    '{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:000000000000:fuzz-std","maxReceiveCount":"a"}',
    '{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:000000000000:nope","maxReceiveCount":1}',
    '{"redrivePermission":"byQueue","sourceQueueArns":["x"]}', '{"Version":"2012-10-17"}',
    "arn:aws:sqs:us-east-1:000000000000:fuzz-std", "arn:aws:sqs:us-east-1:000000000000:fuzz.fifo",
    "arn:aws:sqs:us-east-1:000000000000:nope", "0.0.1", "ffffffff.ffffffffffffffff.ffffffffffffffff",
    "fuzz-std", "fuzz.fifo", "a.fifo", "1e5", "1.5", " 1",
]  # fmt: skip
ODD_INTS = [0, 1, -1, 10, 11, 20, 21, 900, 901, 43200, 43201, 2**31, -(2**31), 2**63, 2**64]


def typed(shape: Shape, depth: int = 0) -> st.SearchStrategy[Any]:
    """Values of ``shape``'s JSON type, biased to limits and odd texts; any
    member may be missing (required ones too)."""
    kind = shape.type_name
    if kind == "structure":
        return st.fixed_dictionaries(
            {}, optional={name: typed(member, depth + 1) for name, member in shape.members.items()}
        )
    if kind == "list":
        return st.lists(typed(shape.member, depth + 1), max_size=11 if depth < 3 else 0)
    if kind == "map":
        keys = st.sampled_from(shape.key.enum) if shape.key.enum else st.nothing()
        return st.dictionaries(
            keys | st.sampled_from(ODD_STRINGS[:16]), typed(shape.value, depth + 1), max_size=3
        )
    if kind == "string":
        enum = st.sampled_from(shape.enum) if shape.enum else st.nothing()
        return enum | st.sampled_from(ODD_STRINGS) | st.text(max_size=20)
    if kind in ("integer", "long"):
        return st.sampled_from(ODD_INTS) | st.integers(-(2**64), 2**64)
    if kind == "boolean":
        return st.booleans()
    if kind == "blob":
        return st.binary(max_size=100).map(lambda b: base64.b64encode(b).decode())
    return st.none()


@st.composite
def typed_requests(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    operation = draw(st.sampled_from([op for op in OPERATIONS if op != "DeleteQueue"]))
    shape = SQS_JSON.operation_model(operation).input_shape
    return operation, draw(typed(shape)) if shape is not None else {}


@settings(
    max_examples=scaled(600),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(request=typed_requests(), url=st.sampled_from([0, 1, None]))
def test_typed_requests_with_odd_values_get_no_server_error(broker, fuzz_queues, request, url):
    operation, body = request
    if url is not None:
        body["QueueUrl"] = fuzz_queues[url]
    body = no_long_poll(operation, body)
    data = json.dumps(body).encode()
    status, headers, answer = call(broker, data, json_headers(operation))
    assert broker.check(), broker.crash_logs[-1]
    assert status < 500, f"{operation} {data[:300]!r} -> {status} {answer[:300]!r}"
    if status >= 400:
        assert is_aws_error(headers, answer), (operation, data[:200], answer[:200])


form_keys = st.one_of(
    field_names,
    st.sampled_from(
        [
            "Attribute.1.Name",
            "Attribute.1.Value",
            "Tag.1.Key",
            "MessageAttribute.1.Name",
            "MessageAttribute.1.Value.DataType",
            "MessageAttribute.1.Value.StringValue",
            "SendMessageBatchRequestEntry.1.Id",
            "SendMessageBatchRequestEntry.1.MessageBody",
            "SendMessageBatchRequestEntry.0.Id",
            "SendMessageBatchRequestEntry.2.Id",
            "DeleteMessageBatchRequestEntry.1.ReceiptHandle",
            "AttributeName.1",
            "MessageSystemAttributeName.1",
        ]
    ),
    st.text(max_size=12),
)


@settings(
    max_examples=scaled(300),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    operation=st.sampled_from([*OPERATIONS, "Nope", ""]),
    form=st.dictionaries(form_keys, st.text(max_size=30), max_size=8),
    version=st.sampled_from(["2012-11-05", "2010-03-31", "", "x"]),
    url=st.sampled_from([0, 1, None]),
)
def test_random_query_forms_get_a_4xx_aws_error(broker, fuzz_queues, operation, form, version, url):
    fields = dict(form, Action=operation, Version=version)
    if url is not None:
        fields["QueueUrl"] = fuzz_queues[url]
    if operation == "ReceiveMessage" and not fields.get("WaitTimeSeconds", "0").isdigit():
        pass  # not an integer: refused before any wait
    elif operation == "ReceiveMessage":
        fields["WaitTimeSeconds"] = "0"
    data = urlencode(fields).encode()
    status, headers, answer = call(broker, data, {"Content-Type": FORM_TYPE})
    assert broker.check(), broker.crash_logs[-1]
    assert status < 500, f"{data[:300]!r} -> {status} {answer[:300]!r}"
    if status >= 400:
        assert is_aws_error(headers, answer), (data[:200], answer[:200])


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"{",
        b'{"QueueUrl": "',
        b"\xff\xfe\x00",
        b'{"QueueUrl": "\xff"}',
        deep(100000),
        b'{"QueueUrl": "' + b"u" * (LIMIT - 100) + b'"}',
        b'{"MessageBody": "' + b"b" * (LIMIT - 100) + b'"}',
        b'{"Entries": [' + b",".join([b'{"Id": "a", "MessageBody": "x"}'] * 20000) + b"]}",
        b'{"QueueUrl": 1e400}',
        b'{"MaxNumberOfMessages": 99999999999999999999999999999}',
        b'{"QueueUrl": {"QueueUrl": {"QueueUrl": null}}}',
        b'{"__proto__": {}, "constructor": 1}',
        b'{"QueueUrl": "x", "QueueUrl": 7}',
    ],
    ids=lambda b: f"{b[:24]!r}..{len(b)}",
)
@pytest.mark.parametrize("operation", ["SendMessage", "SendMessageBatch", "ReceiveMessage"])
def test_hand_picked_json_gets_a_4xx_aws_error(broker, fuzz_queues, operation, body):
    status, headers, answer = call(broker, body, json_headers(operation))
    assert broker.check(), broker.crash_logs[-1]
    assert 400 <= status < 500, f"{operation} {body[:100]!r} -> {status} {answer[:300]!r}"
    assert is_aws_error(headers, answer), answer[:300]


@pytest.mark.parametrize("limit", [-1, 0, 1001, 2**63])
@pytest.mark.parametrize("operation", ["ListQueues", "ListDeadLetterSourceQueues"])
def test_list_limits_out_of_range_get_a_4xx(broker, operation, limit):
    """A negative MaxResults on ListDeadLetterSourceQueues was a 500 (IndexError)."""
    url = create_queue(broker, "limits")  # the fuzzed requests may have deleted theirs
    body = json.dumps({"QueueUrl": url, "MaxResults": limit}).encode()
    status, _headers, answer = call(broker, body, json_headers(operation))
    assert status == 400, answer[:300]
    assert json.loads(answer)["__type"].endswith("InvalidParameterValue")


def test_sqs_fuzz_left_no_server_errors_in_the_log(broker):
    assert broker.settle(0.2), broker.crash_logs[-1]
    assert not server_errors(broker), server_errors(broker)[:5]
