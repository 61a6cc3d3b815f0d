"""Exchange routing as RabbitMQ defines it."""

from __future__ import annotations

import pytest

from dovecote.core.routing import (
    DIRECT,
    EXCHANGE,
    FANOUT,
    HEADERS,
    QUEUE,
    TOPIC,
    Binding,
    Exchange,
    HeadersMatching,
    Router,
    freeze_arguments,
    headers_match,
    topic_matches,
)


@pytest.mark.parametrize(
    ("pattern", "key", "expected"),
    [
        ("a.b.c", "a.b.c", True),
        ("a.*.c", "a.b.c", True),
        ("a.*.c", "a.c", False),
        ("a.#", "a", True),
        ("a.#", "a.b.c", True),
        ("#.c", "c", True),
        ("#.c", "a.b.c", True),
        ("#", "", True),
        ("#", "anything.at.all", True),
        ("*", "", False),
        ("*", "one", True),
        ("*", "one.two", False),
        ("a.#.c", "a.c", True),
        ("a.#.c", "a.x.y.c", True),
        ("a.#.c", "a.x.y.d", False),
        ("#.#", "a", True),
        ("*.#", "", False),
        ("*.*.#", "a.b", True),
        ("a.*.#", "a", False),
        ("a..b", "a..b", True),
        ("logs.*.error", "logs.app.error", True),
        ("logs.*.error", "logs.app.warn", False),
    ],
)
def test_topic_matching(pattern, key, expected):
    assert topic_matches(pattern, key) is expected


# The convention an adapter may give the router (the AMQP one, written out
# here: the core itself names no protocol's arguments).
PREFIXED = HeadersMatching(mode_key="x-match", reserved_prefix="x-", with_suffix="-with-x")


def test_headers_matching():
    def match(args, headers):
        return headers_match(args, headers, PREFIXED)

    assert match({"x-match": "all", "a": 1, "b": "x"}, {"a": 1, "b": "x", "c": 2})
    assert not match({"x-match": "all", "a": 1, "b": "x"}, {"a": 1})
    assert match({"x-match": "any", "a": 1, "b": "x"}, {"a": 1})
    assert not match({"x-match": "any", "a": 1}, {"a": 2})
    assert match({"a": 1}, {"a": 1})  # the mode defaults to all
    assert match({"x-match": "all", "x-custom": 1}, {})  # reserved args ignored
    assert not match({"x-match": "all-with-x", "x-custom": 1}, {})


def test_headers_matching_by_default_reserves_nothing():
    assert headers_match({"match": "any", "a": 1, "b": 2}, {"b": 2})
    assert not headers_match({"match": "all", "a": 1, "b": 2}, {"b": 2})
    assert not headers_match({"x-custom": 1}, {})  # no reserved prefix: matched like any other


def bind(router: Router, source: str, dest: str, key: str = "", kind: str = QUEUE, **args):
    router.exchanges[source].add(Binding(source, dest, kind, key, freeze_arguments(args)))


def test_router_follows_exchange_bindings_alternates_and_cycles():
    router = Router(PREFIXED)
    for name, kind in [("d", DIRECT), ("f", FANOUT), ("t", TOPIC), ("h", HEADERS), ("alt", FANOUT)]:
        router.exchanges[name] = Exchange(name, kind)
    router.exchanges["d"].arguments["alternate-exchange"] = "alt"
    bind(router, "d", "q1", "k1")
    bind(router, "d", "t", "k2", kind=EXCHANGE)
    bind(router, "t", "q2", "k2")
    bind(router, "t", "d", "#", kind=EXCHANGE)  # a cycle back
    bind(router, "f", "q3")
    bind(router, "f", "q4")
    bind(router, "alt", "unrouted")
    bind(router, "h", "q5", **{"x-match": "any", "colour": "a"})
    assert router.route("d", "k1") == {"q1"}
    assert router.route("d", "k2") == {"q2"}
    assert router.route("d", "nothing") == {"unrouted"}
    assert router.route("f", "whatever") == {"q3", "q4"}
    assert router.route("h", "", {"colour": "a"}) == {"q5"}
    assert router.route("h", "", {"colour": "b"}) == set()
    assert router.route("", "q9", queue_exists=lambda n: n == "q9") == {"q9"}
    assert router.route("", "nope", queue_exists=lambda n: False) == set()
    assert router.route("missing", "k") == set()
    # The route cache is dropped when bindings change.
    router.exchanges["d"].remove(Binding("d", "q1", QUEUE, "k1"))
    assert router.route("d", "k1") == {"unrouted"}


def test_binding_filters_decide_per_destination():
    """A binding's filter hook: records it rejects do not pass that binding,
    other bindings are unaffected; a filter that raises lets nothing through;
    the alternate exchange takes what every binding's filter refused."""
    router = Router()
    router.exchanges["f"] = Exchange("f", FANOUT, arguments={"alternate-exchange": "alt"})
    router.exchanges["alt"] = Exchange("alt", FANOUT)
    seen = []

    def only_red(key, headers):
        seen.append((key, dict(headers or {})))
        return (headers or {}).get("colour") == "red"

    def broken(key, headers):
        raise ValueError("bad policy")

    f = router.exchanges["f"]
    f.add(Binding("f", "reds", QUEUE, "", filter=only_red))
    f.add(Binding("f", "broken", QUEUE, "", filter=broken))
    router.exchanges["alt"].add(Binding("alt", "leftovers", QUEUE, ""))
    assert router.route("f", "k", {"colour": "red"}) == {"reds"}
    assert seen == [("k", {"colour": "red"})]
    assert router.route("f", "k", {"colour": "blue"}) == {"leftovers"}
    f.add(Binding("f", "all", QUEUE, ""))
    assert router.route("f", "k", {"colour": "blue"}) == {"all"}
    # The filter is not part of a binding's identity: removing by key removes it.
    assert f.remove(Binding("f", "reds", QUEUE, ""))
    assert router.route("f", "k", {"colour": "red"}) == {"all"}
