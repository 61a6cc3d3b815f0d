"""Amazon SNS subscription filter policies: does a published message reach a subscription.

A policy is AND over its keys (and over each ``$or`` group, itself an OR of
sub-policies) and, for each key, OR over the entries of its value list. Scope
"MessageAttributes" tests the Publish message attributes; "MessageBody" tests the
message read as a JSON object, nested policy keys naming nested properties.
Checking and error texts live in ``sns_filter_validate``.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterator, Mapping
from decimal import Decimal
from typing import Any

from dovecote.aws.sns_filter_validate import (
    SCOPES,
    Cond,
    FilterPolicyError,
    Node,
    Tagged,
    check_scope,
    compile_policy,
    number,
    tag,
)

__all__ = ["SCOPES", "FilterPolicy", "FilterPolicyError", "check_scope"]


class FilterPolicy:
    """A checked filter policy, ready to test messages against."""

    __slots__ = ("_root", "scope", "text")

    def __init__(self, text: str, scope: str, root: Node) -> None:
        self.text = text
        self.scope = scope
        self._root = root

    @classmethod
    def parse(
        cls, text: str, scope: str = "MessageAttributes", *, subscribe: bool = False
    ) -> FilterPolicy:
        """Check ``text`` as SNS does; raise FilterPolicyError (an AwsError) if SNS would.

        ``subscribe`` words the error as Subscribe does ("Attributes Reason: ...");
        SetSubscriptionAttributes leaves that out.
        """
        return cls(text, scope, compile_policy(text, scope, subscribe=subscribe))

    def __repr__(self) -> str:
        return f"FilterPolicy({self.text!r}, scope={self.scope!r})"

    def matches_attributes(self, attributes: Mapping[str, tuple[str, str | bytes]]) -> bool:
        """Test Publish message attributes: name -> (DataType, value).

        Binary attributes are ignored, as SNS does; a String.Array's value is its
        JSON text and each element is tested on its own.
        """
        values: dict[str, list[Tagged]] = {}
        for name, (data_type, raw) in attributes.items():
            found = _attribute_values(data_type, raw)
            if found is not None:
                values[name] = found

        def lookup(path: str) -> list[Tagged] | None:
            return values.get(path)

        return _node(self._root, lookup, empty=not values)

    def matches_body(self, body: str | bytes) -> bool:
        """Test a message body; one that is not a JSON object matches nothing."""
        try:
            doc = json.loads(body, parse_float=Decimal, parse_int=Decimal)
        except (ValueError, RecursionError):
            return False
        if not isinstance(doc, dict):
            return False

        def lookup(path: str) -> list[Tagged] | None:
            leaves = list(_leaves(doc, path))
            return [t for t in map(tag, leaves) if t is not None] if leaves else None

        return _node(self._root, lookup, empty=False)

    def matches(
        self,
        attributes: Mapping[str, tuple[str, str | bytes]],
        body: str | bytes,
    ) -> bool:
        """Test a published message by this policy's scope."""
        if self.scope == "MessageBody":
            return self.matches_body(body)
        return self.matches_attributes(attributes)


def _attribute_values(data_type: str, raw: str | bytes) -> list[Tagged] | None:
    """The values a message attribute offers to matching; None when SNS ignores it."""
    base = data_type.split(".", 1)[0]
    if base == "Binary":
        return None
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    if data_type == "String.Array":
        try:
            items = json.loads(text, parse_float=Decimal, parse_int=Decimal)
        except (ValueError, RecursionError):
            return []
        if not isinstance(items, list):
            return []
        return [t for t in map(tag, items) if t is not None]
    if base == "Number":
        n = number(text)
        return [("num", n)] if n is not None else []
    return [("str", text)]


def _leaves(obj: Any, path: str) -> Iterator[Any]:
    """The scalar values at dotted ``path`` in a JSON body.

    SNS reads {"a": {"b": 1}}, {"a.b": 1} and arrays of either alike, so a key
    of the body may itself hold dots: each body key that is the path or a dotted
    prefix of it is followed. Arrays are walked through at every level.
    """
    if isinstance(obj, list):
        for item in obj:
            yield from _leaves(item, path)
        return
    if not isinstance(obj, dict):
        return
    for key, value in obj.items():
        if key == path:
            yield from _flatten(value)
        elif path.startswith(key + "."):
            yield from _leaves(value, path[len(key) + 1 :])


def _flatten(value: Any) -> Iterator[Any]:
    """Leaf values: arrays are opened; objects are inner nodes, not values."""
    if isinstance(value, list):
        for item in value:
            yield from _flatten(item)
    elif not isinstance(value, dict):
        yield value


def _node(node: Node, lookup: Any, *, empty: bool) -> bool:
    """AND over the node's keys and ``$or`` groups."""
    for path, conds in node.keys:
        values = lookup(path)
        if not any(_cond(c, values, empty) for c in conds):
            return False
    return all(any(_node(b, lookup, empty=empty) for b in group) for group in node.ors)


def _cond(cond: Cond, values: list[Tagged] | None, empty: bool) -> bool:
    """One value-list entry against a key's values (None: the key is absent)."""
    kind, arg = cond.kind, cond.arg
    if kind == "exists":
        present = any(v[0] != "null" for v in values or ())
        # "exists": false needs some attribute on the message: none at all never matches.
        return present if arg else not present and not empty
    if not values:
        return False
    if kind == "but":
        # Every value must be outside the list (a String.Array matches only if none is listed).
        return all(v[0] in ("str", "num") and v not in arg for v in values)
    if kind == "but_prefix":
        return all(v[0] == "str" and not v[1].startswith(arg) for v in values)
    return any(_one(kind, arg, v) for v in values)


def _one(kind: str, arg: Any, value: Tagged) -> bool:
    """One value against a positive test."""
    if kind == "eq":
        return value == arg
    if kind == "numeric":
        return value[0] == "num" and all(_compare(op, value[1], n) for op, n in arg)
    if value[0] != "str":
        return False
    text: str = value[1]
    if kind == "prefix":
        return text.startswith(arg)
    if kind == "suffix":
        return text.endswith(arg)
    if kind == "eqic":
        return text.lower() == arg.lower()
    if kind == "cidr":
        try:
            return ipaddress.ip_address(text.strip()) in arg
        except ValueError:
            return False
    raise AssertionError(kind)


def _compare(op: str, left: Decimal, right: Decimal) -> bool:
    if op == "=":
        return left == right
    if op == "<":
        return left < right
    if op == "<=":
        return left <= right
    if op == ">":
        return left > right
    return left >= right
