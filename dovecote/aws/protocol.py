"""Sans-I/O SQS/SNS codec: HTTP request parts to (service, operation, params), results to HTTP.

Both wire protocols (SQS's awsJson1_0 and the SQS/SNS query protocol) decode to the same
params dict that botocore's serializers start from, checked against the service model,
so the listener handles one shape of request whichever protocol the client spoke.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit
from xml.sax.saxutils import escape

import orjson
from botocore.model import OperationModel, ServiceModel, Shape

from dovecote.aws.errors import AwsError, invalid, missing
from dovecote.aws.ids import uuid4_text
from dovecote.aws.jsonwire import decode_json, encode_json
from dovecote.aws.model import BY_VERSION, SERVICES, SQS, Service, error_info, service_model
from dovecote.aws.query import decode_form, encode_xml

JSON_CONTENT_TYPE = "application/x-amz-json-1.0"
XML_CONTENT_TYPE = "text/xml"


@dataclass(frozen=True)
class AwsRequest:
    """A decoded request: which service and operation, and its params as botocore spells them."""

    service: Service
    protocol: str  # "json" or "query"
    operation: str
    params: dict[str, Any] = field(default_factory=dict)
    query_mode: bool = False  # the client sent x-amzn-query-mode: it maps errors by legacy code


Response = tuple[int, dict[str, str], bytes]


def header(headers: Mapping[str, str], name: str) -> str | None:
    """A header's value by case-insensitive name (HTTP names are): the first
    spelling received, when several differ only in case."""
    name = name.lower()
    by_lower = getattr(headers, "by_lower", None)  # the listener's http.Headers
    if by_lower is not None:
        key = by_lower.get(name)
        return None if key is None else headers[key]
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None


def json_body(document: Any) -> bytes:
    """A JSON answer's bytes. orjson writes a ReceiveMessage of ten 1 KiB
    bodies in about 1 us where the json module took 25 (its escaping is the
    bulk of a receive's encoding); the text differs only in spacing and in
    leaving non-ASCII characters unescaped, as AWS's answers do. What orjson
    refuses (a lone surrogate, an integer beyond 64 bits) goes through the
    json module as before."""
    try:
        return orjson.dumps(document)
    except orjson.JSONEncodeError:
        return json.dumps(document).encode()


def decode_request(method: str, path: str, headers: dict[str, str], body: bytes) -> AwsRequest:
    """Decode one HTTP request; every failure is an AwsError to encode back, never another exception."""
    target = header(headers, "x-amz-target")
    if target is not None:
        return _decode_json(target, headers, body)
    try:
        query = urlsplit(path).query
        text = body.decode("utf-8") if method.upper() == "POST" else ""
        pairs = parse_qsl(query, keep_blank_values=True) + parse_qsl(text, keep_blank_values=True)
    except (UnicodeDecodeError, ValueError):
        raise AwsError("MalformedQueryString", "The request body is not a valid form.") from None
    form = dict(pairs)
    action, version = form.pop("Action", None), form.pop("Version", None)
    if not action:
        raise AwsError("MissingAction", "The request must contain the parameter Action.")
    service = BY_VERSION.get(version or "")
    if service is None:
        raise AwsError("InvalidAction", f"The action {action} is not valid for version {version}.")
    try:
        op = _operation(service_model(service.name, "query"), action)
        params = decode_form(form, op.input_shape) if op.input_shape is not None else {}
        _check_required(params, op.input_shape, "")
    except AwsError as error:
        error.service = service.name
        raise
    return AwsRequest(service, "query", op.name, params)


def _decode_json(target: str, headers: dict[str, str], body: bytes) -> AwsRequest:
    prefix, _, action = target.partition(".")
    if prefix != SQS.target_prefix:
        raise AwsError("InvalidAction", f"The target {target} is not valid.")
    op = _operation(service_model(SQS.name, "json"), action)
    try:
        document = json.loads(body.decode("utf-8")) if body.strip() else {}
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise AwsError("SerializationException", "The request body is not valid JSON.") from None
    if not isinstance(document, dict):
        raise AwsError("SerializationException", "The request body must be a JSON object.")
    params = decode_json(document, op.input_shape, "") if op.input_shape is not None else {}
    query_mode = (header(headers, "x-amzn-query-mode") or "").lower() == "true"
    return AwsRequest(SQS, "json", op.name, params, query_mode)


def _operation(model: ServiceModel, action: str) -> OperationModel:
    if action not in model.operation_names:
        raise AwsError("InvalidAction", f"The action {action} is not valid for this endpoint.")
    return model.operation_model(action)


def _check_required(value: Any, shape: Shape | None, name: str) -> None:
    if shape is None:
        return
    if shape.type_name == "structure":
        for key in shape.required_members:
            if key not in value:
                raise missing(f"{name}.{key}" if name else key)
        for key, member in shape.members.items():
            if key in value:
                _check_required(value[key], member, f"{name}.{key}" if name else key)
    elif shape.type_name == "list":
        for i, item in enumerate(value, 1):
            _check_required(item, shape.member, f"{name}.{i}")
    elif shape.type_name == "map":
        for key, item in value.items():
            _check_required(item, shape.value, f"{name}.{key}")


def encode_response(
    request: AwsRequest, result: dict[str, Any], request_id: str | None = None
) -> Response:
    """The HTTP answer carrying ``result`` (the operation's output members) in the request's protocol."""
    request_id = request_id or uuid4_text()
    op = service_model(request.service.name, request.protocol).operation_model(request.operation)
    shape = op.output_shape
    if request.protocol == "json":
        document = encode_json(result, shape) if shape is not None else {}
        headers = {"Content-Type": JSON_CONTENT_TYPE, "x-amzn-RequestId": request_id}
        return 200, headers, json_body(document)
    ns = request.service.namespace
    inner = encode_xml(result, shape, f"{op.name}Result") if shape is not None else ""
    xml = (
        f'<?xml version="1.0"?><{op.name}Response xmlns="{ns}">{inner}'
        f"<ResponseMetadata><RequestId>{escape(request_id)}</RequestId></ResponseMetadata>"
        f"</{op.name}Response>"
    )
    return 200, {"Content-Type": XML_CONTENT_TYPE, "x-amzn-RequestId": request_id}, xml.encode()


def encode_error(
    service: Service | None, protocol: str, error: AwsError, request_id: str | None = None
) -> Response:
    """The HTTP answer for ``error``; with ``service`` None, the one the request named, else SQS."""
    request_id = request_id or uuid4_text()
    service = service or SERVICES.get(error.service or "", SQS)
    info = error_info(service, error.code)
    status = error.status or info.status
    fault = "Sender" if info.sender_fault else "Receiver"
    if protocol == "json":
        document = {
            "__type": f"{service.json_namespace}#{info.shape_name}",
            "message": error.message,
        }
        headers = {
            "Content-Type": JSON_CONTENT_TYPE,
            "x-amzn-RequestId": request_id,
            "x-amzn-query-error": f"{info.query_code};{fault}",
        }
        return status, headers, json_body(document)
    xml = (
        f'<?xml version="1.0"?><ErrorResponse xmlns="{service.namespace}"><Error>'
        f"<Type>{fault}</Type><Code>{escape(info.query_code)}</Code><Message>{escape(error.message)}</Message>"
        f"</Error><RequestId>{escape(request_id)}</RequestId></ErrorResponse>"
    )
    return status, {"Content-Type": XML_CONTENT_TYPE, "x-amzn-RequestId": request_id}, xml.encode()


def request_protocol(headers: dict[str, str]) -> str:
    """Which protocol an error for this request must be written in (before decoding succeeded)."""
    return "json" if header(headers, "x-amz-target") is not None else "query"


__all__ = [
    "AwsError",
    "AwsRequest",
    "decode_request",
    "encode_error",
    "encode_response",
    "invalid",
    "json_body",
    "request_protocol",
]
