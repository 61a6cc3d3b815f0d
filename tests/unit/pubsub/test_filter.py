"""The Pub/Sub filter language: Google's documented examples, every error, and
a property test against a reference evaluator of random expressions."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from dovecote.pubsub.filter import MAX_FILTER_BYTES, AttributeFilter, FilterError, compile_filter

NAME_COM = {"name": "com"}
NAME_NET = {"name": "net"}
NAME_CO = {"name": "co"}
NO_NAME = {"other": "com"}
EMPTY: dict[str, str] = {}


def matches(text: str, attributes: dict[str, str]) -> bool:
    return compile_filter(text)(attributes)


# --- Google's table and examples (subscription-message-filter) ---------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # "attributes:name  Messages with the name attribute"
        ("attributes:name", [True, True, True, False, False]),
        # "NOT attributes:name  Messages without the name attribute"
        ("NOT attributes:name", [False, False, False, True, True]),
        # "attributes.name = "com"  ... with the name attribute and the value of com"
        ('attributes.name = "com"', [True, False, False, False, False]),
        # "attributes.name != "com"  Messages without the name attribute and the
        # value of com": the complement of =, so true without the attribute.
        ('attributes.name != "com"', [False, True, True, True, True]),
        # "hasPrefix(attributes.name, "co")  ... a value that starts with co"
        ('hasPrefix(attributes.name, "co")', [True, False, True, False, False]),
        # "NOT hasPrefix(attributes.name, "co")": the complement
        ('NOT hasPrefix(attributes.name, "co")', [False, True, False, True, True]),
    ],
)
def test_google_table(text: str, expected: list[bool]) -> None:
    messages = [NAME_COM, NAME_NET, NAME_CO, NO_NAME, EMPTY]
    assert [matches(text, m) for m in messages] == expected


def test_not_equals_is_the_complement_of_equals() -> None:
    for message in (NAME_COM, NAME_NET, NO_NAME, EMPTY):
        assert matches('attributes.name != "com"', message) == matches(
            'NOT attributes.name = "com"', message
        )


def test_quoted_key_for_characters_outside_the_bare_key_set() -> None:
    lang = {"iana.org/language_tag": "en"}
    assert matches('attributes."iana.org/language_tag" = "en"', lang)
    assert not matches('attributes."iana.org/language_tag" = "fr"', lang)
    assert matches('attributes:"iana.org/language_tag"', lang)
    assert not matches('attributes:"iana.org/language_tag"', {"iana": "en"})


def test_unicode_escapes_in_a_quoted_key() -> None:
    assert matches('attributes:"\\u307F\\u3093\\u306A"', {"みんな": "x"})
    assert not matches('attributes:"\\u307F\\u3093\\u306A"', {"みん": "x"})


def test_unicode_escape_outside_a_string_literal_is_invalid() -> None:
    with pytest.raises(FilterError):
        compile_filter("attributes:\\u307F\\u3093\\u306A")


def test_boolean_examples() -> None:
    tag = "iana.org/language_tag"
    text = 'attributes:"iana.org/language_tag" AND NOT attributes.name = "com"'
    assert matches(text, {tag: "en", "name": "net"})
    assert matches(text, {tag: "en"})
    assert not matches(text, {tag: "en", "name": "com"})
    assert not matches(text, {"name": "net"})

    text = (
        'attributes:"iana.org/language_tag" AND '
        '(attributes.name = "net" OR attributes.name = "org")'
    )
    assert matches(text, {tag: "en", "name": "net"})
    assert matches(text, {tag: "en", "name": "org"})
    assert not matches(text, {tag: "en", "name": "com"})
    assert not matches(text, {"name": "net"})

    text = 'attributes.name = "com" AND -attributes:"iana.org/language_tag"'
    assert matches(text, {"name": "com"})
    assert not matches(text, {"name": "com", tag: "en"})


def test_client_library_sample_without_spaces() -> None:
    assert matches('attributes.author="unknown"', {"author": "unknown"})
    assert not matches('attributes.author="unknown"', {"author": "known"})


@pytest.mark.parametrize("text", ["", " ", "\n\t  "])
def test_empty_filter_matches_everything(text: str) -> None:
    accept = compile_filter(text)
    assert accept(EMPTY) and accept(NAME_COM)


def test_the_filter_keeps_its_text() -> None:
    accept = compile_filter("attributes:name")
    assert isinstance(accept, AttributeFilter)
    assert accept.text == "attributes:name"
    assert "attributes:name" in repr(accept)


# --- further valid forms -------------------------------------------------------


def test_chains_of_one_operator() -> None:
    text = "attributes:a AND attributes:b AND attributes:c"
    assert matches(text, {"a": "", "b": "", "c": ""})
    assert not matches(text, {"a": "", "b": ""})
    text = "attributes:a OR attributes:b OR attributes:c"
    assert matches(text, {"c": ""})
    assert not matches(text, {"d": ""})


def test_not_binds_tighter_than_and_or() -> None:
    text = "NOT attributes:a AND attributes:b"
    assert matches(text, {"b": ""})
    assert not matches(text, {"a": "", "b": ""})
    text = "NOT attributes:a OR attributes:b"
    assert matches(text, {"a": "", "b": ""})
    assert matches(text, EMPTY)
    assert not matches(text, {"a": ""})


def test_negating_a_group_and_repeated_negation() -> None:
    text = "NOT (attributes:a OR attributes:b)"
    assert matches(text, EMPTY)
    assert not matches(text, {"b": ""})
    assert matches("-(attributes:a)", EMPTY)
    assert matches("NOT NOT attributes:a", {"a": ""})
    assert matches("--attributes:a", {"a": ""})
    assert not matches("NOT -attributes:a", EMPTY)


def test_bare_keys_take_letters_digits_hyphens_and_underscores() -> None:
    attributes = {"ce-type": "x", "my_key2": "y", "9": "z"}
    assert matches('attributes.ce-type = "x" AND attributes.my_key2 = "y"', attributes)
    assert matches("attributes:9", attributes)


def test_keys_and_values_are_case_sensitive() -> None:
    assert not matches('attributes.Name = "com"', NAME_COM)
    assert not matches('attributes.name = "COM"', NAME_COM)


def test_empty_value_and_empty_prefix() -> None:
    assert matches('attributes.k = ""', {"k": ""})
    assert not matches('attributes.k = ""', {"k": "x"})
    assert matches('hasPrefix(attributes.k, "")', {"k": "x"})
    assert not matches('hasPrefix(attributes.k, "")', EMPTY)


def test_whitespace_between_tokens_is_free() -> None:
    text = '  (\n attributes : k\tAND  hasPrefix ( attributes."a b" ,"v" ) )  '
    assert matches(text, {"k": "", "a b": "vw"})
    assert matches('attributes.k="v"AND attributes.j!="v"', {"k": "v"})


@pytest.mark.parametrize(
    ("literal", "decoded"),
    [
        (r"\"", '"'),
        (r"\\", "\\"),
        (r"\'", "'"),
        (r"\n\t\r", "\n\t\r"),
        (r"\a\b\f\v", "\a\b\f\v"),
        (r"\?\`", "?`"),
        (r"\x41\x7a", "Az"),
        (r"\101\172", "Az"),
        (r"\000", "\x00"),
        (r"\u00e9", "é"),
        (r"\U0001F600", "\U0001f600"),
        ("é😀", "é😀"),
    ],
)
def test_string_escapes(literal: str, decoded: str) -> None:
    assert matches(f'attributes.k = "{literal}"', {"k": decoded})
    assert not matches(f'attributes.k = "{literal}"', {"k": decoded + "x"})


def test_limit_is_256_bytes_of_utf8() -> None:
    prefix = "attributes:"
    at_limit = prefix + "k" * (MAX_FILTER_BYTES - len(prefix))
    assert matches(at_limit, {"k" * (MAX_FILTER_BYTES - len(prefix)): ""})
    with pytest.raises(FilterError, match="257 bytes"):
        compile_filter(at_limit + "k")
    # 2-byte characters count twice
    value = "é" * 120
    text = f'attributes.k = "{value}"'
    assert len(text) < MAX_FILTER_BYTES < len(text.encode())
    with pytest.raises(FilterError, match="maximum is 256 bytes"):
        compile_filter(text)


def test_deepest_nestings_within_the_limit_compile_and_run() -> None:
    leaf = "attributes:k"
    depth = (MAX_FILTER_BYTES - len(leaf)) // 2
    nested = "(" * depth + leaf + ")" * depth
    assert matches(nested, {"k": ""})
    negated = "-" * (MAX_FILTER_BYTES - len(leaf)) + leaf
    assert matches(negated, {"k": ""}) is ((len(negated) - len(leaf)) % 2 == 0)
    groups = "-(" * ((MAX_FILTER_BYTES - len(leaf)) // 3) + leaf
    groups += ")" * ((MAX_FILTER_BYTES - len(leaf)) // 3)
    assert len(groups.encode()) <= MAX_FILTER_BYTES
    compile_filter(groups)(EMPTY)


# --- errors ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # Google: "Invalid: AND and OR operators without parentheses"
        (
            'attributes:"iana.org/language_tag" AND attributes.name = "net" '
            'OR attributes.name = "org"',
            "AND and OR cannot be combined without parentheses at offset 63",
        ),
        ("attributes:a OR attributes:b AND attributes:c", "cannot be combined"),
        ("(attributes:a AND attributes:b OR attributes:c)", "cannot be combined"),
        # Google: "Invalid: AND and OR operators combine incomplete expressions"
        ('attributes.name = "com" AND ("net" OR "org")', "must begin with an attribute key"),
        # Google: "Invalid: The left-hand side of the filter is a value"
        ('"com" = attributes.name', "must begin with an attribute key, not a value at offset 0"),
        # Google: "Invalid: Filter compares two keys"
        ("attributes.name = attributes.website", "cannot compare two keys"),
        # Google: the value must be a string literal
        ("attributes.name = com", "the value must be a string literal, found 'com'"),
        ("attributes.name = 'com'", "the value must be a string literal"),
        # only = and != compare; no numbers, no regular expressions
        ('attributes.n > "1"', "values compare only with = and !="),
        ('attributes.n <= "1"', "values compare only with = and !="),
        ('attributes.n : "1"', "values compare only with = and !="),
        ('attributes.n == "1"', "the value must be a string literal, found '='"),
        ("attributes.name", "expected = or != after the attribute key"),
        ('attributes:name = "com"', "expected AND, OR or the end of the filter, found '='"),
        # operators are uppercase
        ("attributes:a and attributes:b", "must be in uppercase letters"),
        ("attributes:a or attributes:b", "must be in uppercase letters"),
        ("not attributes:a", "must be in uppercase letters"),
        ("Attributes:a", "unknown name 'Attributes'"),
        ('hasprefix(attributes.a, "x")', "unknown function 'hasprefix'"),
        # hasPrefix is the only function
        ('hasSuffix(attributes.a, "x")', "hasPrefix is the only function"),
        ('matches(attributes.a, "x.*")', "hasPrefix is the only function"),
        ('hasPrefix(attributes:a, "x")', "hasPrefix takes attributes.KEY"),
        ('hasPrefix("x", attributes.a)', "hasPrefix takes attributes.KEY"),
        ("hasPrefix(attributes.a, x)", "the prefix must be a string literal"),
        ('hasPrefix(attributes.a "x")', "expected ',' after the attribute key"),
        ('hasPrefix(attributes.a, "x"', "expected ')' after the prefix"),
        ("hasPrefix attributes.a", "expected '(' after hasPrefix"),
        # keys
        ("attributes:iana.org/x", "expected AND, OR or the end of the filter, found '.'"),
        ("attributes:", "expected an attribute key, found the end of the filter"),
        ('attributes. name = "x"', "expected an attribute key"),
        ('attributes .name = "x"', "no space is allowed before the '.'"),
        ("attributes", "expected '.' or ':' after attributes"),
        ("attributes:\\u307F", "expected an attribute key"),
        # structure
        ("attributes:a attributes:b", "expected AND, OR or the end of the filter"),
        ("attributes:a AND", "expected a condition, found the end of the filter"),
        ("AND attributes:a", "expected a condition before AND"),
        ("attributes:a OR OR attributes:b", "expected a condition before OR"),
        ("NOT", "expected a condition"),
        ("-", "expected a condition"),
        ("()", "expected a condition, found ')'"),
        ("(attributes:a", "expected ')'"),
        ("attributes:a)", "unbalanced ')'"),
        ("data:x", "unknown name 'data'"),
        ("attributes:a && attributes:b", "expected AND, OR or the end"),
        ("@", "expected a condition, found '@'"),
        # string literals
        ('attributes.k = "abc', "unterminated string literal at offset 15"),
        ('attributes:"abc', "unterminated string literal"),
        ('attributes.k = "a\\"', "unterminated string literal"),
        ('attributes.k = "a\nb"', "non-printing characters must be escaped"),
        ('attributes.k = "a\x7fb"', "non-printing characters must be escaped"),
        ('attributes.k = "\\q"', "invalid escape sequence"),
        ('attributes.k = "\\', "invalid escape sequence"),
        ('attributes.k = "\\x4"', "\\x needs 2 hexadecimal digits"),
        ('attributes.k = "\\u12G4"', "\\u needs 4 hexadecimal digits"),
        ('attributes.k = "\\U0011FFFF"', "is not a Unicode code point"),
        ('attributes.k = "\\uD800"', "is not a Unicode code point"),
        ('attributes.k = "\\400"', "an octal escape is three octal digits"),
        ('attributes.k = "\\12"', "an octal escape is three octal digits"),
    ],
)
def test_invalid_filters(text: str, message: str) -> None:
    with pytest.raises(FilterError) as error:
        compile_filter(text)
    assert str(error.value).startswith("Invalid filter: ")
    assert message in str(error.value)


def test_filter_error_is_a_value_error() -> None:
    assert issubclass(FilterError, ValueError)


# --- properties -------------------------------------------------------------------

KEYS = ["a", "b-c", "d_1", "x y", 'q"t']
VALUES = ["", "v", "vw", "w", 'v"\\']


@dataclass(frozen=True)
class Leaf:
    kind: str  # has, eq, ne, prefix
    key: str
    value: str = ""


@dataclass(frozen=True)
class Not:
    inner: Node
    minus: bool


@dataclass(frozen=True)
class Join:
    operator: str  # AND / OR
    parts: tuple[Node, ...]


Node = Leaf | Not | Join


def quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_key(key: str) -> str:
    return key if key.replace("-", "").replace("_", "").isalnum() else quote(key)


def render(node: Node) -> str:
    if isinstance(node, Leaf):
        key = render_key(node.key)
        if node.kind == "has":
            return f"attributes:{key}"
        if node.kind == "prefix":
            return f"hasPrefix(attributes.{key}, {quote(node.value)})"
        operator = "=" if node.kind == "eq" else "!="
        return f"attributes.{key} {operator} {quote(node.value)}"
    if isinstance(node, Not):
        return ("-" if node.minus else "NOT ") + f"({render(node.inner)})"
    return f" {node.operator} ".join(
        render(p) if isinstance(p, Leaf) else f"({render(p)})" for p in node.parts
    )


def reference(node: Node, attributes: dict[str, str]) -> bool:
    """Google's table, read literally, with no shared code."""
    if isinstance(node, Leaf):
        present = node.key in attributes
        if node.kind == "has":
            return present
        if node.kind == "eq":
            return present and attributes[node.key] == node.value
        if node.kind == "ne":
            return not (present and attributes[node.key] == node.value)
        return present and attributes[node.key][: len(node.value)] == node.value
    if isinstance(node, Not):
        return not reference(node.inner, attributes)
    results = [reference(p, attributes) for p in node.parts]
    return all(results) if node.operator == "AND" else any(results)


