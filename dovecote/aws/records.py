# TEMPORARY STUB (replaced by aws-records branch)
from __future__ import annotations

import json
import uuid
from dataclasses import dataclass

from dovecote.core.headers import DEATHS, DELIVER_AT, is_reserved, reserve_prefix

reserve_prefix("sqs.")
WELL = {"message-id", "ordering-key", "deduplication-id"}


def new_message_id():
    return str(uuid.uuid4())


def message_id_of(record, queue):
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{queue}/{record.offset}"))


def sqs_headers(message_id, *, group_id, dedup_id, trace_header, sender_id, delay_until_ms):
    h = [("message-id", message_id.encode())]
    if group_id is not None:
        h.append(("ordering-key", group_id.encode()))
    if dedup_id is not None:
        h.append(("deduplication-id", dedup_id.encode()))
    if trace_header:
        h.append(("sqs.aws-trace-header", trace_header.encode()))
    if sender_id:
        h.append(("sqs.sender-id", sender_id.encode()))
    if delay_until_ms:
        h.append((DELIVER_AT, b"%d" % delay_until_ms))
    return h


def attributes_to_headers(attrs):
    out = []
    types = {}
    for n, a in (attrs or {}).items():
        t = a["DataType"]
        types[n] = t
        out.append((n, a["BinaryValue"] if t.startswith("Binary") else a["StringValue"].encode()))
    if types:
        out.append(("sqs.data-types", json.dumps(types).encode()))
    return out


def headers_to_attributes(headers, wanted):
    if not wanted:
        return {}
    types = {}
    for k, v in headers:
        if k == "sqs.data-types":
            types = json.loads(v)
    out = {}
    for k, v in headers:
        if is_reserved(k) or k in WELL or v is None:
            continue
        t = types.get(k, "String")
        out[k] = {
            "DataType": t,
            **({"BinaryValue": v} if t.startswith("Binary") else {"StringValue": v.decode()}),
        }
    return out


@dataclass
class SqsMeta:
    message_id: str | None = None
    group_id: str | None = None
    dedup_id: str | None = None
    trace_header: str | None = None
    sender_id: str | None = None
    dead_letter_source: str | None = None


def read_sqs_headers(headers):
    m = SqsMeta()
    for k, v in headers:
        if v is None:
            continue
        if k == "message-id":
            m.message_id = v.decode()
        elif k == "ordering-key":
            m.group_id = v.decode()
        elif k == "deduplication-id":
            m.dedup_id = v.decode()
        elif k == "sqs.aws-trace-header":
            m.trace_header = v.decode()
        elif k == "sqs.sender-id":
            m.sender_id = v.decode()
        elif k == DEATHS:
            d = json.loads(v)
            m.dead_letter_source = d[0].get("queue") if d else None
    return m
