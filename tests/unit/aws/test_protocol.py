"""The SQS/SNS codec against botocore itself: its serializers build the requests, its parsers
and a real client (signer included, no network) read our answers."""

from __future__ import annotations

import datetime
import json
from typing import Any
from urllib.parse import urlencode

import botocore.session
import pytest
from botocore.awsrequest import AWSResponse
from botocore.parsers import create_parser
from botocore.serialize import create_serializer
from hypothesis import given, settings
from hypothesis import strategies as st

from dovecote.aws.errors import AwsError
from dovecote.aws.model import SNS, SQS, service_model
from dovecote.aws.protocol import (
    AwsRequest,
    decode_request,
    encode_error,
    encode_response,
    json_body,
    request_protocol,
)

QUEUE_URL = "http://localhost:4566/000000000000/q1"
TOPIC_ARN = "arn:aws:sns:us-east-1:000000000000:t1"

SQS_CASES: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    (
        "CreateQueue",
        {
            "QueueName": "q1.fifo",
            "Attributes": {"VisibilityTimeout": "30", "FifoQueue": "true"},
            "tags": {"team": "core", "env": "test"},
        },
        {"QueueUrl": QUEUE_URL},
    ),
    (
        "SendMessage",
        {
            "QueueUrl": QUEUE_URL,
            "MessageBody": "hello <&> wörld",
            "DelaySeconds": 5,
            "MessageAttributes": {
                "s": {"DataType": "String", "StringValue": "v"},
                "n": {"DataType": "Number", "StringValue": "12.5"},
                "b": {"DataType": "Binary", "BinaryValue": b"\x00\xff\x10"},
            },
            "MessageGroupId": "g",
            "MessageDeduplicationId": "d",
        },
        {
            "MD5OfMessageBody": "abc",
            "MD5OfMessageAttributes": "def",
            "MessageId": "m-1",
            "SequenceNumber": "7",
        },
    ),
    (
        "SendMessageBatch",
        {
            "QueueUrl": QUEUE_URL,
            "Entries": [
                {
                    "Id": "1",
                    "MessageBody": "a",
                    "MessageAttributes": {"k": {"DataType": "Binary", "BinaryValue": b"x"}},
                },
                {"Id": "2", "MessageBody": "b", "DelaySeconds": 0},
            ],
        },
        {
            "Successful": [{"Id": "1", "MessageId": "m-1", "MD5OfMessageBody": "x"}],
            "Failed": [
                {"Id": "2", "SenderFault": True, "Code": "InvalidMessageContents", "Message": "bad"}
            ],
        },
    ),
    (
        "ReceiveMessage",
        {
            "QueueUrl": QUEUE_URL,
            "AttributeNames": ["All"],
            "MessageAttributeNames": ["s", "b"],
            "MaxNumberOfMessages": 10,
            "WaitTimeSeconds": 20,
            "VisibilityTimeout": 3,
        },
        {
            "Messages": [
                {
                    "MessageId": "m-1",
                    "ReceiptHandle": "rh",
                    "MD5OfBody": "x",
                    "Body": "hi",
                    "Attributes": {"SenderId": "000000000000", "ApproximateReceiveCount": "1"},
                    "MessageAttributes": {
                        "s": {"DataType": "String", "StringValue": "v"},
                        "b": {"DataType": "Binary", "BinaryValue": b"\x01\x02"},
                    },
                },
                {"MessageId": "m-2", "ReceiptHandle": "rh2", "Body": "two"},
            ]
        },
    ),
    (
        "DeleteMessageBatch",
        {
            "QueueUrl": QUEUE_URL,
            "Entries": [{"Id": "a", "ReceiptHandle": "r1"}, {"Id": "b", "ReceiptHandle": "r2"}],
        },
        {
            "Successful": [{"Id": "a"}],
            "Failed": [
                {"Id": "b", "SenderFault": True, "Code": "ReceiptHandleIsInvalid", "Message": "no"}
            ],
        },
    ),
    (
        "GetQueueAttributes",
        {"QueueUrl": QUEUE_URL, "AttributeNames": ["VisibilityTimeout", "QueueArn"]},
        {
            "Attributes": {
                "VisibilityTimeout": "30",
                "QueueArn": "arn:aws:sqs:us-east-1:000000000000:q1",
            }
        },
    ),
    (
        "ListQueues",
        {"QueueNamePrefix": "q", "MaxResults": 2},
        {"QueueUrls": [QUEUE_URL, QUEUE_URL + "b"], "NextToken": "t"},
    ),
]