leaves = st.builds(
    Leaf,
    kind=st.sampled_from(["has", "eq", "ne", "prefix"]),
    key=st.sampled_from(KEYS),
    value=st.sampled_from(VALUES),
)
nodes = st.recursive(
    leaves,
    lambda children: st.one_of(
        st.builds(Not, children, st.booleans()),
        st.builds(
            Join,
            st.sampled_from(["AND", "OR"]),
            st.lists(children, min_size=2, max_size=3).map(tuple),
        ),
    ),
    max_leaves=6,
)
attribute_sets = st.dictionaries(st.sampled_from(KEYS), st.sampled_from(VALUES), max_size=5)


@settings(max_examples=400, deadline=None)
@given(nodes, attribute_sets)
def test_compiled_filter_agrees_with_the_reference(node: Node, attributes: dict[str, str]) -> None:
    text = render(node)
    assume(len(text.encode()) <= MAX_FILTER_BYTES)
    assert compile_filter(text)(attributes) == reference(node, attributes)


@settings(max_examples=300, deadline=None)
@given(nodes, attribute_sets, st.booleans())
def test_negation_is_the_complement(node: Node, attributes: dict[str, str], minus: bool) -> None:
    text = render(node)
    negated = ("-" if minus else "NOT ") + f"({text})"
    assume(len(negated.encode()) <= MAX_FILTER_BYTES)
    assert compile_filter(negated)(attributes) is not compile_filter(text)(attributes)


fragments = st.sampled_from(
    [
        "attributes",
        ".",
        ":",
        "k",
        '"v"',
        "=",
        "!=",
        "AND",
        "OR",
        "NOT",
        "-",
        "(",
        ")",
        "hasPrefix",
        ",",
        " ",
        "\\",
        '"',
        "\\u",
        "x",
    ]
)


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.text(max_size=60), st.lists(fragments, max_size=30).map("".join)))
def test_any_text_compiles_or_raises_filter_error(text: str) -> None:
    """Bad input never crashes the broker: a FilterError or a working filter."""
    try:
        accept = compile_filter(text)
    except FilterError as error:
        assert str(error).startswith("Invalid filter: ")
        return
    assert accept({"k": "v", "x": ""}) in (True, False)
