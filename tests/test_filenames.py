"""File-name stems: sanitising, templates, slugs."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from genbatch.errors import ManifestError
from genbatch.filenames import (
    DEFAULT_FILE_NAME_TEMPLATE,
    compile_file_name_template,
    render_file_stem,
    sanitize_file_stem,
    slugify,
)


@pytest.mark.parametrize(
    ("text", "stem"),
    [
        ("plain-name_01", "plain-name_01"),
        ("a/b\\c", "a_b_c"),
        ("../../etc/passwd", "_._etc_passwd"),
        ("..", "unnamed"),
        ("", "unnamed"),
        ("   ", "unnamed"),
        (".hidden", "hidden"),
        ("  spaced  out  ", "spaced-out"),
        ("tab\tnew\nline", "tab_new_line"),
        ("nul\x00byte", "nul_byte"),
        ('a<b>c:d"e|f?g*h', "a_b_c_d_e_f_g_h"),
        ("trailing dot.", "trailing-dot"),
        ("café ünïcode", "café-ünïcode"),
        ("rtl\u202eexe.txt", "rtl_exe.txt"),
    ],
)
def test_sanitize_makes_one_safe_path_component(text: str, stem: str) -> None:
    assert sanitize_file_stem(text) == stem


@pytest.mark.parametrize(
    "name", ["CON", "con", "Prn", "AUX", "NUL", "COM1", "lpt9", "nul.txt", "CON.x"]
)
def test_windows_device_names_are_neutralised(name: str) -> None:
    assert sanitize_file_stem(name) == "_" + name


def test_names_that_only_start_like_device_names_are_left_alone() -> None:
    assert sanitize_file_stem("CONSOLE") == "CONSOLE"
    assert sanitize_file_stem("com10") == "com10"


def test_long_names_are_cut_with_a_hash_that_keeps_them_distinct() -> None:
    first = sanitize_file_stem("x" * 300 + "a")
    second = sanitize_file_stem("x" * 300 + "b")
    assert len(first) == len(second) == 120
    assert first != second
    assert first.startswith("x" * 100)


def test_max_length_is_honoured() -> None:
    assert len(sanitize_file_stem("y" * 50, max_length=20)) == 20
    with pytest.raises(ValueError, match="max_length"):
        sanitize_file_stem("y", max_length=3)


def test_long_multibyte_names_stay_under_200_bytes() -> None:
    stem = sanitize_file_stem("猫" * 150)
    assert len(stem.encode("utf-8")) <= 200


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400), st.integers(min_value=12, max_value=200))
def test_sanitize_never_yields_an_unsafe_stem(text: str, max_length: int) -> None:
    stem = sanitize_file_stem(text, max_length=max_length)
    assert stem
    assert len(stem) <= max_length
    assert len(stem.encode("utf-8")) <= 200
    assert "/" not in stem and "\\" not in stem and "\x00" not in stem
    assert ".." not in stem
    assert not stem.startswith((".", " "))
    assert not any(ord(c) < 32 for c in stem)
    assert sanitize_file_stem(stem, max_length=max_length) == stem


def test_default_template_is_index_and_key() -> None:
    assert DEFAULT_FILE_NAME_TEMPLATE == "{index:05d}-{key}"
    assert render_file_stem(DEFAULT_FILE_NAME_TEMPLATE, {"index": 7, "key": "ab12"}) == (
        "00007-ab12"
    )


def test_render_sanitises_each_substituted_value() -> None:
    stem = render_file_stem("{a}-{b}", {"a": "../up", "b": "x/y"})
    assert stem == "_up-x_y"


def test_render_accepts_format_specs() -> None:
    assert render_file_stem("{n:03d}_{f:.2f}", {"n": 5, "f": 0.5}) == "005_0.50"


def test_render_with_an_unknown_field_is_a_manifest_error_at_the_given_line() -> None:
    with pytest.raises(ManifestError) as caught:
        render_file_stem("{nope}", {"index": 1}, file="m.yaml", line=9)
    assert str(caught.value) == "m.yaml:9: output.name: unknown field {nope}; fields: index"


def test_a_malformed_template_is_a_manifest_error() -> None:
    with pytest.raises(ManifestError, match=r"^m\.yaml:2: output\.name: bad template"):
        compile_file_name_template("{index", file="m.yaml", line=2)


def test_template_fields_are_listed_in_order() -> None:
    assert compile_file_name_template("{b}-{a}-{b}").fields == ("b", "a")


_VALUES = st.one_of(
    st.text(max_size=30),
    st.integers(),
    st.booleans(),
    st.sampled_from(["CON", "nul", "Lpt1", "aux.txt", "a" * 130, "x..y", " e "]),
)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(
        ["{a}", "{a}-{b:>5}", "{a:05d}", "x{b}{a}", "{{{a}}}", "{a!r}-{b}", "{a:.3}", "CO{a}"]
    ),
    _VALUES,
    _VALUES,
)
def test_render_fields_gives_what_render_gives(text: str, a: object, b: object) -> None:
    template = compile_file_name_template(text)
    values = {"a": a, "b": b}
    try:
        expected = template.render(values)
    except ManifestError as error:
        with pytest.raises(ManifestError, match=f"^{re.escape(str(error))}$"):
            template.render_fields([values[name] for name in template.fields])
        return
    assert template.render_fields([values[name] for name in template.fields]) == expected


@pytest.mark.parametrize(
    ("text", "slug"),
    [
        ("A Cat, at DAWN!", "a-cat-at-dawn"),
        ("  ", ""),
        ("under_score", "under-score"),
        ("Été à Paris", "été-à-paris"),
        (
            "one two three four five six seven eight nine ten",
            "one-two-three-four-five-six-seven-eight",
        ),
        ("x" * 50, "x" * 40),
    ],
)
def test_prompt_slug_is_lowercase_words_within_40_characters(text: str, slug: str) -> None:
    assert slugify(text) == slug
    assert len(slugify(text)) <= 40
