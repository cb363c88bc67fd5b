"""YAML pitfalls: values that must not change, unsafe or broken files, alias bombs."""

from __future__ import annotations

from pathlib import Path

import pytest

from genbatch.errors import ManifestError
from genbatch.manifest import Manifest, load_manifest

KLING = "kling/kling-2-6/pro/text-to-video"
UNKNOWN = "acme/echo/v1"  # an unknown model: with validate: false, its inputs are sent as loaded
UNCHECKED = "validate: false\n"


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def load_bytes(raw: bytes, name: str = "sweep.yaml") -> Manifest:
    Path(name).write_bytes(raw)
    return load_manifest(name)


def load(text: str) -> Manifest:
    return load_bytes(text.encode("utf-8"))


def error_of(raw: str | bytes) -> str:
    with pytest.raises(ManifestError) as caught:
        load_bytes(raw.encode("utf-8") if isinstance(raw, str) else raw)
    message = str(caught.value)
    assert "\n" not in message
    return message


def sent(value_yaml: str) -> object:
    """What an input written as ``value_yaml`` is sent as."""
    m = load(f"model: {UNKNOWN}\ninputs:\n  value: {value_yaml}\n  prompt: x\n" + UNCHECKED)
    return next(m.jobs()).inputs["value"]


# --- YAML 1.1 surprises -----------------------------------------------------------------------


@pytest.mark.parametrize("word", ["no", "No", "NO", "on", "yes", "off", "y", "n", "Y", "N"])
def test_yaml_1_1_booleans_stay_strings(word: str) -> None:
    assert sent(word) == word


@pytest.mark.parametrize("word", ["true", "True", "TRUE", "tRuE"])
def test_true_in_any_case_is_a_boolean(word: str) -> None:
    assert sent(word) is True


@pytest.mark.parametrize("word", ["false", "False", "FALSE"])
def test_false_in_any_case_is_a_boolean(word: str) -> None:
    assert sent(word) is False


def test_an_aspect_ratio_is_not_a_sexagesimal_number() -> None:
    assert sent("16:9") == "16:9"
    assert sent("1:30:00") == "1:30:00"


def test_leading_zero_numbers_stay_strings() -> None:
    assert sent("007") == "007"
    assert sent("0123.5") == "0123.5"


@pytest.mark.parametrize(
    ("written", "value"),
    [
        ("12", 12),
        ("-3", -3),
        ("0", 0),
        ("+4", 4),
        ("1.5", 1.5),
        ("0.25", 0.25),
        ("1e3", 1000.0),
        ("0x1F", 31),
        ("0o17", 15),
    ],
)
def test_numbers_follow_the_yaml_1_2_core_schema(written: str, value: object) -> None:
    result = sent(written)
    assert result == value
    assert type(result) is type(value)


@pytest.mark.parametrize("written", ["2024-01-01", "1_000", ".inf", ".nan", "0b101", "=", "<<x"])
def test_other_yaml_1_1_types_stay_strings(written: str) -> None:
    assert sent(written) == written


def test_null_forms_are_null_and_refused_as_input_values() -> None:
    for written in ("~", "null", "Null", ""):
        message = error_of(
            f"model: {UNKNOWN}\nprompts: [x]\ninputs:\n  value: {written}\n" + UNCHECKED
        )
        assert message == "sweep.yaml:4: value: has no value; write one, or remove the key"


def test_quoted_values_are_always_strings() -> None:
    assert sent('"true"') == "true"
    assert sent("'5'") == "5"
    assert sent("!!str 5") == "5"


def test_prompts_that_look_like_yaml_1_1_booleans_are_sent_verbatim() -> None:
    m = load(f"model: {KLING}\nprompts:\n  - no\n  - on\n  - yes\n  - off\n")
    assert [j.inputs["prompt"] for j in m.jobs()] == ["no", "on", "yes", "off"]


def test_an_aspect_ratio_grid_keeps_its_strings() -> None:
    m = load(f"model: {KLING}\nprompts: [x]\ngrid:\n  aspect_ratio: [16:9, 9:16, 1:1]\n")
    assert [j.inputs["aspect_ratio"] for j in m.jobs()] == ["16:9", "9:16", "1:1"]


def test_a_number_where_a_prompt_goes_is_refused_not_converted() -> None:
    assert error_of(f"model: {KLING}\nprompts:\n  - 1.10\n") == (
        "sweep.yaml:3: prompts[0]: must be text (quote it), not 1.1"
    )


def test_yes_is_not_true_for_boolean_settings() -> None:
    assert error_of(f"model: {KLING}\nprompts: [x]\nstrict: yes\n") == (
        "sweep.yaml:3: strict: must be true or false, not 'yes'"
    )


def test_a_huge_number_is_refused() -> None:
    assert error_of(f"model: {UNKNOWN}\nprompts: [x]\ninputs: {{v: 1e999}}\n" + UNCHECKED) == (
        "sweep.yaml:3: inputs.v: 1e999 is too large for a number (quote it for text)"
    )


# --- safety -----------------------------------------------------------------------------------


def test_python_tags_are_refused() -> None:
    message = error_of(f"model: {KLING}\nprompts:\n  - !!python/object/apply:os.system [ls]\n")
    assert message.startswith(
        "sweep.yaml:3: prompts[0]: unsupported YAML tag !!python/object/apply:os.system"
    )


