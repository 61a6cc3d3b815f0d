"""One SQS/SNS/STS request from HTTP parts to HTTP answer, without sockets.

The listener (``aws/server.py``) hands each request here; this decodes it
with the model-driven codec, checks its signature when credentials are
configured, finds the region, runs the operation on the service it names and
encodes the result or the error in the protocol the client spoke. Anything
unexpected becomes an ``InternalFailure`` answer: one bad request never takes
the listener down.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit

from dovecote.aws import sigv4
from dovecote.aws.context import RequestContext
from dovecote.aws.errors import AwsError
from dovecote.aws.ids import uuid4_text
from dovecote.aws.protocol import (
    AwsRequest,
    Response,
    decode_request,
    encode_error,
    encode_response,
    header,
    request_protocol,
)

log = logging.getLogger("dovecote.aws")

# An operation: (params, context) -> output members.
Operation = Callable[[dict[str, Any], RequestContext], Awaitable[dict[str, Any]]]


class Service:
    """What a service module gives the gateway: its operations by name."""

    operations: Mapping[str, Operation]


def parse_credentials(text: str) -> dict[str, str]:
    """``"AKID:SECRET,AKID2:SECRET2"`` -> {access key: secret}."""
    found = {}
    for item in text.split(","):
        item = item.strip()
        if item:
            key, sep, secret = item.partition(":")
            if not sep or not key or not secret:
                raise ValueError(f"aws_credentials: {item!r} is not AKID:SECRET")
            found[key] = secret
    return found


class Gateway:
    def __init__(
        self,
        services: Mapping[str, Service],
        *,
        account: str,
        default_region: str,
        credentials: Mapping[str, str] | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.services = services
        self.account = account
        self.default_region = default_region
        self.credentials = dict(credentials or {})
        self.now = now
        self._scopes: dict[str, sigv4.Credential | None] = {}

    def _scope(self, headers: dict[str, str]) -> sigv4.Credential | None:
        """The credential scope of an unverified request, cached by the
        header's Credential part (clients repeat it; only the signature and
        date change)."""
        value = headers.get("Authorization") or headers.get("authorization")
        if value is None:
            return sigv4.credential_scope(headers)
        start = value.find("Credential=")
        key = value[start : value.find(",", start)] if start >= 0 else value
        found = self._scopes.get(key)
        if found is None:
            found = sigv4.credential_scope(headers)
            if len(self._scopes) >= 1024:
                self._scopes.clear()
            self._scopes[key] = found
        return found

    async def handle(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes, base_url: str
    ) -> Response:
        """``target`` is the raw request target (path and query)."""
        request_id = uuid4_text()
        hdrs = headers if isinstance(headers, dict) else dict(headers)
        request: AwsRequest | None = None
        try:
            request = decode_request(
                method, target, hdrs, _with_queue_url(method, target, hdrs, body, base_url)
            )
            context = self._authenticate(method, target, hdrs, body, base_url)
            params = request.params
            service = self.services.get(request.service.name)
            operation = service.operations.get(request.operation) if service else None
            if operation is None:
                raise AwsError(
                    "InvalidAction",
                    f"The action {request.operation} is not valid for this endpoint.",
                )
            result = await operation(params, context)
            return encode_response(request, result, request_id)
        except AwsError as error:
            protocol = request.protocol if request is not None else request_protocol(hdrs)
            service = request.service if request is not None else None
            return encode_error(service, protocol, error, request_id)
        except Exception:
            log.exception("SQS/SNS request failed: %s %s", method, target[:200])
            protocol = request.protocol if request is not None else request_protocol(hdrs)
            service = request.service if request is not None else None
            error = AwsError("InternalFailure", "The request processing has failed.")
            return encode_error(service, protocol, error, request_id)

    def _authenticate(
        self, method: str, target: str, headers: dict[str, str], body: bytes, base_url: str
    ) -> RequestContext:
        if self.credentials:
            parts = urlsplit(target)
            result = sigv4.verify(
                method,
                parts.path or "/",
                parts.query,
                headers,
                body,
                self.credentials.get,
                self.now(),
            )
            if not result.ok:
                raise AwsError(
                    result.code or "SignatureDoesNotMatch", result.message or "", status=403
                )
            credential = result.credential
        else:
            credential = self._scope(headers)
        region = credential.region if credential is not None else self.default_region
        access_key = credential.access_key if credential is not None else None
        return RequestContext(region, self.account, base_url, access_key)


def _with_queue_url(
    method: str, target: str, headers: Mapping[str, str], body: bytes, base_url: str
) -> bytes:
    """Query clients post to the queue's URL (``/{account}/{name}``) and may
    leave QueueUrl out of the form: put it in, so the operation finds it."""
    if method != "POST" or header(headers, "x-amz-target") is not None:
        return body  # only query requests name their queue by the path
    if b"QueueUrl=" in body:
        return body
    path = urlsplit(target).path.strip("/")
    if path.count("/") != 1:
        return body
    url = quote(f"{base_url}/{path}", safe="")
    return body + (b"&" if body else b"") + b"QueueUrl=" + url.encode()
