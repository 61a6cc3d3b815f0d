"""Reading an SNS FilterPolicy: AWS's checks and their error texts, and the compiled rule tree.

The texts are the ones AWS answers with (as recorded against real SNS), minus the
Jackson "\\n at [Source: ...; line: 1, column: N]" location AWS appends to some of
them. SetSubscriptionAttributes words them "Invalid parameter: FilterPolicy: ...",
Subscribe "Invalid parameter: Attributes Reason: FilterPolicy: ...".
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from decimal import Context, Decimal, InvalidOperation
from typing import Any

from dovecote.aws.errors import AwsError

SCOPES = ("MessageAttributes", "MessageBody")
MAX_KEYS = 5
MAX_COMBINATIONS = 150
MAX_POLICY_BYTES = 256 * 1024
_NUMERIC_OPS = ("<", "<=", "=", ">", ">=")
_PLACES = Decimal("0.00001")  # AWS compares numbers to five decimal digits
_WIDE = Context(prec=80)

# A value as matching sees it: a JSON type tag and the value, so that true never
# equals 1 and "5" never equals 5.
Tagged = tuple[str, Any]


class FilterPolicyError(AwsError):
    """A refused policy; ``reason`` is the text after "Invalid parameter: "."""

    def __init__(self, reason: str, *, subscribe: bool = False) -> None:
        prefix = "Invalid parameter: Attributes Reason: " if subscribe else "Invalid parameter: "
        super().__init__("InvalidParameter", prefix + reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Cond:
    """One entry of a key's value list: ``kind`` names the test, ``arg`` its operand."""

    kind: str  # eq, prefix, suffix, eqic, exists, numeric, cidr, but, but_prefix
    arg: Any


@dataclass(frozen=True, slots=True)
class Node:
    """AND over ``keys`` (dotted path -> OR of conditions) and over each ``$or`` group."""

    keys: tuple[tuple[str, tuple[Cond, ...]], ...]
    ors: tuple[tuple[Node, ...], ...]


def number(value: Any) -> Decimal | None:
    """A number at AWS's precision (five decimals), or None when ``value`` is no number."""
    if isinstance(value, bool):
        return None
    try:
        d = value if isinstance(value, Decimal) else Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        return None
    if not d.is_finite():
        return None
    try:
        return d.quantize(_PLACES, context=_WIDE)
    except InvalidOperation:  # too many digits even for the wide context: keep as is
        return d


def tag(value: Any) -> Tagged | None:
    """Tag a JSON scalar; None for objects and arrays (they never equal a policy value)."""
    if value is None:
        return ("null", None)
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, str):
        return ("str", value)
    if isinstance(value, int | float | Decimal):
        n = number(value)
        return ("num", n) if n is not None else None
    return None


def check_scope(scope: str, *, subscribe: bool = False) -> str:
    """The scope if AWS knows it, else AWS's FilterPolicyScope error."""
    if scope not in SCOPES:
        raise FilterPolicyError(
            f"FilterPolicyScope: Invalid value [{scope}]. "
            "Please use either MessageBody or MessageAttributes",
            subscribe=subscribe,
        )
    return scope


def compile_policy(text: str, scope: str, *, subscribe: bool = False) -> Node:
    """Check ``text`` the way SNS does and turn it into a rule tree."""
    check_scope(scope, subscribe=subscribe)
    return _Compiler(scope, subscribe).run(text)