SNS_CASES: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    (
        "CreateTopic",
        {"Name": "t1", "Attributes": {"DisplayName": "T"}, "Tags": [{"Key": "k", "Value": "v"}]},
        {"TopicArn": TOPIC_ARN},
    ),
    (
        "Subscribe",
        {
            "TopicArn": TOPIC_ARN,
            "Protocol": "sqs",
            "Endpoint": "arn:aws:sqs:us-east-1:000000000000:q1",
            "Attributes": {"RawMessageDelivery": "true", "FilterPolicy": '{"a": ["b"]}'},
            "ReturnSubscriptionArn": True,
        },
        {"SubscriptionArn": TOPIC_ARN + ":sub-1"},
    ),
    (
        "Publish",
        {
            "TopicArn": TOPIC_ARN,
            "Message": "hello",
            "Subject": "s",
            "MessageAttributes": {
                "s": {"DataType": "String", "StringValue": "v"},
                "b": {"DataType": "Binary", "BinaryValue": b"\x00\x01"},
            },
        },
        {"MessageId": "m-1", "SequenceNumber": "1"},
    ),
    (
        "PublishBatch",
        {
            "TopicArn": TOPIC_ARN,
            "PublishBatchRequestEntries": [
                {
                    "Id": "1",
                    "Message": "a",
                    "MessageAttributes": {"n": {"DataType": "Number", "StringValue": "1"}},
                },
                {"Id": "2", "Message": "b", "MessageGroupId": "g"},
            ],
        },
        {
            "Successful": [{"Id": "1", "MessageId": "m-1"}],
            "Failed": [
                {"Id": "2", "Code": "InvalidParameter", "Message": "bad", "SenderFault": True}
            ],
        },
    ),
    (
        "ListSubscriptionsByTopic",
        {"TopicArn": TOPIC_ARN, "NextToken": "n"},
        {
            "Subscriptions": [
                {
                    "SubscriptionArn": TOPIC_ARN + ":sub-1",
                    "Owner": "000000000000",
                    "Protocol": "sqs",
                    "Endpoint": "arn:aws:sqs:us-east-1:000000000000:q1",
                    "TopicArn": TOPIC_ARN,
                }
            ],
            "NextToken": "n2",
        },
    ),
]

CASES = (
    [("sqs", "json", *c) for c in SQS_CASES]
    + [("sqs", "query", *c) for c in SQS_CASES]
    + [("sns", "query", *c) for c in SNS_CASES]
)


def _serialize(
    service: str, protocol: str, operation: str, params: dict[str, Any]
) -> tuple[dict[str, str], bytes]:
    """The request botocore's serializer builds, as the headers and body bytes that go on the wire."""
    op = service_model(service, protocol).operation_model(operation)
    request = create_serializer(protocol).serialize_to_request(params, op)
    body = request["body"]
    if isinstance(body, dict):
        body = urlencode(body).encode()
    return dict(request["headers"]), body


def _parse(
    service: str, protocol: str, operation: str, response: tuple[int, dict[str, str], bytes]
) -> dict[str, Any]:
    status, headers, body = response
    op = service_model(service, protocol).operation_model(operation)
    lowered = {k.lower(): v for k, v in headers.items()}
    return create_parser(protocol).parse(
        {"status_code": status, "headers": lowered, "body": body}, op.output_shape
    )


@pytest.mark.parametrize(("service", "protocol", "operation", "params", "result"), CASES)
def test_botocore_requests_decode_and_our_responses_parse_back(
    service: str, protocol: str, operation: str, params: dict[str, Any], result: dict[str, Any]
) -> None:
    headers, body = _serialize(service, protocol, operation, params)
    request = decode_request("POST", "/", headers, body)
    assert (request.service.name, request.protocol, request.operation) == (
        service,
        protocol,
        operation,
    )
    assert request.params == params

    parsed = _parse(service, protocol, operation, encode_response(request, result, "req-1"))
    assert parsed.pop("ResponseMetadata")["RequestId"] == "req-1"
    assert parsed == result


