"""The Pub/Sub subscription filter language, compiled once into a predicate.

A subscription's ``filter`` selects messages by their attributes (Google:
https://cloud.google.com/pubsub/docs/subscription-message-filter). Google's
emulator stores filters without applying them; Dovecote applies them, so this
module parses the text once, at CreateSubscription, into nested closures: the
per-message cost is a few dict look-ups and calls, no parsing.

Grammar (whitespace between tokens is free, except inside ``attributes.KEY``)::

    filter      = [ expression ]                  ; empty: every message
    expression  = term { "AND" term }             ; AND and OR never mix
                | term { "OR" term }              ; without parentheses
    term        = ( "NOT" | "-" ) term | simple   ; NOT binds tightest
    simple      = "(" expression ")"
                | "attributes" ":" key            ; the key is present
                | "attributes." key ( "=" | "!=" ) string
                | "hasPrefix" "(" "attributes." key "," string ")"
    key         = 1*( ALPHA / DIGIT / "-" / "_" ) | string
    string      = '"' { char | escape } '"'

Semantics, as Google's table states them:

- ``attributes:k``: messages with the attribute ``k``.
- ``attributes.k = "v"``: messages with ``k`` whose value is exactly ``v``;
  false when ``k`` is missing.
- ``attributes.k != "v"``: "messages without the name attribute and the value
  of com", the same words the doc uses for ``NOT attributes.name = "com"``. So
  ``!=`` is the complement of ``=``: it is TRUE for a message without ``k``.
- ``hasPrefix(attributes.k, "p")``: ``k`` present and its value starts with
  ``p``; ``NOT hasPrefix(...)`` is its complement (true without ``k``).

Keywords (``AND OR NOT attributes hasPrefix``) are case-sensitive; keys and
values compare exactly. The text is at most 256 bytes (UTF-8).

We found no record of Google's INVALID_ARGUMENT texts for bad filters (and
its emulator does not check filters), so the messages here are ours, all
starting ``Invalid filter:`` and naming the reason and the 0-based character
offset.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

MAX_FILTER_BYTES = 256

Predicate = Callable[[Mapping[str, str]], bool]

_KEY_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
_WORD_CHARS = _KEY_CHARS - {"-"}
_SPACE = frozenset(" \t\r\n\f\v")
_SIMPLE_ESCAPES = {
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
    "?": "?",
    '"': '"',
    "'": "'",
    "`": "`",
}
_HEX_ESCAPES = {"x": 2, "u": 4, "U": 8}
_OCTAL = "01234567"


class FilterError(ValueError):
    """An invalid filter; the message is the INVALID_ARGUMENT text to send."""


class AttributeFilter:
    """A compiled filter: call it with a message's attributes."""

    __slots__ = ("_match", "text")

    def __init__(self, text: str, match: Predicate) -> None:
        self.text = text
        self._match = match

    def __call__(self, attributes: Mapping[str, str]) -> bool:
        return self._match(attributes)

    def __repr__(self) -> str:
        return f"AttributeFilter({self.text!r})"


def compile_filter(text: str) -> AttributeFilter:
    """Parse ``text`` once; raises FilterError with the reason it is invalid."""
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_FILTER_BYTES:
        raise FilterError(
            f"Invalid filter: the filter is {size} bytes long; "
            f"the maximum is {MAX_FILTER_BYTES} bytes."
        )
    try:
        match = _Parser(text).parse()
    except RecursionError:  # 256 bytes nest ~128 deep: only a tiny stack gets here
        raise FilterError("Invalid filter: the filter is nested too deeply.") from None
    return AttributeFilter(text, match)


def _everything(attributes: Mapping[str, str]) -> bool:
    return True


def _present(key: str) -> Predicate:
    return lambda attributes: key in attributes


def _equals(key: str, value: str) -> Predicate:
    return lambda attributes: attributes.get(key) == value


def _not_equals(key: str, value: str) -> Predicate:
    return lambda attributes: attributes.get(key) != value


def _has_prefix(key: str, prefix: str) -> Predicate:
    def match(attributes: Mapping[str, str]) -> bool:
        value = attributes.get(key)
        return value is not None and value.startswith(prefix)

    return match


def _negate(inner: Predicate) -> Predicate:
    return lambda attributes: not inner(attributes)


