"""SigV4 verification of requests signed by botocore itself, and of AWS's documented example."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSPreparedRequest, AWSRequest
from botocore.credentials import Credentials
from hypothesis import given, settings
from hypothesis import strategies as st

from dovecote.aws.sigv4 import (
    Credential,
    SignatureError,
    VerifyResult,
    credential_scope,
    parse_authorization,
    verify,
)

AKID = "AKIDDOVECOTE00000001"
SECRET = "dovecote/secret+key/0123456789abcdefghij"
SECRETS = {AKID: SECRET}


@dataclass(frozen=True)
class Wire:
    """A request as the listener would receive it."""

    method: str
    path: str
    query: str
    headers: list[tuple[str, str]]
    body: bytes


def _wire(prepared: AWSPreparedRequest) -> Wire:
    url = urlsplit(prepared.url)
    headers = [(k, v.decode() if isinstance(v, bytes) else v) for k, v in prepared.headers.items()]
    if not any(k.lower() == "host" for k, _ in headers):
        headers.append(("Host", url.netloc))  # what the HTTP layer adds on the way out
    body = prepared.body or b""
    if isinstance(body, str):
        body = body.encode()
    return Wire(prepared.method, url.path or "/", url.query, headers, body)


def _check(
    wire: Wire, now: datetime | None = None, secrets: dict[str, str] = SECRETS
) -> VerifyResult:
    return verify(
        wire.method,
        wire.path,
        wire.query,
        wire.headers,
        wire.body,
        secrets.get,
        now or datetime.now(UTC),
    )


class _Captured(Exception):
    def __init__(self, request: AWSPreparedRequest) -> None:
        super().__init__("captured")
        self.request = request


@contextmanager
def _client(service: str, region: str = "eu-west-2") -> Iterator[Any]:
    client = boto3.client(
        service,
        region_name=region,
        endpoint_url="http://localhost:9324",
        aws_access_key_id=AKID,
        aws_secret_access_key=SECRET,
    )

    def capture(request: AWSPreparedRequest, **_: Any) -> None:
        raise _Captured(request)

    client.meta.events.register("before-send", capture)
    yield client


def _sent(call: Any, **kwargs: Any) -> Wire:
    with pytest.raises(_Captured) as captured:
        call(**kwargs)
    return _wire(captured.value.request)


def _sqs_send() -> Wire:
    with _client("sqs") as sqs:
        return _sent(
            sqs.send_message,
            QueueUrl="http://localhost:9324/000000000000/orders",
            MessageBody="héllo wörld",
            MessageAttributes={"k": {"DataType": "String", "StringValue": "v"}},
        )


def _sns_publish() -> Wire:
    with _client("sns") as sns:
        return _sent(
            sns.publish,
            TopicArn="arn:aws:sns:eu-west-2:000000000000:events",
            Message="a b&c=d/é",
            Subject="s",
        )


def _set_header(wire: Wire, name: str, value: str) -> Wire:
    headers = [(k, v) for k, v in wire.headers if k.lower() != name.lower()]
    return replace(wire, headers=[*headers, (name, value)])


def _get_header(wire: Wire, name: str) -> str:
    return next(v for k, v in wire.headers if k.lower() == name.lower())


def test_sqs_json_request_from_boto3_verifies() -> None:
    wire = _sqs_send()
    assert _get_header(wire, "X-Amz-Target") == "AmazonSQS.SendMessage"
    assert json.loads(wire.body)["MessageBody"] == "héllo wörld"
    result = _check(wire)
    assert result.ok, result
    assert result.credential == Credential(AKID, result.credential.date, "eu-west-2", "sqs")


def test_sns_query_request_from_boto3_verifies() -> None:
    wire = _sns_publish()
    assert b"Action=Publish" in wire.body
    result = _check(wire)
    assert result.ok, result
    assert result.credential is not None and result.credential.service == "sns"


def test_tampered_body_fails() -> None:
    wire = _sqs_send()
    result = _check(replace(wire, body=wire.body.replace(b"llo", b"LLO")))
    assert (result.ok, result.code) == (False, "SignatureDoesNotMatch")
    result = _check(replace(wire, body=wire.body + b" "))
    assert result.code == "SignatureDoesNotMatch"


def test_tampered_signed_header_fails() -> None:
    wire = _sqs_send()
    result = _check(_set_header(wire, "X-Amz-Target", "AmazonSQS.DeleteQueue"))
    assert result.code == "SignatureDoesNotMatch"


def test_unsigned_header_may_change() -> None:
    wire = _sqs_send()
    signed = parse_authorization(_get_header(wire, "Authorization")).signed_headers
    assert "user-agent" not in signed
    assert _check(_set_header(wire, "User-Agent", "something else")).ok


def test_wrong_secret_fails() -> None:
    result = _check(_sqs_send(), secrets={AKID: SECRET + "x"})
    assert result.code == "SignatureDoesNotMatch"
    assert result.credential is not None and result.credential.region == "eu-west-2"


def test_non_ascii_signature_is_a_mismatch_not_a_crash() -> None:
    wire = _sqs_send()
    auth = _get_header(wire, "Authorization")
    forged = auth[: auth.index("Signature=") + len("Signature=")] + "é" * 64
    assert _check(_set_header(wire, "Authorization", forged)).code == "SignatureDoesNotMatch"


def test_unknown_key_is_invalid_client_token_id() -> None:
    result = _check(_sns_publish(), secrets={})
    assert (result.ok, result.code) == (False, "InvalidClientTokenId")


def test_declared_content_sha256_does_not_vouch_for_another_body() -> None:
    body = b'{"QueueNamePrefix": "a"}'
    url = "https://sqs.us-east-1.amazonaws.com/"
    honest = {"X-Amz-Content-SHA256": hashlib.sha256(body).hexdigest()}
    wire = _signed("POST", url, "us-east-1", "sqs", data=body, headers=honest)
    assert _check(wire).ok
    assert _check(replace(wire, body=b"{}")).code == "SignatureDoesNotMatch"
    lying = {"X-Amz-Content-SHA256": "0" * 64}
    wire = _signed("POST", url, "us-east-1", "sqs", data=body, headers=lying)
    assert _check(wire).code == "SignatureDoesNotMatch"


def test_skew_up_to_15_minutes_is_allowed() -> None:
    wire = _sqs_send()
    signed_at = datetime.strptime(_get_header(wire, "X-Amz-Date"), "%Y%m%dT%H%M%SZ").replace(
        tzinfo=UTC
    )
    assert _check(wire, now=signed_at + timedelta(minutes=14)).ok
    assert _check(wire, now=signed_at - timedelta(minutes=14)).ok
    late = _check(wire, now=signed_at + timedelta(minutes=16))
    assert late.code == "SignatureDoesNotMatch" and late.message.startswith("Signature expired")
    early = _check(wire, now=signed_at - timedelta(minutes=16))
    assert early.code == "SignatureDoesNotMatch"
    assert early.message.startswith("Signature not yet current")


def test_credential_date_must_match_request_date() -> None:
    wire = _sqs_send()
    auth = _get_header(wire, "Authorization")
    date = parse_authorization(auth).credential.date
    other = "19990101" if date != "19990101" else "19990102"
    result = _check(_set_header(wire, "Authorization", auth.replace(f"/{date}/", f"/{other}/")))
    assert result.code == "SignatureDoesNotMatch"


@pytest.mark.parametrize(
    "header",
    [
        "AWS4-HMAC-SHA256 SignedHeaders=host, Signature=abc",
        "AWS4-HMAC-SHA256 Credential=AKID/20261204/us-east-1/sqs/aws4_request, SignedHeaders=host",
        "AWS4-HMAC-SHA256 Credential=AKID/20261204/us-east-1/aws4_request, SignedHeaders=host, Signature=a",
        "AWS4-HMAC-SHA256 Credential=AKID/20261204/us-east-1/sqs/wrong, SignedHeaders=host, Signature=a",
        "AWS4-HMAC-SHA1 Credential=AKID/20261204/us-east-1/sqs/aws4_request, SignedHeaders=host, Signature=a",
        "garbage",
    ],
)
def test_malformed_authorization_is_incomplete_signature(header: str) -> None:
    with pytest.raises(SignatureError) as raised:
        parse_authorization(header)
    assert raised.value.code == "IncompleteSignature"
    result = _check(_set_header(_sqs_send(), "Authorization", header))
    assert (result.ok, result.code) == (False, "IncompleteSignature")


def test_missing_date_is_incomplete_signature() -> None:
    wire = _sqs_send()
    wire = replace(wire, headers=[(k, v) for k, v in wire.headers if k.lower() != "x-amz-date"])
    result = _check(wire)
    assert result.code == "IncompleteSignature"
    assert result.credential is not None and result.credential.region == "eu-west-2"


def test_missing_authorization() -> None:
    wire = _sqs_send()
    wire = replace(wire, headers=[(k, v) for k, v in wire.headers if k.lower() != "authorization"])
    assert _check(wire).code == "MissingAuthenticationToken"
    assert credential_scope(wire.headers) is None


def test_scope_is_readable_without_verifying() -> None:
    header = (
        "AWS4-HMAC-SHA256 Credential=AKID/20261204/us-east-1/sqs/aws4_request, "
        "SignedHeaders=host;x-amz-date, Signature=deadbeef"
    )
    scope = credential_scope({"Authorization": header})
    assert scope == Credential("AKID", "20261204", "us-east-1", "sqs")
    assert scope.scope == "20261204/us-east-1/sqs/aws4_request"
    assert credential_scope({"authorization": "nonsense"}) is None


def _signed(method: str, url: str, region: str, service: str, **kwargs: Any) -> Wire:
    request = AWSRequest(method=method, url=url, **kwargs)
    SigV4Auth(Credentials(AKID, SECRET), service, region).add_auth(request)
    return _wire(request.prepare())


def test_query_parameters_needing_encoding_verify() -> None:
    params = {"Action": "ReceiveMessage", "Weird Key": "a b/ü~*+=&", "Empty": "", "Z": "1"}
    wire = _signed(
        "GET",
        "https://sqs.ap-south-1.amazonaws.com/123456789012/q-1",
        "ap-south-1",
        "sqs",
        params=params,
    )
    assert "Weird+Key=a+b" in wire.query  # form-encoded spaces, signed as %20
    assert _check(wire).ok
    assert (
        _check(replace(wire, query=wire.query.replace("Z=1", "Z=2"))).code
        == "SignatureDoesNotMatch"
    )


@settings(max_examples=50, deadline=None)
@given(body=st.binary(max_size=2048), region=st.sampled_from(["us-east-1", "eu-central-1"]))
def test_any_body_signed_by_botocore_verifies(body: bytes, region: str) -> None:
    headers = {"Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": "AmazonSQS.ListQueues"}
    wire = _signed(
        "POST", f"https://sqs.{region}.amazonaws.com/", region, "sqs", data=body, headers=headers
    )
    result = _check(wire)
    assert result.ok, result
    assert result.credential is not None and result.credential.region == region


def test_aws_documented_example() -> None:
    # The IAM ListUsers GET of AWS's "Signature Version 4 signing process" example
    # (secret wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY, 2015-08-30T12:36:00Z).
    headers = {
        "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
        "Host": "iam.amazonaws.com",
        "X-Amz-Date": "20150830T123600Z",
        "Authorization": "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, "
        "SignedHeaders=content-type;host;x-amz-date, "
        "Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7",
    }
    secrets = {"AKIDEXAMPLE": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"}
    now = datetime(2015, 8, 30, 12, 40, tzinfo=UTC)
    query = "Action=ListUsers&Version=2010-05-08"
    assert verify("GET", "/", query, headers, b"", secrets.get, now).ok
    assert not verify("GET", "/", query + "&x=1", headers, b"", secrets.get, now).ok


class _DateHeaderSigV4(SigV4Auth):
    """botocore's signer, dating the request with ``Date`` instead of ``X-Amz-Date``."""

    def _modify_request_before_signing(self, request: AWSRequest) -> None:
        super()._modify_request_before_signing(request)
        del request.headers["X-Amz-Date"]
        when = datetime.strptime(request.context["timestamp"], "%Y%m%dT%H%M%SZ")
        request.headers["Date"] = format_datetime(when.replace(tzinfo=UTC), usegmt=True)


def test_date_header_stands_in_for_x_amz_date() -> None:
    request = AWSRequest(
        method="POST", url="https://sns.us-east-1.amazonaws.com/", data=b"Action=ListTopics"
    )
    _DateHeaderSigV4(Credentials(AKID, SECRET), "sns", "us-east-1").add_auth(request)
    wire = _wire(request.prepare())
    assert "date" in parse_authorization(_get_header(wire, "Authorization")).signed_headers
    assert _check(wire).ok
    later = datetime.now(UTC) + timedelta(minutes=20)
    assert _check(wire, now=later).message.startswith("Signature expired")


def test_path_is_normalized_and_encoded_as_botocore_does() -> None:
    url = "https://sqs.us-east-1.amazonaws.com/123456789012/my%3Aqueue/./x/../"
    wire = _signed("POST", url, "us-east-1", "sqs", data=b"Action=GetQueueAttributes")
    assert _check(wire).ok
    assert _check(replace(wire, path="/123456789012/my%3Aqueue2/")).code == "SignatureDoesNotMatch"