def test_sqs_query_names_are_the_legacy_wire_names() -> None:
    """The SendMessage form of AWS's SQS API reference example decodes."""
    body = (
        b"Action=SendMessage&Version=2012-11-05&QueueUrl=https%3A%2F%2Fsqs.us-east-2.amazonaws.com%2F123456789012%2FMyQueue"
        b"&MessageBody=This+is+a+test+message"
        b"&MessageAttribute.1.Name=my_attribute_name_1&MessageAttribute.1.Value.StringValue=my_attribute_value_1"
        b"&MessageAttribute.1.Value.DataType=String"
        b"&MessageAttribute.2.Name=my_attribute_name_2&MessageAttribute.2.Value.BinaryValue=AAE%3D"
        b"&MessageAttribute.2.Value.DataType=Binary"
    )
    request = decode_request(
        "POST", "/", {"Content-Type": "application/x-www-form-urlencoded"}, body
    )
    assert request.params == {
        "QueueUrl": "https://sqs.us-east-2.amazonaws.com/123456789012/MyQueue",
        "MessageBody": "This is a test message",
        "MessageAttributes": {
            "my_attribute_name_1": {"DataType": "String", "StringValue": "my_attribute_value_1"},
            "my_attribute_name_2": {"DataType": "Binary", "BinaryValue": b"\x00\x01"},
        },
    }
    _, body = _serialize(
        "sqs", "query", "CreateQueue", {"QueueName": "q", "Attributes": {"DelaySeconds": "1"}}
    )
    assert b"Attribute.1.Name=DelaySeconds&Attribute.1.Value=1" in body


def test_sns_query_names_follow_the_model() -> None:
    """SNS message attributes are ``MessageAttributes.entry.N.Name``, subscription ones ``.key``."""
    body = (
        b"Action=Subscribe&Version=2010-03-31&TopicArn=arn%3Aaws%3Asns%3Aus-east-1%3A1%3At&Protocol=sqs"
        b"&Attributes.entry.1.key=RawMessageDelivery&Attributes.entry.1.value=true"
    )
    assert decode_request("POST", "/", {}, body).params["Attributes"] == {
        "RawMessageDelivery": "true"
    }
    body = (
        b"Action=Publish&Version=2010-03-31&TopicArn=t&Message=m"
        b"&MessageAttributes.entry.1.Name=a&MessageAttributes.entry.1.Value.DataType=Number"
        b"&MessageAttributes.entry.1.Value.StringValue=3"
    )
    assert decode_request("POST", "/", {}, body).params["MessageAttributes"] == {
        "a": {"DataType": "Number", "StringValue": "3"}
    }


def test_query_params_in_the_url_are_read_too() -> None:
    request = decode_request(
        "GET", "/?Action=ListQueues&Version=2012-11-05&QueueNamePrefix=a", {}, b""
    )
    assert (request.service, request.operation, request.params) == (
        SQS,
        "ListQueues",
        {"QueueNamePrefix": "a"},
    )


def _error(
    service: str, protocol: str, operation: str, error: AwsError
) -> tuple[int, dict[str, Any]]:
    response = encode_error(SQS if service == "sqs" else SNS, protocol, error, "req-e")
    return response[0], _parse(service, protocol, operation, response)


def test_sqs_json_error_carries_the_legacy_code_as_botocore_reads_it() -> None:
    status, parsed = _error(
        "sqs", "json", "GetQueueUrl", AwsError("QueueDoesNotExist", "The queue does not exist.")
    )
    assert status == 400
    assert parsed["Error"] == {
        "Code": "AWS.SimpleQueueService.NonExistentQueue",
        "QueryErrorCode": "QueueDoesNotExist",
        "Type": "Sender",
        "Message": "The queue does not exist.",
    }


def test_query_errors() -> None:
    status, parsed = _error("sqs", "query", "GetQueueUrl", AwsError("QueueDoesNotExist", "gone"))
    assert status == 400
    assert parsed["Error"] == {
        "Type": "Sender",
        "Code": "AWS.SimpleQueueService.NonExistentQueue",
        "Message": "gone",
    }
    assert parsed["ResponseMetadata"]["RequestId"] == "req-e"
    status, parsed = _error(
        "sns", "query", "Publish", AwsError("NotFoundException", "Topic does not exist")
    )
    assert status == 404
    assert parsed["Error"] == {
        "Type": "Sender",
        "Code": "NotFound",
        "Message": "Topic does not exist",
    }
    status, parsed = _error("sns", "query", "Publish", AwsError("InternalErrorException", "boom"))
    assert (status, parsed["Error"]["Type"], parsed["Error"]["Code"]) == (
        500,
        "Receiver",
        "InternalError",
    )


