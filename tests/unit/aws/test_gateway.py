"""The gateway without sockets: routing to operations, the queue URL of query
clients taken from the path, errors in the request's protocol, a failing
operation answered with InternalFailure, and SigV4 when credentials are set."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from dovecote.aws.context import RequestContext, name_from_arn, queue_name_from_url
from dovecote.aws.errors import AwsError
from dovecote.aws.gateway import Gateway, parse_credentials

BASE = "http://broker.example:9324"


class Table:
    def __init__(self, operations):
        self.operations = operations


def gateway(**kw) -> tuple[Gateway, list]:
    calls: list = []

    async def get_queue_url(params, ctx: RequestContext):
        calls.append(("GetQueueUrl", params, ctx))
        return {"QueueUrl": ctx.queue_url(params["QueueName"])}

    async def send_message(params, ctx: RequestContext):
        calls.append(("SendMessage", params, ctx))
        return {"MessageId": "m", "MD5OfMessageBody": "x"}

    async def boom(params, ctx):
        raise RuntimeError("bug")

    async def purge(params, ctx):
        raise AwsError("QueueDoesNotExist", "The specified queue does not exist.")

    table = Table(
        {
            "GetQueueUrl": get_queue_url,
            "SendMessage": send_message,
            "ListQueues": boom,
            "PurgeQueue": purge,
        }
    )
    return Gateway({"sqs": table}, account="123456789012", default_region="us-east-1", **kw), calls


def call(gw: Gateway, method: str, target: str, headers: dict, body: bytes):
    return asyncio.run(gw.handle(method, target, headers, body, BASE))


JSON = {"Content-Type": "application/x-amz-json-1.0"}


def test_json_request_reaches_its_operation_with_the_context():
    gw, calls = gateway()
    status, _, body = call(
        gw, "POST", "/", {**JSON, "X-Amz-Target": "AmazonSQS.GetQueueUrl"}, b'{"QueueName":"q"}'
    )
    assert status == 200
    assert json.loads(body) == {"QueueUrl": f"{BASE}/123456789012/q"}
    _, _, ctx = calls[0]
    assert ctx.region == "us-east-1" and ctx.account == "123456789012"


def test_query_client_posting_to_the_queue_url_gets_its_queue_url_from_the_path():
    gw, calls = gateway()
    status, _, body = call(
        gw,
        "POST",
        "/123456789012/orders",
        {"Content-Type": "application/x-www-form-urlencoded"},
        b"Action=SendMessage&Version=2012-11-05&MessageBody=hi",
    )
    assert status == 200, body
    assert calls[0][1]["QueueUrl"] == f"{BASE}/123456789012/orders"
    assert b"<SendMessageResponse" in body


def test_errors_are_answered_in_the_request_protocol():
    gw, _ = gateway()
    status, headers, body = call(
        gw, "POST", "/", {**JSON, "X-Amz-Target": "AmazonSQS.PurgeQueue"}, b'{"QueueUrl":"u"}'
    )
    assert status == 400
    assert json.loads(body)["__type"] == "com.amazonaws.sqs#QueueDoesNotExist"
    assert headers["x-amzn-query-error"] == "AWS.SimpleQueueService.NonExistentQueue;Sender"
    status, _, body = call(
        gw,
        "POST",
        "/",
        {"Content-Type": "application/x-www-form-urlencoded"},
        b"Action=PurgeQueue&Version=2012-11-05&QueueUrl=u",
    )
    assert status == 400 and b"<Code>AWS.SimpleQueueService.NonExistentQueue</Code>" in body


def test_an_operation_that_fails_is_an_internal_failure_not_a_dropped_request():
    gw, _ = gateway()
    status, _, body = call(gw, "POST", "/", {**JSON, "X-Amz-Target": "AmazonSQS.ListQueues"}, b"{}")
    assert status == 500
    assert json.loads(body)["__type"].endswith("InternalFailure")


def test_an_operation_not_served_is_invalid_action():
    gw, _ = gateway()
    status, _, body = call(
        gw,
        "POST",
        "/",
        {**JSON, "X-Amz-Target": "AmazonSQS.TagQueue"},
        b'{"QueueUrl":"u","Tags":{}}',
    )
    assert status == 400 and b"InvalidAction" in body


def signed(key: str, secret: str, body: bytes) -> dict[str, str]:
    request = AWSRequest(
        "POST", f"{BASE}/", data=body, headers={**JSON, "X-Amz-Target": "AmazonSQS.GetQueueUrl"}
    )
    SigV4Auth(Credentials(key, secret), "sqs", "eu-central-1").add_auth(request)
    return {**dict(request.headers), "Host": "broker.example:9324"}  # what HTTP adds


def test_signatures_are_checked_when_credentials_are_configured():
    gw, calls = gateway(credentials=parse_credentials("AKID:secret"), now=lambda: datetime.now(UTC))
    body = b'{"QueueName":"q"}'
    status, _, _ = call(gw, "POST", "/", signed("AKID", "secret", body), body)
    assert status == 200 and calls[0][2].region == "eu-central-1"
    assert calls[0][2].access_key == "AKID"
    status, _, answer = call(gw, "POST", "/", signed("AKID", "wrong", body), body)
    assert status == 403 and b"SignatureDoesNotMatch" in answer
    status, _, answer = call(gw, "POST", "/", signed("OTHER", "secret", body), body)
    assert status == 403 and b"InvalidClientTokenId" in answer


def test_queue_urls_and_arns_are_read_by_their_last_part():
    assert queue_name_from_url("http://elsewhere:1234/000000000000/q.fifo") == "q.fifo"
    assert queue_name_from_url("https://sqs.us-east-1.amazonaws.com/1/orders/") == "orders"
    assert name_from_arn("arn:aws:sqs:us-east-1:1:orders", "sqs") == "orders"
    for bad in ("arn:aws:sns:us-east-1:1:t", "nonsense", "arn:aws:sqs:r:1:"):
        try:
            name_from_arn(bad, "sqs")
        except AwsError as error:
            assert error.code == "InvalidParameterValue"
        else:
            raise AssertionError(bad)
