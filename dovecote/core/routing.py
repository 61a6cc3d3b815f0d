"""Exchanges and bindings: where a published record goes.

Pure data and matching, no I/O. The four exchange types behave as RabbitMQ's:
direct (routing key equals binding key), fanout (every binding), topic
(dot-separated words; ``*`` is exactly one word, ``#`` zero or more) and
headers (all/any of the binding's arguments, the mode and which argument
names are reserved set by :class:`HeadersMatching`, which the protocol
adapter supplies). Bindings can point at queues or at other exchanges; an
exchange may name an alternate exchange for records nothing else takes. A
binding may carry a filter (:data:`BindingFilter`): records it rejects do
not pass that binding.

Route results of direct and topic exchanges are cached per routing key and the
cache is dropped whenever a binding changes, so steady-state publishing costs
one dictionary lookup per exchange.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

DIRECT, FANOUT, TOPIC, HEADERS = "direct", "fanout", "topic", "headers"
EXCHANGE_TYPES = (DIRECT, FANOUT, TOPIC, HEADERS)
QUEUE, EXCHANGE = "queue", "exchange"

log = logging.getLogger(__name__)

# A binding's filter: (routing key, headers) -> whether the record passes.
# The hook SNS filter policies and Pub/Sub filters plug into.
BindingFilter = Callable[[str, Mapping[str, Any] | None], bool]


@dataclass(frozen=True, slots=True)
class HeadersMatching:
    """How a headers exchange reads its bindings' arguments.

    ``mode_key`` names the argument holding the mode (``all`` or ``any``,
    optionally with the ``-with-<prefix>`` suffix ``with_suffix``); arguments
    starting with ``reserved_prefix`` are not matched unless the mode has
    that suffix. The defaults reserve nothing."""

    mode_key: str = "match"
    reserved_prefix: str | None = None
    with_suffix: str = ""


DEFAULT_HEADERS_MATCHING = HeadersMatching()


@dataclass(frozen=True, slots=True)
class Binding:
    source: str
    destination: str
    kind: str  # QUEUE or EXCHANGE
    routing_key: str
    arguments: tuple[tuple[str, Any], ...] = ()
    # Not part of the binding's identity, and not stored (see QueueManager.bind).
    filter: BindingFilter | None = field(default=None, compare=False, hash=False)

    def passes(self, routing_key: str, headers: Mapping[str, Any] | None) -> bool:
        """Whether a record passes this binding's filter (no filter: it does).
        A filter that raises lets nothing through, and is logged."""
        if self.filter is None:
            return True
        try:
            return bool(self.filter(routing_key, headers))
        except Exception:
            log.exception("filter of binding %s -> %s failed", self.source, self.destination)
            return False

    @property
    def args(self) -> dict[str, Any]:
        return dict(self.arguments)

    def catalog_key(self) -> str:
        return "\x00".join(
            [self.source, self.kind, self.destination, self.routing_key, repr(self.arguments)]
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "destination": self.destination,
            "kind": self.kind,
            "routing_key": self.routing_key,
            "arguments": [list(a) for a in self.arguments],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Binding:
        return cls(
            data["source"],
            data["destination"],
            data["kind"],
            data["routing_key"],
            tuple((k, _freeze(v)) for k, v in data.get("arguments", [])),
        )


def _freeze(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


def freeze_arguments(arguments: Mapping[str, Any] | None) -> tuple[tuple[str, Any], ...]:
    """Binding arguments as a hashable, order-independent tuple."""
    if not arguments:
        return ()
    return tuple(sorted((str(k), _freeze(v)) for k, v in arguments.items()))


def _words(key: str) -> list[str]:
    # RabbitMQ treats the empty key as zero words, so "#" matches it and "*" does not.
    return key.split(".") if key else []


@lru_cache(maxsize=8192)
def topic_matches(pattern: str, routing_key: str) -> bool:
    """RabbitMQ topic matching, as an NFA over words: ``*`` is one word, ``#``
    zero or more."""
    p = _words(pattern)
    n = len(p)

    def closure(states: set[int]) -> set[int]:
        out: set[int] = set()
        stack = list(states)
        while stack:
            i = stack.pop()
            if i in out:
                continue
            out.add(i)
            if i < n and p[i] == "#":
                stack.append(i + 1)
        return out

    states = closure({0})
    for word in _words(routing_key):
        following: set[int] = set()
        for i in states:
            if i < n:
                if p[i] == "#":
                    following.add(i)
                elif p[i] == "*" or p[i] == word:
                    following.add(i + 1)
        states = closure(following)
        if not states:
            return False
    return n in states


def headers_match(
    binding_args: Mapping[str, Any],
    headers: Mapping[str, Any] | None,
    matching: HeadersMatching = DEFAULT_HEADERS_MATCHING,
) -> bool:
    headers = headers or {}
    mode_key, prefix = matching.mode_key, matching.reserved_prefix
    mode = str(binding_args.get(mode_key, "all"))
    with_reserved = bool(matching.with_suffix) and mode.endswith(matching.with_suffix)
    wanted = {
        k: v
        for k, v in binding_args.items()
        if k != mode_key and (with_reserved or prefix is None or not k.startswith(prefix))
    }
    if not wanted:
        return mode.startswith("all")

    def ok(key: str, value: Any) -> bool:
        if key not in headers:
            return False
        # A binding argument with no value (void) matches on presence alone.
        return value is None or headers[key] == value

    if mode.startswith("any"):
        return any(ok(k, v) for k, v in wanted.items())
    return all(ok(k, v) for k, v in wanted.items())


@dataclass
class Exchange:
    name: str
    type: str
    durable: bool = True
    auto_delete: bool = False
    internal: bool = False
    arguments: dict[str, Any] = field(default_factory=dict)
    reserved: bool = False  # always there, cannot be deleted (not stored)
    bindings: list[Binding] = field(default_factory=list)
    _cache: dict[str, list[Binding]] = field(default_factory=dict, repr=False)
    filtered: int = 0  # bindings with a filter (they need the publish's headers)

    @property
    def routes_by_headers(self) -> bool:
        """Whether routing through this exchange reads the headers: a headers
        exchange with bindings, or any binding with a filter."""
        return bool(self.filtered or (self.type == HEADERS and self.bindings))

    @property
    def alternate(self) -> str | None:
        value = self.arguments.get("alternate-exchange")
        return str(value) if value else None

    def add(self, binding: Binding) -> bool:
        if binding in self.bindings:
            return False
        self.bindings.append(binding)
        self._cache.clear()
        if binding.filter is not None:
            self.filtered += 1
        return True

    def remove(self, binding: Binding) -> bool:
        if binding not in self.bindings:
            return False
        gone = self.bindings.pop(self.bindings.index(binding))
        self._cache.clear()
        if gone.filter is not None:
            self.filtered -= 1
        return True

    def matching(
        self,
        routing_key: str,
        headers: Mapping[str, Any] | None,
        rule: HeadersMatching = DEFAULT_HEADERS_MATCHING,
    ) -> list[Binding]:
        kind = self.type
        if kind == FANOUT:
            return self.bindings
        if kind == HEADERS:
            return [b for b in self.bindings if headers_match(b.args, headers, rule)]
        cached = self._cache.get(routing_key)
        if cached is not None:
            return cached
        if kind == DIRECT:
            found = [b for b in self.bindings if b.routing_key == routing_key]
        else:
            found = [b for b in self.bindings if topic_matches(b.routing_key, routing_key)]
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[routing_key] = found
        return found

    def to_json(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "durable": self.durable,
            "auto_delete": self.auto_delete,
            "internal": self.internal,
            "arguments": self.arguments,
        }


class Router:
    """All exchanges; ``route`` resolves a publish to the set of queue names."""

    DEFAULT = ""

    def __init__(self, headers_matching: HeadersMatching = DEFAULT_HEADERS_MATCHING) -> None:
        self.exchanges: dict[str, Exchange] = {}
        self.headers_matching = headers_matching

    def route(
        self,
        exchange: str,
        routing_key: str,
        headers: Mapping[str, Any] | None = None,
        queue_exists=None,
    ) -> set[str]:
        """Queue names a record published to ``exchange`` reaches (following
        exchange-to-exchange bindings and alternate exchanges, cycles safe)."""
        if exchange == self.DEFAULT:
            if queue_exists is None or queue_exists(routing_key):
                return {routing_key}
            return set()
        queues: set[str] = set()
        self._route(exchange, routing_key, headers, queues, set())
        return queues

    def _route(
        self,
        name: str,
        routing_key: str,
        headers: Mapping[str, Any] | None,
        queues: set[str],
        visited: set[str],
    ) -> None:
        if name in visited:
            return
        visited.add(name)
        exchange = self.exchanges.get(name)
        if exchange is None:
            return
        passed = False
        for binding in exchange.matching(routing_key, headers, self.headers_matching):
            if binding.filter is not None and not binding.passes(routing_key, headers):
                continue
            passed = True
            if binding.kind == QUEUE:
                queues.add(binding.destination)
            else:
                self._route(binding.destination, routing_key, headers, queues, visited)
        if not passed and exchange.alternate:
            self._route(exchange.alternate, routing_key, headers, queues, visited)

    def bindings_to(self, kind: str, destination: str) -> list[Binding]:
        return [
            b
            for exchange in self.exchanges.values()
            for b in exchange.bindings
            if b.kind == kind and b.destination == destination
        ]