@pytest.mark.parametrize(
    ("headers", "body", "code"),
    [
        ({"X-Amz-Target": "AmazonSQS.SendMessage"}, b'{"QueueUrl": "u"}', "MissingParameter"),
        (
            {"X-Amz-Target": "AmazonSQS.SendMessage"},
            b'{"QueueUrl": "u", "MessageBody": 1}',
            "InvalidParameterValue",
        ),
        (
            {"X-Amz-Target": "AmazonSQS.SendMessage"},
            b'{"QueueUrl": "u", "MessageBody": "b", "DelaySeconds": "5"}',
            "InvalidParameterValue",
        ),
        (
            {"X-Amz-Target": "AmazonSQS.SendMessage"},
            b'{"QueueUrl": "u", "MessageBody": "b", "MessageAttributes": {"a": {"StringValue": "v"}}}',
            "MissingParameter",
        ),
        ({"X-Amz-Target": "AmazonSQS.Frobnicate"}, b"{}", "InvalidAction"),
        ({"X-Amz-Target": "AmazonSQS.ListQueues"}, b"{not json", "SerializationException"),
        ({"X-Amz-Target": "AmazonSQS.ListQueues"}, b"[1]", "SerializationException"),
        ({}, b"Action=SendMessage&Version=2012-11-05&QueueUrl=u", "MissingParameter"),
        (
            {},
            b"Action=SendMessage&Version=2012-11-05&QueueUrl=u&MessageBody=b&DelaySeconds=x",
            "InvalidParameterValue",
        ),
        (
            {},
            b"Action=SendMessage&Version=2012-11-05&QueueUrl=u&MessageBody=b"
            b"&MessageAttribute.1.Name=a&MessageAttribute.1.Value.DataType=Binary"
            b"&MessageAttribute.1.Value.BinaryValue=%21%21",
            "InvalidParameterValue",
        ),
        ({}, b"Action=Frobnicate&Version=2012-11-05", "InvalidAction"),
        ({}, b"Action=Publish&Version=1999-01-01", "InvalidAction"),
        ({}, b"Version=2012-11-05", "MissingAction"),
        ({}, b"\xff\xfe", "MalformedQueryString"),
    ],
)
def test_bad_requests_are_clean_400s(headers: dict[str, str], body: bytes, code: str) -> None:
    with pytest.raises(AwsError) as caught:
        decode_request("POST", "/", headers, body)
    assert caught.value.code == code
    protocol = request_protocol(headers)
    status, parsed = _error("sqs", protocol, "SendMessage", caught.value)
    assert status == 400
    assert parsed["Error"]["Code"] == code
    assert parsed["Error"]["Message"] == caught.value.message


