"""Java-regex patterns of botocore's service models, translated to stdlib ``re`` and compiled once.

AWS checks ``pattern`` constraints with ``java.util.regex`` as full matches. Python's ``re`` lacks
``\\p{…}`` classes and differs in a few corners, so each pattern is rewritten before compiling:

* ``\\p{L}``, ``\\p{Lu}``, ``\\p{IsL}`` … (Unicode general categories) become explicit code-point
  ranges built from ``unicodedata``; ``\\p{Alnum}``, ``\\p{ASCII}``, ``\\p{Print}`` … (POSIX
  classes, US-ASCII only in Java) become their ASCII ranges. ``\\P{…}`` is the complement.
* A UTF-16 surrogate pair ``\\uD800\\uDC00`` becomes the one code point it encodes.
* ``.`` excludes Java's line terminators (``\\n \\r \\u0085 \\u2028 \\u2029``), not just ``\\n``.
* A quantifier on an anchor (``$ {1,128}`` as written in some Tag patterns) is dropped; Java
  accepts it and it matches nothing more.
* ``\\z`` becomes ``\\Z``; ``(?<name>`` becomes ``(?P<name>``.
* ``re.ASCII``: Java's ``\\w``, ``\\d``, ``\\s``, ``\\b`` are ASCII-only by default.

Constructs with no faithful translation (class intersection ``&&``, nested classes, ``\\Q…\\E``,
Java's ``\\h \\v \\R \\X \\G``) make ``compile_pattern`` return None; the caller then skips that
one check and logs it once. tests/unit/api checks that every pattern of the installed sagemaker
model translates.
"""

import functools
import logging
import re
import sys
import unicodedata
from collections.abc import Iterable

_log = logging.getLogger(__name__)

# Java's "." without DOTALL: any character but a line terminator.
_JAVA_DOT = "[^\\n\\r\\x85\\u2028\\u2029]"

_POSIX: dict[str, str] = {
    "Lower": "a-z",
    "Upper": "A-Z",
    "ASCII": "\\x00-\\x7f",
    "Alpha": "a-zA-Z",
    "Digit": "0-9",
    "Alnum": "a-zA-Z0-9",
    "Punct": "!-/:-@\\[-`{-~",
    "Graph": "!-~",
    "Print": " -~",
    "Blank": " \\t",
    "Cntrl": "\\x00-\\x1f\\x7f",
    "XDigit": "0-9a-fA-F",
    "Space": " \\t\\n\\x0b\\f\\r",
}
_CATEGORY_NAME = re.compile(r"(?:Is)?([LMNPSZC][a-z]?)")
_ANCHOR_QUANTIFIER = re.compile(r"\{\d+(?:,\d*)?\}")
_UNSUPPORTED_ESCAPES = frozenset("QEGRXhHvVkK")


class _Untranslatable(Exception):
    """A Java construct with no faithful stdlib equivalent."""


def compile_pattern(pattern: str) -> re.Pattern[str] | None:
    """The compiled full-match form of a model pattern, or None if it cannot be translated."""
    return _compile(pattern)


@functools.cache
def _compile(pattern: str) -> re.Pattern[str] | None:
    try:
        return re.compile(translate(pattern), re.ASCII)
    except (_Untranslatable, re.error) as exc:
        _log.warning("pattern %r is not checked: %s", pattern, exc)
        return None


def translate(pattern: str) -> str:
    """Rewrite a Java regex as an equivalent Python ``re`` pattern (see module docstring)."""
    out: list[str] = []
    i, n = 0, len(pattern)
    in_class = False
    while i < n:
        c = pattern[i]
        if c == "\\":
            text, i = _escape(pattern, i, in_class)
            out.append(text)
        elif in_class:
            if c == "[" or pattern.startswith("&&", i):
                raise _Untranslatable(f"nested class or intersection at {i}")
            if c == "]":
                in_class = False
            out.append(c)
            i += 1
        elif c == "[":
            in_class = True
            i += 1
            out.append("[")
            if pattern.startswith("^", i):
                out.append("^")
                i += 1
            if pattern.startswith("]", i):  # a leading "]" is a literal, in Java as in Python
                out.append("\\]")
                i += 1
        elif c == ".":
            out.append(_JAVA_DOT)
            i += 1
        elif c in "^$":
            out.append(c)
            i += 1
            quantifier = _ANCHOR_QUANTIFIER.match(pattern, i)
            if quantifier:
                i = quantifier.end()
        elif pattern.startswith("(?<", i) and i + 3 < n and pattern[i + 3] not in "=!":
            out.append("(?P<")
            i += 3
        else:
            out.append(c)
            i += 1
    if in_class:
        raise _Untranslatable("unclosed character class")
    return "".join(out)


