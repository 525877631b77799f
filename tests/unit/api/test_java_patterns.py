"""Translation of the Java regex patterns in botocore's models to Python's ``re``."""

import re
from typing import Any

import botocore.session
import pytest

from moorage.api._patterns import compile_pattern, translate


def model_patterns() -> set[str]:
    service = botocore.session.get_session().get_service_model("sagemaker")
    patterns: set[str] = set()
    seen: set[str] = set()

    def walk(shape: Any) -> None:
        if shape.name in seen:
            return
        seen.add(shape.name)
        if "pattern" in shape.metadata:
            patterns.add(shape.metadata["pattern"])
        if shape.type_name == "structure":
            children = list(shape.members.values())
        elif shape.type_name == "list":
            children = [shape.member]
        elif shape.type_name == "map":
            children = [shape.key, shape.value]
        else:
            children = []
        for child in children:
            walk(child)

    for name in service.operation_names:
        shape = service.operation_model(name).input_shape
        if shape is not None:
            walk(shape)
    return patterns


def full(pattern: str, value: str) -> bool:
    compiled = compile_pattern(pattern)
    assert compiled is not None
    return compiled.fullmatch(value) is not None


def test_every_sagemaker_input_pattern_translates() -> None:
    patterns = model_patterns()
    assert len(patterns) > 100
    untranslated = sorted(p for p in patterns if compile_pattern(p) is None)
    assert untranslated == []


@pytest.mark.parametrize("letter", ["a", "Z", "é", "ß", "ж", "日", "\u0627", "\u01c5"])
def test_letter_category_matches_letters_of_any_script(letter: str) -> None:
    assert full(r"\p{L}", letter)
    assert full(r"\p{IsL}", letter)
    assert not full(r"\P{L}", letter)


@pytest.mark.parametrize("other", ["1", "٣", " ", "_", "!", "\u0301"])
def test_letter_category_refuses_non_letters(other: str) -> None:
    assert not full(r"\p{L}", other)


def test_categories_inside_a_class_combine_with_other_members() -> None:
    pattern = r"([\p{L}\p{Z}\p{N}_.:/=+\-@]*)"
    assert full(pattern, "Grüße 日本 ٣ Ⅻ\u3000\u00a0_.:/=+-@")
    assert not full(pattern, "tab\there")
    assert not full(pattern, "a!b")


def test_two_letter_categories() -> None:
    assert full(r"\p{Lu}+", "ÀBΓ")
    assert not full(r"\p{Lu}", "a")
    assert full(r"\p{Nd}", "٣")
    assert not full(r"\p{Nd}", "Ⅻ")


@pytest.mark.parametrize(
    ("name", "inside", "outside"),
    [
        ("Alnum", "aZ9", "é_"),
        ("ASCII", "\x00~\x7f", "é"),
        ("Print", " ~", "\x7f\t"),
        ("Punct", "!/:@[`{~", "a "),
        ("Space", " \t\n\r", "\u00a0"),
    ],
)
def test_posix_classes_are_ascii_only(name: str, inside: str, outside: str) -> None:
    assert full(rf"\p{{{name}}}+", inside)
    for char in outside:
        assert not full(rf"\p{{{name}}}", char)


def test_surrogate_pair_ranges_become_code_points() -> None:
    pattern = r"[\u0020-\uD7FF\uE000-\uFFFD\uD800\uDC00-\uDBFF\uDFFF\t]*"
    assert full(pattern, "emoji \U0001f600 ok\t")
    assert not full(pattern, "bell\x07")


def test_quantifier_on_end_anchor_is_dropped() -> None:
    assert translate(r"(a*)${1,128}") == "(a*)$"
    assert full(r"([\p{L}]*)${1,128}", "abc")


def test_dot_excludes_java_line_terminators() -> None:
    assert full(".+", "a b")
    for terminator in "\n\r\u0085\u2028\u2029":
        assert not full(".", terminator)


def test_shorthand_classes_are_ascii_as_in_java() -> None:
    assert full(r"\w+", "abc_9")
    assert not full(r"\w", "é")
    assert not full(r"\d", "٣")


def test_named_groups_and_lookbehind_translate() -> None:
    assert translate("(?<year>[0-9]{4})") == "(?P<year>[0-9]{4})"
    assert full(r"([a-z\-]{0,62})(?<!-)", "ab")
    assert not full(r"([a-z\-]{0,62})(?<!-)", "ab-")


@pytest.mark.parametrize(
    "pattern", [r"[a-z&&[^b]]", r"[a[b]]", r"\Qa.b\E", r"\p{Greek}", r"[\P{L}]"]
)
def test_untranslatable_patterns_are_skipped(pattern: str) -> None:
    assert compile_pattern(pattern) is None


def test_untranslatable_pattern_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    assert compile_pattern(r"[q&&[^r]]") is None
    assert r"pattern '[q&&[^r]]' is not checked" in caplog.text


def test_compile_pattern_compiles_once() -> None:
    assert compile_pattern("[a-z]+") is compile_pattern("[a-z]+")
    assert isinstance(compile_pattern("[a-z]+"), re.Pattern)