class _Raw:
    """The raw body botocore's AWSResponse streams from."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Any:
        yield self._body


def _client(service: str, protocol_hint: str | None = None) -> Any:
    """A real botocore client whose requests our codec answers instead of the network."""
    client = botocore.session.get_session().create_client(
        service,
        region_name="us-east-1",
        endpoint_url="http://localhost:1",
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="secret",
    )
    outcomes: dict[str, Any] = {}

    def answer(request: Any, **_: Any) -> AWSResponse:
        body = request.body or b""
        body = body.encode() if isinstance(body, str) else bytes(body)
        headers = {k: v.decode() if isinstance(v, bytes) else v for k, v in request.headers.items()}
        assert "AWS4-HMAC-SHA256" in headers["Authorization"]
        try:
            decoded = decode_request(request.method, request.url, headers, body)
            outcome = outcomes[decoded.operation]
            if isinstance(outcome, AwsError):
                raise outcome
            status, out_headers, out_body = encode_response(decoded, outcome(decoded))
        except AwsError as error:
            svc = SQS if service == "sqs" else SNS
            status, out_headers, out_body = encode_error(svc, request_protocol(headers), error)
        return AWSResponse(request.url, status, out_headers, _Raw(out_body))

    client.meta.events.register("before-send", answer)
    client.outcomes = outcomes  # type: ignore[attr-defined]
    return client


def test_a_real_sqs_client_round_trips_through_the_codec() -> None:
    client = _client("sqs")
    client.outcomes["SendMessage"] = lambda r: {
        "MessageId": "id-" + r.params["MessageBody"],
        "MD5OfMessageBody": "0cc175b9c0f1b6a831c399e269772661",
    }
    client.outcomes["GetQueueUrl"] = AwsError(
        "QueueDoesNotExist", "The specified queue does not exist."
    )
    sent = client.send_message(QueueUrl=QUEUE_URL, MessageBody="a")
    assert sent["MessageId"] == "id-a"
    with pytest.raises(client.exceptions.QueueDoesNotExist) as caught:
        client.get_queue_url(QueueName="nope")
    assert caught.value.response["Error"]["Code"] == "AWS.SimpleQueueService.NonExistentQueue"
    assert caught.value.response["Error"]["Message"] == "The specified queue does not exist."


def test_a_real_sns_client_round_trips_through_the_codec() -> None:
    client = _client("sns")
    client.outcomes["Publish"] = lambda r: {
        "MessageId": "m-" + r.params["MessageAttributes"]["b"]["DataType"]
    }
    client.outcomes["CreateTopic"] = AwsError("NotFoundException", "no")
    published = client.publish(
        TopicArn=TOPIC_ARN,
        Message="x",
        MessageAttributes={"b": {"DataType": "Binary", "BinaryValue": b"\x00"}},
    )
    assert published["MessageId"] == "m-Binary"
    with pytest.raises(client.exceptions.NotFoundException):
        client.create_topic(Name="t")


_QUERY_KEYS = st.sampled_from(
    [
        "Action",
        "Version",
        "QueueUrl",
        "MessageBody",
        "DelaySeconds",
        "MessageAttribute.1.Name",
        "MessageAttribute.1.Value.DataType",
        "MessageAttribute.1.Value.BinaryValue",
        "MessageAttribute.2.Value.StringListValue.1",
        "Attribute.1.Name",
        "Attribute.1.Value",
        "AttributeName.1",
        "SendMessageBatchRequestEntry.1.Id",
        "SendMessageBatchRequestEntry.1.DelaySeconds",
        "MessageAttributes.entry.1.Name",
        "MessageAttributes.entry.1.Value.BinaryValue",
        "Attributes.entry.1.key",
        "PublishBatchRequestEntries.member.1.Id",
        "Tags.member.1.Key",
        "MaxNumberOfMessages",
        "ReturnSubscriptionArn",
    ]
)
_ACTIONS = st.sampled_from(
    [
        "SendMessage",
        "SendMessageBatch",
        "CreateQueue",
        "ReceiveMessage",
        "Publish",
        "PublishBatch",
        "Subscribe",
        "x",
    ]
)


def _must_be_clean(
    headers: dict[str, str], body: bytes, method: str = "POST", path: str = "/"
) -> None:
    try:
        request = decode_request(method, path, headers, body)
    except AwsError as error:
        status, _, out = encode_error(SQS, request_protocol(headers), error)
        assert 400 <= status < 600 and out
    else:
        assert isinstance(request, AwsRequest)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.booleans(), st.text(max_size=30))
def test_random_bytes_only_raise_protocol_errors(body: bytes, as_json: bool, path: str) -> None:
    headers = {"X-Amz-Target": "AmazonSQS.SendMessage"} if as_json else {}
    _must_be_clean(headers, body, "POST", "/" + path)


@settings(max_examples=300, deadline=None)
@given(
    _ACTIONS,
    st.sampled_from(["2012-11-05", "2010-03-31"]),
    st.dictionaries(
        _QUERY_KEYS, st.text(max_size=12) | st.sampled_from(["true", "1", "AAE=", ""]), max_size=8
    ),
)
def test_random_forms_only_raise_protocol_errors(
    action: str, version: str, form: dict[str, str]
) -> None:
    body = urlencode({"Action": action, "Version": version, **form}).encode()
    _must_be_clean({}, body)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=20,
)
_MEMBERS = st.sampled_from(
    [
        "QueueUrl",
        "MessageBody",
        "DelaySeconds",
        "MessageAttributes",
        "Entries",
        "Attributes",
        "AttributeNames",
        "tags",
    ]
)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(["SendMessage", "SendMessageBatch", "CreateQueue", "ReceiveMessage", "Nope"]),
    st.dictionaries(_MEMBERS, _JSON, max_size=6),
)
def test_random_json_only_raises_protocol_errors(operation: str, document: dict[str, Any]) -> None:
    _must_be_clean({"X-Amz-Target": f"AmazonSQS.{operation}"}, json.dumps(document).encode())


# The characters SQS allows in a message (its SendMessage reference).
_SQS_TEXT = st.text(
    st.characters(codec="utf-8").filter(
        lambda c: (
            c in "\t\n\r"
            or "\x20" <= c <= "\ud7ff"
            or "\ue000" <= c <= "\ufffd"
            or c >= "\U00010000"
        )
    ),
    max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(_SQS_TEXT, _SQS_TEXT, st.binary(max_size=20), st.sampled_from(["json", "query"]))
def test_any_message_text_survives_our_xml_and_json(
    body: str, value: str, blob: bytes, protocol: str
) -> None:
    result = {
        "Messages": [
            {
                "MessageId": "m",
                "Body": body,
                "Attributes": {"SenderId": value},
                "MessageAttributes": {
                    "s": {"DataType": "String", "StringValue": value},
                    "b": {"DataType": "Binary", "BinaryValue": blob},
                },
            }
        ]
    }
    request = AwsRequest(SQS, protocol, "ReceiveMessage", {})
    parsed = _parse("sqs", protocol, "ReceiveMessage", encode_response(request, result))
    parsed.pop("ResponseMetadata")
    assert parsed == result


def test_json_body_falls_back_for_what_orjson_refuses() -> None:
    # A lone surrogate (json.loads makes one from a "\\ud800" escape a client
    # sent, and an error message may echo it) and an integer beyond 64 bits.
    for document in ({"message": "bad \ud800 handle"}, {"n": 2**70}):
        assert json_body(document) == json.dumps(document).encode()
    document = {"Messages": [{"Body": 'héllo \u2603 "q" \\ \n', "Id": 1}], "x": None}
    assert json.loads(json_body(document)) == document


def _example(shape: Any, depth: int = 0) -> Any:
    """A value of ``shape`` with every member set, for the all-operations round trip."""
    kind = shape.type_name
    if kind == "structure":
        return {k: _example(m, depth + 1) for k, m in shape.members.items() if depth < 6}
    if kind == "list":
        return [_example(shape.member, depth + 1), _example(shape.member, depth + 1)]
    if kind == "map":
        return {"k1": _example(shape.value, depth + 1), "k2": _example(shape.value, depth + 1)}
    return {
        "string": "v & <w>",
        "integer": 7,
        "long": 7,
        "boolean": True,
        "blob": b"\x00bin",
        "timestamp": datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC),
        "double": 1.5,
        "float": 1.5,
    }[kind]


ALL_OPERATIONS = [
    (service, protocol, name)
    for service, protocols in (("sqs", ("json", "query")), ("sns", ("query",)))
    for protocol in protocols
    for name in service_model(service, protocol).operation_names
]


@pytest.mark.parametrize(("service", "protocol", "operation"), ALL_OPERATIONS)
def test_every_operation_round_trips_with_every_member(
    service: str, protocol: str, operation: str
) -> None:
    op = service_model(service, protocol).operation_model(operation)
    params = _example(op.input_shape) if op.input_shape is not None else {}
    headers, body = _serialize(service, protocol, operation, params)
    request = decode_request("POST", "/", headers, body)
    assert (request.operation, request.params) == (operation, params)
    if op.output_shape is not None:
        result = _example(op.output_shape)
        parsed = _parse(service, protocol, operation, encode_response(request, result))
        parsed.pop("ResponseMetadata")
        assert parsed == result


@pytest.mark.parametrize(
    ("service", "operation", "params"),
    [
        (
            "sqs",
            "ReceiveMessage",
            {"QueueUrl": QUEUE_URL, "AttributeNames": [], "MessageAttributeNames": []},
        ),
        ("sqs", "CreateQueue", {"QueueName": "q", "Attributes": {}}),
        ("sns", "CreateTopic", {"Name": "t", "Tags": []}),
    ],
)
def test_empty_lists_as_botocore_sends_them(
    service: str, operation: str, params: dict[str, Any]
) -> None:
    headers, body = _serialize(service, "query", operation, params)
    assert decode_request("POST", "/", headers, body).params == {
        k: v for k, v in params.items() if v != {}
    }


def test_a_failed_sns_request_is_answered_in_sns_terms() -> None:
    with pytest.raises(AwsError) as caught:
        decode_request("POST", "/", {}, b"Action=Subscribe&Version=2010-03-31&TopicArn=t")
    status, headers, body = encode_error(None, "query", caught.value, "r")
    assert status == 400
    assert b'<ErrorResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/">' in body
    assert (
        _parse("sns", "query", "Subscribe", (status, headers, body))["Error"]["Code"]
        == "MissingParameter"
    )