def _escape(pattern: str, i: int, in_class: bool) -> tuple[str, int]:
    """Translate the escape starting at ``pattern[i] == "\\"``; return it and the next index."""
    if i + 1 >= len(pattern):
        raise _Untranslatable("trailing backslash")
    e = pattern[i + 1]
    if e in "pP":
        name, end = _property_name(pattern, i + 2)
        body = _property_body(name)
        if in_class:
            if e == "P":
                raise _Untranslatable("\\P{…} inside a character class")
            return body, end
        return f"[{'^' if e == 'P' else ''}{body}]", end
    if e == "u":
        code = _hex4(pattern, i + 2)
        end = i + 6
        if 0xD800 <= code <= 0xDBFF and pattern.startswith("\\u", end):
            low = _hex4(pattern, end + 2)
            if 0xDC00 <= low <= 0xDFFF:
                code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                end += 6
        return f"\\U{code:08x}", end
    if e == "z":
        return "\\Z", i + 2
    if e in _UNSUPPORTED_ESCAPES:
        raise _Untranslatable(f"\\{e}")
    return pattern[i : i + 2], i + 2


def _hex4(pattern: str, i: int) -> int:
    digits = pattern[i : i + 4]
    if len(digits) != 4 or any(d not in "0123456789abcdefABCDEF" for d in digits):
        raise _Untranslatable(f"bad \\u escape at {i}")
    return int(digits, 16)


def _property_name(pattern: str, i: int) -> tuple[str, int]:
    """The name in ``\\pL`` or ``\\p{Name}`` starting at ``i``, and the index after it."""
    if pattern.startswith("{", i):
        close = pattern.find("}", i)
        if close < 0:
            raise _Untranslatable("unclosed \\p{")
        return pattern[i + 1 : close], close + 1
    if i < len(pattern):
        return pattern[i], i + 1
    raise _Untranslatable("\\p without a name")


def _property_body(name: str) -> str:
    """Character-class body (without brackets) for a Java property name."""
    if name in _POSIX:
        return _POSIX[name]
    match = _CATEGORY_NAME.fullmatch(name)
    if match is None:
        raise _Untranslatable(f"unknown property \\p{{{name}}}")
    ranges = _category_ranges().get(match.group(1))
    if not ranges:
        raise _Untranslatable(f"unknown category \\p{{{name}}}")
    return _class_body(ranges)


def _class_body(ranges: Iterable[tuple[int, int]]) -> str:
    return "".join(f"\\U{lo:08x}" if lo == hi else f"\\U{lo:08x}-\\U{hi:08x}" for lo, hi in ranges)


@functools.cache
def _category_ranges() -> dict[str, list[tuple[int, int]]]:
    """Code-point ranges of every Unicode general category, two-letter and one-letter.

    One pass over all code points (~0.1 s), done the first time a ``\\p{…}`` pattern compiles.
    """
    ranges: dict[str, list[tuple[int, int]]] = {}
    start, current = 0, unicodedata.category("\0")
    for code in range(1, sys.maxunicode + 2):
        category = unicodedata.category(chr(code)) if code <= sys.maxunicode else ""
        if category != current:
            ranges.setdefault(current, []).append((start, code - 1))
            start, current = code, category
    for major in "LMNPSZC":
        merged = sorted(r for name, rs in ranges.items() if name[0] == major for r in rs)
        ranges[major] = _coalesce(merged)
    return ranges


def _coalesce(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for lo, hi in ranges:
        if out and lo == out[-1][1] + 1:
            out[-1] = (out[-1][0], hi)
        else:
            out.append((lo, hi))
    return out