@pytest.mark.parametrize(
    "tag", ["!!binary aGk=", "!!timestamp 2024-01-01", "!custom x", "!!set {a: null}"]
)
def test_other_tags_are_refused(tag: str) -> None:
    assert "unsupported YAML tag" in error_of(
        f"model: {UNKNOWN}\nprompts: [x]\ninputs:\n  v: {tag}\n" + UNCHECKED
    )


def test_a_billion_laughs_alias_bomb_is_caught() -> None:
    lines = ["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for level in range(1, 9):
        previous, name = chr(ord("a") + level - 1), chr(ord("a") + level)
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{previous}"] * 10) + "]")
    message = error_of("\n".join(lines) + "\n")
    assert "YAML aliases expand to more than 10000 values (an alias bomb?)" in message
    assert message.startswith("sweep.yaml:3: ")


def test_a_recursive_alias_is_caught() -> None:
    assert error_of("a: &a [*a]\n") == (
        "sweep.yaml:1: a[0]: a YAML alias refers to its own parent (recursive alias)"
    )


def test_modest_aliases_are_fine() -> None:
    m = load(
        f"model: {KLING}\nprompts: [a]\ninputs: &base {{duration: 10}}\n"
        "jobs:\n  - inputs: *base\n  - inputs: *base\n"
    )
    assert [j.inputs["duration"] for j in m.jobs()] == [10, 10]


def test_merge_keys_are_refused_with_a_hint() -> None:
    message = error_of(f"model: {KLING}\nprompts: [a]\njobs:\n  - <<: {{repeat: 2}}\n")
    assert message == (
        "sweep.yaml:4: jobs[0]: YAML merge keys (<<) are not supported; "
        "blocks under jobs: inherit the top-level keys already"
    )


# --- broken files -----------------------------------------------------------------------------


def test_duplicate_key_is_an_error_naming_its_line() -> None:
    assert error_of(f"model: {KLING}\nprompts: [a]\nrepeat: 2\nrepeat: 3\n") == (
        "sweep.yaml:4: repeat: duplicate key 'repeat' (first at line 3)"
    )


def test_duplicate_nested_key_is_an_error_naming_its_line() -> None:
    assert error_of(
        f"model: {KLING}\nprompts: [a]\ngrid:\n  duration: [5]\n  duration: [10]\n"
    ) == ("sweep.yaml:5: grid.duration: duplicate key 'duration' (first at line 4)")


def test_non_utf8_file_is_an_error_with_its_line() -> None:
    raw = f"model: {KLING}\nprompts:\n  - caf\xe9\n".encode("latin-1")
    assert error_of(raw) == (
        "sweep.yaml:3: not valid UTF-8 text (byte 0xe9); save the file as UTF-8"
    )


def test_a_utf8_bom_is_accepted() -> None:
    m = load_bytes(f"\ufeffmodel: {KLING}\nprompts: [café]\n".encode())
    assert next(m.jobs()).inputs["prompt"] == "café"


@pytest.mark.parametrize("text", ["", "   \n", "# only a comment\n", "---\n"])
def test_an_empty_file_is_an_error(text: str) -> None:
    assert error_of(text) == (
        "sweep.yaml:1: the manifest is empty; it needs at least model and prompts"
    )


def test_a_top_level_list_is_an_error() -> None:
    assert error_of("- model: x\n- prompts: [a]\n") == (
        "sweep.yaml:1: the manifest must be a mapping of keys (model, prompts, ...), not a list"
    )


def test_a_top_level_string_is_an_error() -> None:
    assert error_of("hello\n") == (
        "sweep.yaml:1: the manifest must be a mapping of keys "
        "(model, prompts, ...), not a single value"
    )


def test_tabs_are_an_error_with_a_hint() -> None:
    message = error_of(f"model: {KLING}\nprompts:\n\t- a\n")
    assert message.startswith("sweep.yaml:3: YAML syntax error: found character '\\t'")
    assert message.endswith("YAML does not allow tabs for indentation, use spaces")


def test_a_syntax_error_names_its_line() -> None:
    assert error_of(f"model: {KLING}\nprompts: [a, b\nrepeat: 2\n").startswith(
        "sweep.yaml:3: YAML syntax error: "
    )


def test_an_unclosed_quote_names_its_line() -> None:
    assert error_of(f'model: {KLING}\nprompts:\n  - "a cat\n').startswith("sweep.yaml:")


def test_two_documents_are_an_error() -> None:
    assert error_of(f"model: {KLING}\nprompts: [a]\n---\nrepeat: 2\n") == (
        "sweep.yaml:3: a manifest must be one YAML document (remove the '---' separator)"
    )


def test_control_characters_are_an_error_with_their_line() -> None:
    assert error_of(f"model: {KLING}\nprompts: [a]\nname: x\x07y\n") == (
        "sweep.yaml:3: character U+0007 is not allowed in YAML (a control character?); "
        "remove it or write it as an escape inside double quotes"
    )


def test_a_key_that_is_a_list_is_an_error() -> None:
    assert error_of("? [a, b]\n: 1\n") == (
        "sweep.yaml:1: a key must be plain text, not a list or mapping"
    )


def test_a_missing_manifest_is_an_error() -> None:
    with pytest.raises(ManifestError, match=r"^nowhere\.yaml: manifest not found$"):
        load_manifest("nowhere.yaml")


def test_a_folder_is_not_a_manifest(tmp_path: Path) -> None:
    (tmp_path / "d.yaml").mkdir()
    with pytest.raises(ManifestError, match=r"^d\.yaml: is a folder, not a manifest file$"):
        load_manifest("d.yaml")
