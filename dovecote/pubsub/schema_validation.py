"""Pub/Sub schema definitions (Avro, Protocol Buffers) and message validation.

Pure functions from a definition's text to a :class:`Validator`, and from a
message's bytes to valid or :class:`MessageInvalid`; nothing here knows gRPC.

- **Avro** (fastavro): the definition is Avro JSON. JSON encoding is Avro's
  JSON encoding (unions as ``{"type": value}``), BINARY is Avro binary that
  must be consumed exactly: trailing bytes mean the message was written with
  another schema, so it does not validate (which also keeps the revision a
  message is attributed to honest).
- **Protocol Buffers**: the definition is ``.proto`` source (proto2 or
  proto3) with exactly one top-level type, a message; imports are limited
  to Google's well-known types. It is compiled by grpcio-tools' bundled
  protoc in a child process (its errors go to stderr, which we capture),
  and the message class comes from the resulting descriptor set. JSON is
  the protobuf JSON mapping (unknown fields rejected), BINARY the wire
  format (proto2 required fields enforced).

Compiled schemas are cached by (type, definition): the text is the identity,
so every revision, topic and inline ValidateMessage with the same text shares
one compilation.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import tempfile
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Protocol

AVRO = "AVRO"
PROTOCOL_BUFFER = "PROTOCOL_BUFFER"
JSON = "JSON"
BINARY = "BINARY"

PROTOC_TIMEOUT_S = 30.0
CACHE_SIZE = 256
_WELL_KNOWN_PREFIX = "google/protobuf/"
_PROTO_FILE = "schema.proto"
_PROTOC_ERROR = re.compile(r"^(?:.*/)?schema\.proto:(\d+:\d+: .*)$", re.MULTILINE)


class SchemaInvalid(ValueError):
    """The definition does not parse as its type; ``detail`` says why."""


class MessageInvalid(ValueError):
    """A message does not validate against a schema; ``detail`` says why."""


class Validator(Protocol):
    type: str

    def validate(self, data: bytes, encoding: str) -> None:
        """Return if ``data`` is a valid message in ``encoding``, else raise MessageInvalid."""


# --- Avro --------------------------------------------------------------------------


@dataclass(slots=True)
class AvroValidator:
    parsed: Any  # fastavro's parsed schema
    type: str = AVRO

    def validate(self, data: bytes, encoding: str) -> None:
        import fastavro
        from fastavro.validation import validate

        if encoding == JSON:
            try:
                value = json.loads(data)
            except (ValueError, UnicodeDecodeError) as err:
                raise MessageInvalid(f"not JSON: {err}") from None
            try:
                # fastavro reads Avro JSON (unions wrapped) but does not check
                # types; validate() does.
                records = list(fastavro.json_reader(io.StringIO(json.dumps(value)), self.parsed))
                validate(records[0], self.parsed, raise_errors=True)
            except Exception as err:  # fastavro raises many kinds on bad input
                raise MessageInvalid(_short(err)) from None
            return
        source = io.BytesIO(data)
        try:
            fastavro.schemaless_reader(source, self.parsed)
        except Exception as err:
            raise MessageInvalid(_short(err) or type(err).__name__) from None
        if source.tell() != len(data):
            raise MessageInvalid(f"{len(data) - source.tell()} bytes left after the message")


def compile_avro(definition: str) -> AvroValidator:
    import fastavro

    try:
        schema = json.loads(definition)
    except ValueError as err:
        raise SchemaInvalid(f"not JSON: {err}") from None
    try:
        return AvroValidator(fastavro.parse_schema(schema))
    except Exception as err:
        raise SchemaInvalid(_short(err)) from None


# --- Protocol Buffers --------------------------------------------------------------


@dataclass(slots=True)
class ProtoValidator:
    message_class: Any
    type: str = PROTOCOL_BUFFER

    def validate(self, data: bytes, encoding: str) -> None:
        from google.protobuf import json_format
        from google.protobuf.message import DecodeError

        message = self.message_class()
        if encoding == JSON:
            try:
                json_format.Parse(data, message)
            except (json_format.ParseError, UnicodeDecodeError, ValueError) as err:
                raise MessageInvalid(_short(err)) from None
            return
        try:
            message.ParseFromString(data)
        except DecodeError as err:
            raise MessageInvalid(_short(err)) from None
        if not message.IsInitialized():
            missing = ", ".join(message.FindInitializationErrors())
            raise MessageInvalid(f"missing required fields: {missing}")


def compile_proto(definition: str) -> ProtoValidator:
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    files = descriptor_pb2.FileDescriptorSet.FromString(_protoc(definition))
    main = files.file[-1]  # --include_imports puts dependencies first
    for dependency in main.dependency:
        if not dependency.startswith(_WELL_KNOWN_PREFIX):
            raise SchemaInvalid(f"imports are not supported: {dependency}")
    top_level = len(main.message_type) + len(main.enum_type) + len(main.service)
    if len(main.message_type) != 1 or top_level != 1:
        raise SchemaInvalid(
            f"the definition must contain exactly one top-level type, a message "
            f"(found {len(main.message_type)} messages, {len(main.enum_type)} enums, "
            f"{len(main.service)} services)"
        )
    pool = descriptor_pool.DescriptorPool()
    for file in files.file:
        pool.Add(file)
    full_name = ".".join(p for p in (main.package, main.message_type[0].name) if p)
    descriptor = pool.FindMessageTypeByName(full_name)
    return ProtoValidator(message_factory.GetMessageClass(descriptor))


def _protoc(definition: str) -> bytes:
    """The descriptor set (with imports) of ``definition``, from protoc."""
    import grpc_tools

    include = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    with tempfile.TemporaryDirectory(prefix="dovecote-proto-") as tmp:
        with open(os.path.join(tmp, _PROTO_FILE), "w", encoding="utf-8") as f:
            f.write(definition)
        out = os.path.join(tmp, "schema.pb")
        command = [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{tmp}",
            f"-I{include}",
            f"--descriptor_set_out={out}",
            "--include_imports",
            _PROTO_FILE,
        ]
        try:
            done = subprocess.run(
                command, capture_output=True, timeout=PROTOC_TIMEOUT_S, cwd=tmp, check=False
            )
        except subprocess.TimeoutExpired:
            raise SchemaInvalid("the definition took too long to compile") from None
        if done.returncode != 0:
            raise SchemaInvalid(_protoc_errors(done.stderr.decode("utf-8", "replace")))
        with open(out, "rb") as f:
            return f.read()


def _protoc_errors(stderr: str) -> str:
    """protoc's error lines as ``line:column: message``, without its logging
    preamble, warnings and our temporary directory."""
    found = [m.group(1) for m in _PROTOC_ERROR.finditer(stderr)]
    return "; ".join(found) or stderr.strip()[-500:] or "protoc failed"


# --- both --------------------------------------------------------------------------

_cache: OrderedDict[tuple[str, str], Validator] = OrderedDict()


def compile_schema(schema_type: str, definition: str) -> Validator:
    """The validator of a definition (cached), or SchemaInvalid.

    Protocol Buffers compile in a child process (tens of milliseconds): call
    it off the event loop where the definition may be new.
    """
    key = (schema_type, definition)
    found = _cache.get(key)
    if found is not None:
        _cache.move_to_end(key)
        return found
    if schema_type == AVRO:
        validator: Validator = compile_avro(definition)
    elif schema_type == PROTOCOL_BUFFER:
        validator = compile_proto(definition)
    else:
        raise SchemaInvalid(f"unknown schema type {schema_type!r}")
    _cache[key] = validator
    while len(_cache) > CACHE_SIZE:
        _cache.popitem(last=False)
    return validator


def cached(schema_type: str, definition: str) -> Validator | None:
    """The validator if it is compiled already (for the publish path)."""
    return _cache.get((schema_type, definition))


def _short(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return text[:500]