def _all(parts: Sequence[Predicate]) -> Predicate:
    if len(parts) == 2:
        first, second = parts
        return lambda attributes: first(attributes) and second(attributes)

    def match(attributes: Mapping[str, str]) -> bool:
        for part in parts:  # noqa: SIM110 - a loop, not a generator per message
            if not part(attributes):
                return False
        return True

    return match


def _any(parts: Sequence[Predicate]) -> Predicate:
    if len(parts) == 2:
        first, second = parts
        return lambda attributes: first(attributes) or second(attributes)

    def match(attributes: Mapping[str, str]) -> bool:
        for part in parts:  # noqa: SIM110 - a loop, not a generator per message
            if part(attributes):
                return True
        return False

    return match


class _Parser:
    """Recursive descent straight over the text (keys need their own lexing)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    # --- helpers ---------------------------------------------------------

    def fail(self, what: str, pos: int | None = None) -> FilterError:
        at = self.pos if pos is None else pos
        return FilterError(f"Invalid filter: {what} at offset {at}.")

    def skip_space(self) -> None:
        text, pos = self.text, self.pos
        while pos < len(text) and text[pos] in _SPACE:
            pos += 1
        self.pos = pos

    def at_end(self) -> bool:
        return self.pos >= len(self.text)

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def peek_word(self) -> str:
        """The identifier-like word at the cursor (not consumed), or ''."""
        text, end = self.text, self.pos
        while end < len(text) and text[end] in _WORD_CHARS:
            end += 1
        return text[self.pos : end]

    def found(self) -> str:
        if self.at_end():
            return "the end of the filter"
        word = self.peek_word()
        return f"'{word}'" if word else f"'{self.peek()}'"

    def expect(self, char: str, what: str) -> None:
        self.skip_space()
        if self.peek() != char:
            raise self.fail(f"expected {what}, found {self.found()}")
        self.pos += 1

    # --- grammar ---------------------------------------------------------

    def parse(self) -> Predicate:
        self.skip_space()
        if self.at_end():
            return _everything
        match = self.expression()
        self.skip_space()
        if not self.at_end():
            if self.peek() == ")":
                raise self.fail("unbalanced ')'")
            raise self.fail(f"expected AND, OR or the end of the filter, found {self.found()}")
        return match

    def expression(self) -> Predicate:
        parts = [self.term()]
        operator = ""
        while True:
            self.skip_space()
            start = self.pos
            word = self.peek_word()
            if word not in ("AND", "OR"):
                if word in ("and", "or", "And", "Or"):
                    raise self.fail("AND, OR and NOT must be in uppercase letters")
                break
            if operator and word != operator:
                raise self.fail("AND and OR cannot be combined without parentheses", start)
            operator = word
            self.pos += len(word)
            parts.append(self.term())
        if len(parts) == 1:
            return parts[0]
        return _all(parts) if operator == "AND" else _any(parts)

    def term(self) -> Predicate:
        self.skip_space()
        word = self.peek_word()
        if word == "NOT":
            self.pos += 3
            return _negate(self.term())
        if word in ("not", "Not"):
            raise self.fail("AND, OR and NOT must be in uppercase letters")
        if self.peek() == "-":
            self.pos += 1
            return _negate(self.term())
        return self.simple()

    def simple(self) -> Predicate:
        self.skip_space()
        if self.at_end():
            raise self.fail("expected a condition, found the end of the filter")
        if self.peek() == "(":
            self.pos += 1
            match = self.expression()
            self.expect(")", "')'")
            return match
        start = self.pos
        word = self.peek_word()
        if word == "attributes":
            self.pos += len(word)
            return self.restriction()
        if word == "hasPrefix":
            self.pos += len(word)
            return self.has_prefix()
        if self.peek() == '"':
            raise self.fail("a comparison must begin with an attribute key, not a value")
        if word:
            self.pos += len(word)
            self.skip_space()
            if self.peek() == "(":
                raise self.fail(f"unknown function '{word}'; hasPrefix is the only function", start)
            if word in ("AND", "OR"):
                raise self.fail(f"expected a condition before {word}", start)
            raise self.fail(f"unknown name '{word}'; conditions begin with attributes", start)
        raise self.fail(f"expected a condition, found {self.found()}")

    def restriction(self) -> Predicate:
        """After ``attributes``: ``:key`` or ``.key = "v"`` / ``.key != "v"``."""
        if self.peek() == ".":
            self.pos += 1
            key = self.key()
            self.skip_space()
            start = self.pos
            if self.text.startswith("!=", start):
                self.pos += 2
                return _not_equals(key, self.value())
            if self.peek() == "=":
                self.pos += 1
                return _equals(key, self.value())
            if self.peek() in ("<", ">", ":", "!"):
                raise self.fail("values compare only with = and !=")
            raise self.fail(f"expected = or != after the attribute key, found {self.found()}")
        self.skip_space()
        if self.peek() == ":":
            self.pos += 1
            self.skip_space()
            return _present(self.key())
        if self.peek() == ".":
            raise self.fail("no space is allowed before the '.' of attributes.KEY")
        raise self.fail(f"expected '.' or ':' after attributes, found {self.found()}")

    def value(self) -> str:
        self.skip_space()
        if self.peek() == '"':
            return self.string()
        if self.peek_word() == "attributes":
            raise self.fail("a comparison cannot compare two keys")
        raise self.fail(f"the value must be a string literal, found {self.found()}")

    def has_prefix(self) -> Predicate:
        self.expect("(", "'(' after hasPrefix")
        self.skip_space()
        if self.peek_word() != "attributes" or not self.text.startswith(".", self.pos + 10):
            raise self.fail(
                f"hasPrefix takes attributes.KEY as its first argument, found {self.found()}"
            )
        self.pos += 11
        key = self.key()
        self.expect(",", "',' after the attribute key")
        self.skip_space()
        if self.peek() != '"':
            raise self.fail(f"the prefix must be a string literal, found {self.found()}")
        prefix = self.string()
        self.expect(")", "')' after the prefix")
        return _has_prefix(key, prefix)

    def key(self) -> str:
        """A bare key (letters, digits, ``-``, ``_``) or a string literal."""
        if self.peek() == '"':
            return self.string()
        text, end = self.text, self.pos
        while end < len(text) and text[end] in _KEY_CHARS:
            end += 1
        if end == self.pos:
            raise self.fail(
                f"expected an attribute key, found {self.found()}; keys with characters "
                "other than letters, digits, '-' and '_' must be string literals"
            )
        key, self.pos = text[self.pos : end], end
        return key

    def string(self) -> str:
        """A double-quoted literal with C-style escapes (the cursor is on '"')."""
        text, start = self.text, self.pos
        pos, out = start + 1, []
        while True:
            if pos >= len(text):
                raise self.fail("unterminated string literal", start)
            char = text[pos]
            if char == '"':
                self.pos = pos + 1
                return "".join(out)
            if char == "\\":
                decoded, pos = self.escape(pos)
                out.append(decoded)
                continue
            if char < " " or char == "\x7f":
                raise self.fail("non-printing characters must be escaped in a string literal", pos)
            out.append(char)
            pos += 1

    def escape(self, pos: int) -> tuple[str, int]:
        """Decode the escape at ``pos`` (a backslash); returns it and the next offset."""
        text = self.text
        kind = text[pos + 1] if pos + 1 < len(text) else ""
        if kind in _SIMPLE_ESCAPES:
            return _SIMPLE_ESCAPES[kind], pos + 2
        if kind in _HEX_ESCAPES:
            width = _HEX_ESCAPES[kind]
            digits = text[pos + 2 : pos + 2 + width]
            if len(digits) != width or any(d not in "0123456789abcdefABCDEF" for d in digits):
                raise self.fail(f"\\{kind} needs {width} hexadecimal digits", pos)
            code = int(digits, 16)
            if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
                raise self.fail(f"\\{kind}{digits} is not a Unicode code point", pos)
            return chr(code), pos + 2 + width
        if kind and kind in _OCTAL:
            digits = text[pos + 1 : pos + 4]
            if len(digits) != 3 or digits[0] not in "0123" or any(d not in _OCTAL for d in digits):
                raise self.fail("an octal escape is three octal digits, at most \\377", pos)
            return chr(int(digits, 8)), pos + 4
        raise self.fail("invalid escape sequence in a string literal", pos)
