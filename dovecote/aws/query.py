"""The query protocol: flattened form parameters in, XML out, walked by the model's shapes.

It is the inverse of botocore's QuerySerializer and QueryParser, so a request a real
client builds decodes to the params it was built from, and our XML parses back to the
result we wrote.
"""

from __future__ import annotations

import base64
import binascii
import datetime
from typing import Any
from xml.sax.saxutils import escape

from botocore.model import Shape

from dovecote.aws.errors import invalid

# XML parsers turn a bare CR into LF: a character reference keeps it.
_KEEP = {"\r": "&#xD;"}


def _name(shape: Shape, default: str) -> str:
    return shape.serialization.get("name", default)


def _flat(shape: Shape) -> bool:
    return bool(shape.serialization.get("flattened"))


def _indices(form: dict[str, str], prefix: str) -> list[int]:
    """The element numbers present under ``prefix.N``, in order."""
    found: set[int] = set()
    start = prefix + "."
    for key in form:
        if key.startswith(start):
            head = key[len(start) :].split(".", 1)[0]
            if head.isascii() and head.isdigit() and not head.startswith("0"):
                found.add(int(head))
    return sorted(found)


def _present(form: dict[str, str], prefix: str) -> bool:
    start = prefix + "."
    return prefix in form or any(k.startswith(start) for k in form)


def decode_form(form: dict[str, str], shape: Shape, prefix: str = "") -> Any:
    """Params of ``shape`` found under ``prefix`` in a flattened query form."""
    kind = shape.type_name
    if kind == "structure":
        out: dict[str, Any] = {}
        for key, member in shape.members.items():
            wire = _name(member, key)
            full = f"{prefix}.{wire}" if prefix else wire
            if (
                member.type_name == "list"
                and _flat(member)
                and member.member.serialization.get("name")
            ):
                item = member.member.serialization["name"]
                full = f"{prefix}.{item}" if prefix else item
                value = _decode_list_items(form, member, full)
                if value is not None:
                    out[key] = value
                elif form.get(f"{prefix}.{wire}" if prefix else wire) == "":
                    out[key] = []
                continue
            if _present(form, full):
                out[key] = decode_form(form, member, full)
        return out
    if kind == "list":
        if form.get(prefix) == "":
            return []
        items_prefix = prefix if _flat(shape) else f"{prefix}.{_name(shape.member, 'member')}"
        return _decode_list_items(form, shape, items_prefix) or []
    if kind == "map":
        base = prefix if _flat(shape) else f"{prefix}.entry"
        key_name, value_name = _name(shape.key, "key"), _name(shape.value, "value")
        out_map: dict[str, Any] = {}
        for i in _indices(form, base):
            key_prefix, value_prefix = f"{base}.{i}.{key_name}", f"{base}.{i}.{value_name}"
            if key_prefix not in form:
                raise invalid(key_prefix, "the map entry has no key")
            out_map[str(decode_form(form, shape.key, key_prefix))] = decode_form(
                form, shape.value, value_prefix
            )
        return out_map
    if prefix not in form:
        raise invalid(prefix, "a value was expected")
    return decode_scalar(form[prefix], shape, prefix)


def _decode_list_items(form: dict[str, str], shape: Shape, items_prefix: str) -> list[Any] | None:
    numbers = _indices(form, items_prefix)
    if not numbers and items_prefix not in form:
        return None
    return [decode_form(form, shape.member, f"{items_prefix}.{i}") for i in numbers]


def decode_scalar(text: str, shape: Shape, name: str) -> Any:
    """One form value as the Python value of the shape's type."""
    kind = shape.type_name
    if kind in ("integer", "long"):
        try:
            return int(text)
        except ValueError:
            raise invalid(name, "an integer was expected") from None
    if kind == "boolean":
        if text not in ("true", "false"):
            raise invalid(name, "true or false was expected")
        return text == "true"
    if kind in ("float", "double"):
        try:
            return float(text)
        except ValueError:
            raise invalid(name, "a number was expected") from None
    if kind == "blob":
        try:
            return base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise invalid(name, "base64 was expected") from None
    if kind == "timestamp":
        try:
            return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise invalid(name, "an ISO 8601 timestamp was expected") from None
    return text


def _text(value: Any, shape: Shape) -> str:
    kind = shape.type_name
    if kind == "blob":
        raw = value.encode() if isinstance(value, str) else bytes(value)
        return base64.b64encode(raw).decode("ascii")
    if kind == "boolean":
        return "true" if value else "false"
    if kind == "timestamp" and isinstance(value, datetime.datetime):
        return value.isoformat().replace("+00:00", "Z")
    return str(value)


def encode_xml(value: Any, shape: Shape, tag: str) -> str:
    """``value`` of ``shape`` as the XML element(s) named ``tag``."""
    kind = shape.type_name
    if kind == "structure":
        inner = "".join(
            _encode_member(value[key], member, _name(member, key))
            for key, member in shape.members.items()
            if value.get(key) is not None
        )
        return f"<{tag}>{inner}</{tag}>"
    if kind in ("list", "map"):
        return _encode_member(value, shape, tag)
    return f"<{tag}>{escape(_text(value, shape), _KEEP)}</{tag}>"


def _encode_member(value: Any, shape: Shape, tag: str) -> str:
    kind = shape.type_name
    if kind == "list":
        if _flat(shape):
            item_tag = _name(shape.member, tag)
            return "".join(encode_xml(v, shape.member, item_tag) for v in value)
        item_tag = _name(shape.member, "member")
        return f"<{tag}>{''.join(encode_xml(v, shape.member, item_tag) for v in value)}</{tag}>"
    if kind == "map":
        key_tag, value_tag = _name(shape.key, "key"), _name(shape.value, "value")
        entries = [
            encode_xml(k, shape.key, key_tag) + encode_xml(v, shape.value, value_tag)
            for k, v in value.items()
        ]
        if _flat(shape):
            return "".join(f"<{tag}>{e}</{tag}>" for e in entries)
        return f"<{tag}>{''.join(f'<entry>{e}</entry>' for e in entries)}</{tag}>"
    return encode_xml(value, shape, tag)