class _Compiler:
    """One pass over the parsed policy: structure and rule errors, then size limits."""

    def __init__(self, scope: str, subscribe: bool) -> None:
        self.scope = scope
        self.subscribe = subscribe
        self.nested = False

    def fail(self, reason: str) -> FilterPolicyError:
        return FilterPolicyError(reason, subscribe=self.subscribe)

    def bad(self, reason: str) -> FilterPolicyError:
        return self.fail("FilterPolicy: " + reason)

    def run(self, text: str) -> Node:
        if len(text.encode("utf-8", "surrogatepass")) > MAX_POLICY_BYTES:
            raise self.bad("Filter policy is too large")
        try:
            doc = json.loads(text, parse_float=Decimal, parse_int=Decimal)
        except (ValueError, RecursionError):
            raise self.bad("failed to parse JSON.") from None
        if not isinstance(doc, dict):
            raise self.bad("failed to parse JSON.")
        node, combos = self.node(doc, "", 1)
        if self.nested and self.scope == "MessageAttributes":
            raise self.fail(
                "Filter policy scope MessageAttributes does not support nested filter policy"
            )
        if len(doc) > MAX_KEYS:
            raise self.bad(f"Filter policy can not have more than {MAX_KEYS} keys")
        if combos > MAX_COMBINATIONS:
            raise self.bad("Filter policy is too complex")
        return node

    def node(self, obj: dict[str, Any], prefix: str, depth: int) -> tuple[Node, int]:
        """Compile one object level; also its count of value combinations.

        AWS multiplies each value list's length by its nesting depth, and a ``$or``
        adds up its alternatives.
        """
        keys: list[tuple[str, tuple[Cond, ...]]] = []
        ors: list[tuple[Node, ...]] = []
        combos = 1
        for key, value in obj.items():
            if key == "$or" and _is_or(value):
                branches = [self.node(b, prefix, depth) for b in value]
                ors.append(tuple(n for n, _ in branches))
                combos *= sum(c for _, c in branches)
            elif isinstance(value, dict):
                self.nested = True
                child, c = self.node(value, f"{prefix}{key}.", depth + 1)
                keys.extend(child.keys)
                ors.extend(child.ors)
                combos *= c
            elif isinstance(value, list):
                if not value:
                    raise self.bad("Empty arrays are not allowed")
                keys.append((prefix + key, tuple(self.rule(r) for r in value)))
                combos *= len(value) * depth
            else:
                raise self.bad(f'"{key}" must be an object or an array')
        return Node(tuple(keys), tuple(ors)), combos

    def rule(self, rule: Any) -> Cond:
        """One member of a key's value list."""
        if isinstance(rule, dict):
            if len(rule) != 1:
                raise self.bad("Only one key allowed in match expression")
            ((op, arg),) = rule.items()
            return self.operator(op, arg)
        t = tag(rule)
        if t is None:
            raise self.bad("Match value must be String, number, true, false, or null")
        return Cond("eq", t)

    def operator(self, op: str, arg: Any) -> Cond:
        if op in ("prefix", "suffix", "equals-ignore-case"):
            if not isinstance(arg, str):
                raise self.bad(f"{op} match pattern must be a string")
            return Cond("eqic" if op == "equals-ignore-case" else op, arg)
        if op == "exists":
            if not isinstance(arg, bool):
                raise self.bad("exists match pattern must be either true or false.")
            return Cond("exists", arg)
        if op == "anything-but":
            return self.anything_but(arg)
        if op == "numeric":
            return Cond("numeric", self.numeric(arg))
        if op == "cidr":
            return Cond("cidr", self.cidr(arg))
        raise self.bad(f"Unrecognized match type {op}")

    def anything_but(self, arg: Any) -> Cond:
        if isinstance(arg, dict):
            if len(arg) != 1:
                raise self.bad("Only one key allowed in match expression")
            ((op, inner),) = arg.items()
            if op != "prefix":
                raise self.bad(f"Unsupported anything-but pattern: {op}")
            if not isinstance(inner, str):
                raise self.bad("prefix match pattern must be a string")
            return Cond("but_prefix", inner)
        values = arg if isinstance(arg, list) else [arg]
        if isinstance(arg, list) and not arg:
            raise self.bad("Empty arrays are not allowed")
        tagged: set[Tagged] = set()
        for v in values:
            t = tag(v)
            if t is None or t[0] not in ("str", "num"):
                if isinstance(arg, list):
                    raise self.bad("Inside anything but list, start|null|boolean is not supported.")
                raise self.bad(
                    "Value of anything-but must be an array or single string/number value."
                )
            tagged.add(t)
        return Cond("but", frozenset(tagged))

    def numeric(self, arg: Any) -> tuple[tuple[str, Decimal], ...]:
        """``[op, n]`` or ``[">"|">=", low, "<"|"<=", high]``, checked in AWS's order."""
        if not isinstance(arg, list):
            raise self.bad("Value of numeric must be an array.")
        if not arg:
            raise self.bad("Invalid member in numeric match: ]")
        op = arg[0]
        if not isinstance(op, str):
            raise self.bad(f"Invalid member in numeric match: {_show(op)}")
        if op not in _NUMERIC_OPS:
            raise self.bad(f"Unrecognized numeric range operator: {op}")
        low = self.operand(op, arg[1] if len(arg) > 1 else None)
        if len(arg) <= 2:
            return ((op, low),)
        if op not in (">", ">="):
            raise self.bad("Too many elements in numeric expression")
        op2 = arg[2]
        if not isinstance(op2, str):
            raise self.bad(f"Bad value in numeric range: {_show(op2)}")
        if op2 not in ("<", "<="):
            raise self.bad(f"Bad numeric range operator: {op2}")
        high = self.operand(op2, arg[3] if len(arg) > 3 else None)
        if high <= low:
            raise self.bad("Bottom must be less than top")
        if len(arg) > 4:
            raise self.bad("Too many terms in numeric range expression")
        return ((op, low), (op2, high))

    def operand(self, op: str, value: Any) -> Decimal:
        n = number(value) if isinstance(value, Decimal) else None
        if n is None:
            raise self.bad(f"Value of {'equals' if op == '=' else op} must be numeric")
        return n

    def cidr(self, arg: Any) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
        if not isinstance(arg, str):
            raise self.bad("prefix match pattern must be a string")  # sic: AWS's text
        parts = arg.split("/")
        if len(parts) != 2:
            raise self.bad("Malformed CIDR, one '/' required")
        if not parts[1].strip().lstrip("-").isdigit():
            raise self.bad("Malformed CIDR, mask bits must be an integer")
        try:
            return ipaddress.ip_network(arg, strict=False)
        except ValueError:
            raise self.bad(f"Nonstandard IP address: {parts[0]}") from None


def _is_or(value: Any) -> bool:
    """``$or`` is the OR operator only as a non-empty list of objects, else a plain key."""
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def _show(value: Any) -> str:
    """A JSON member as AWS prints it in an error."""
    if isinstance(value, Decimal | str):
        return str(value)
    return json.dumps(value, default=str)
