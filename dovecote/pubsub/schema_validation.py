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
import threading
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
    named: dict[str, Any]  # its named types by full and short name
    type: str = AVRO

    def validate(self, data: bytes, encoding: str) -> None:
        import fastavro
        from fastavro.validation import validate

        if encoding == JSON:
            try:
                value = json.loads(data)
            except (ValueError, RecursionError) as err:
                raise MessageInvalid(f"not JSON: {_short(err)}") from None
            try:
                # Avro JSON -> Python values (unions unwrapped, bytes decoded),
                # then fastavro checks the types.
                decoded = _from_avro_json(value, self.parsed, self.named)
                validate(decoded, self.parsed, raise_errors=True)
            except MessageInvalid:
                raise
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
        parsed = fastavro.parse_schema(schema)
    except Exception as err:
        raise SchemaInvalid(_short(err)) from None
    named: dict[str, Any] = {}
    if _zero_size_array(parsed, named):
        # A block count of 2^63 such items costs no bytes, and the reader
        # would loop that many times: one message could hang the broker.
        raise SchemaInvalid("arrays of items that encode to zero bytes are not supported")
    for full in list(named):
        named.setdefault(full.rsplit(".", 1)[-1], named[full])
    return AvroValidator(parsed, named)


_PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})


def _from_avro_json(value: Any, schema: Any, named: dict[str, Any]) -> Any:
    """A value in Avro's JSON encoding as the Python value fastavro validates:
    a union is ``null`` or ``{"branch": value}``, bytes and fixed are strings
    of code points 0-255, a missing record field takes its default."""
    if isinstance(schema, str):
        if schema in _PRIMITIVES:
            return _latin1(value) if schema == "bytes" else value
        return _from_avro_json(value, named[schema], named)
    if isinstance(schema, list):
        if value is None:
            return None
        if not isinstance(value, dict) or len(value) != 1:
            raise MessageInvalid(
                f"a union value must be null or an object of one branch: {value!r:.80}"
            )
        ((branch_name, inner),) = value.items()
        for branch in schema:
            if branch_name in _branch_names(branch):
                return _from_avro_json(inner, branch, named)
        raise MessageInvalid(f"no union branch {branch_name!r}")
    kind = schema.get("type")
    if kind in ("record", "error"):
        if not isinstance(value, dict):
            raise MessageInvalid(f"{schema.get('name')} must be a JSON object")
        out = {}
        for field in schema["fields"]:
            if field["name"] in value:
                out[field["name"]] = _from_avro_json(value[field["name"]], field["type"], named)
            elif "default" in field:
                out[field["name"]] = field["default"]
            else:
                raise MessageInvalid(f"{schema.get('name')}.{field['name']} is missing")
        return out
    if kind == "array":
        if not isinstance(value, list):
            raise MessageInvalid("an array must be a JSON array")
        return [_from_avro_json(item, schema["items"], named) for item in value]
    if kind == "map":
        if not isinstance(value, dict):
            raise MessageInvalid("a map must be a JSON object")
        return {k: _from_avro_json(v, schema["values"], named) for k, v in value.items()}
    if kind == "fixed":
        return _latin1(value)
    if kind == "enum":
        return value
    return _from_avro_json(value, kind, named)  # {"type": "int", "logicalType": ...}


def _branch_names(branch: Any) -> tuple[str, ...]:
    if isinstance(branch, str):
        return (branch, branch.rsplit(".", 1)[-1])
    name = branch.get("name")
    if name:
        return (name, name.rsplit(".", 1)[-1])
    kind = branch.get("type")
    return (kind,) if isinstance(kind, str) else ()


def _latin1(value: Any) -> Any:
    """Avro JSON's bytes: a string whose code points are the byte values."""
    if not isinstance(value, str):
        return value  # validate() reports the wrong type
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        raise MessageInvalid("bytes must be a string of code points 0-255") from None


def _zero_size_array(schema: Any, named: dict[str, Any]) -> bool:
    """Whether ``schema`` has an array whose items can encode to no bytes."""
    if isinstance(schema, list):
        return any(_zero_size_array(branch, named) for branch in schema)
    if not isinstance(schema, dict):
        return False
    kind = schema.get("type")
    if kind in ("record", "error", "enum", "fixed") and "name" in schema:
        named[schema["name"]] = schema
    if kind == "array":
        items = schema.get("items")
        return _zero_size(items, named, set()) or _zero_size_array(items, named)
    if kind == "map":
        return _zero_size_array(schema.get("values"), named)
    if kind in ("record", "error"):
        return any(_zero_size_array(f.get("type"), named) for f in schema.get("fields", []))
    return _zero_size_array(kind, named) if isinstance(kind, (dict, list)) else False


def _zero_size(schema: Any, named: dict[str, Any], visiting: set[str]) -> bool:
    """Whether a value of ``schema`` can encode to no bytes (null, fixed(0),
    records of only such fields)."""
    if isinstance(schema, str):
        if schema == "null":
            return True
        if schema in named and schema not in visiting:
            return _zero_size(named[schema], named, visiting | {schema})
        return False
    if not isinstance(schema, dict):
        return False  # a union spends at least a byte on its branch index
    kind = schema.get("type")
    if kind == "fixed":
        return schema.get("size") == 0
    if kind in ("record", "error"):
        inner = visiting | {schema.get("name", "")}
        return all(_zero_size(f.get("type"), named, inner) for f in schema.get("fields", []))
    if kind in ("array", "map", "enum"):
        return False
    return _zero_size(kind, named, visiting)  # {"type": "null"}, logical types


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
            except (json_format.ParseError, ValueError, RecursionError) as err:
                raise MessageInvalid(_short(err)) from None
        else:
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
_cache_lock = threading.Lock()  # compiles run in executor threads


def compile_schema(schema_type: str, definition: str) -> Validator:
    """The validator of a definition (cached), or SchemaInvalid.

    Protocol Buffers compile in a child process (tens of milliseconds): call
    it off the event loop where the definition may be new.
    """
    found = cached(schema_type, definition)
    if found is not None:
        return found
    if schema_type == AVRO:
        validator: Validator = compile_avro(definition)
    elif schema_type == PROTOCOL_BUFFER:
        validator = compile_proto(definition)
    else:
        raise SchemaInvalid(f"unknown schema type {schema_type!r}")
    with _cache_lock:
        _cache[(schema_type, definition)] = validator
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return validator


def cached(schema_type: str, definition: str) -> Validator | None:
    """The validator if it is compiled already (for the publish path)."""
    key = (schema_type, definition)
    with _cache_lock:
        found = _cache.get(key)
        if found is not None:
            _cache.move_to_end(key)
        return found


def _short(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return text[:500]
