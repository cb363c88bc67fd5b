"""Every manifest mistake is one line: file:line: field: message, at the offending value."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from genbatch.errors import ManifestError
from genbatch.manifest import load_manifest

KLING = "kling/kling-2-6/pro/text-to-video"
BANANA = "google/nano-banana-2/text-to-image"


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def error_of(text: str, name: str = "sweep.yaml") -> ManifestError:
    Path(name).write_text(text, encoding="utf-8")
    with pytest.raises(ManifestError) as caught:
        load_manifest(name).validate()
    assert "\n" not in str(caught.value)
    return caught.value


def message_of(text: str) -> str:
    return str(error_of(text))


def test_an_invalid_grid_value_names_the_line_of_that_list_item() -> None:
    text = f"""\
model: {KLING}
prompts: [a cat]
grid:
  duration:
    - 5
    - 7
"""
    error = error_of(text)
    assert str(error) == "sweep.yaml:6: duration: 7 is not one of 5, 10"
    assert (error.file, error.line, error.field) == ("sweep.yaml", 6, "duration")


def test_an_invalid_fixed_input_names_its_line() -> None:
    assert message_of(f"model: {KLING}\nprompts: [a]\ninputs:\n  generate_audio: 'no'\n") == (
        "sweep.yaml:4: generate_audio: 'no' is not a boolean (write true or false)"
    )


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ('"5"', "duration: '5' is not an integer (write 5 without quotes)"),
        ("'10'", "duration: '10' is not an integer (write 10 without quotes)"),
        ("'5.5'", "duration: '5.5' is not an integer"),
        ("'5.0'", "duration: '5.0' is not an integer"),
        ("five", "duration: 'five' is not an integer"),
    ],
)
def test_a_quoted_number_is_shown_as_the_text_it_is(written: str, expected: str) -> None:
    assert message_of(f"model: {KLING}\nprompts: [a]\ninputs:\n  duration: {written}\n") == (
        f"sweep.yaml:4: {expected}"
    )


def test_a_quoted_boolean_says_to_drop_the_quotes() -> None:
    assert message_of(f"model: {KLING}\nprompts: [a]\ninputs: {{generate_audio: 'true'}}\n") == (
        "sweep.yaml:3: generate_audio: 'true' is not a boolean (write true without quotes)"
    )


def test_text_that_reads_as_a_number_is_quoted_in_a_choices_message(tmp_path: Path) -> None:
    # No "type" here, so the enum itself refuses the text "5": it must not read "5 is not one of 5".
    schema = {"properties": {"prompt": {"type": "string"}, "steps": {"enum": [5, 10]}}}
    (tmp_path / "echo.json").write_text(json.dumps(schema))
    message = message_of(
        "model: acme/echo/v1\nschema: echo.json\nprompts: [a]\ninputs:\n  steps: '5'\n"
    )
    assert message == "sweep.yaml:5: steps: '5' is not one of 5, 10"


def test_an_invalid_zip_value_names_its_line() -> None:
    assert message_of(
        f"model: {KLING}\nprompts: ['{{c}}']\nzip:\n  c: [a, b]\n  aspect_ratio: ['16:9', '4:3']\n"
    ) == ("sweep.yaml:5: aspect_ratio: 4:3 is not one of 16:9, 9:16, 1:1")


def test_an_input_the_model_does_not_have_is_named_with_a_suggestion() -> None:
    assert message_of(f"model: {KLING}\nprompts: [a]\ninputs: {{durations: 5}}\n") == (
        "sweep.yaml:3: durations: is not an input of kling/kling-2-6/pro/text-to-video "
        "(did you mean 'duration'?) (known: prompt, duration, aspect_ratio, negative_prompt, "
        "generate_audio)"
    )


def test_a_grid_key_nothing_uses_is_an_input_and_checked_as_one() -> None:
    assert message_of(f"model: {KLING}\nprompts: [a]\ngrid:\n  mood: [calm]\n").startswith(
        "sweep.yaml:4: mood: is not an input of kling/kling-2-6/pro/text-to-video"
    )


def test_a_missing_required_input_names_the_model_line() -> None:
    assert message_of(f"name: x\nmodel: {KLING}\ninputs: {{duration: 5}}\n") == (
        "sweep.yaml:2: prompt: is required by kling/kling-2-6/pro/text-to-video; add prompts:"
    )


def test_a_missing_model_is_an_error() -> None:
    assert message_of("prompts: [a]\n") == (
        "sweep.yaml:1: model: is required: set the RunComfy model id at the top level or in "
        "this block, e.g. kling/kling-2-6/pro/text-to-video"
    )


def test_a_block_without_a_model_names_the_block() -> None:
    assert message_of("prompts: [a]\njobs:\n  - name: x\n").startswith(
        "sweep.yaml:3: model: is required"
    )


def test_a_malformed_model_id_is_refused() -> None:
    assert message_of("model: ../../v1/requests\nprompts: [a]\n") == (
        "sweep.yaml:1: model: '../../v1/requests' is not a model id like "
        "kling/kling-2-6/pro/text-to-video"
    )


def test_an_unknown_top_level_key_suggests_the_close_one() -> None:
    assert message_of(f"model: {KLING}\nprompts: [a]\ngird: {{}}\n") == (
        "sweep.yaml:3: gird: unknown key (did you mean 'grid'?)"
    )


def test_an_unknown_key_without_a_close_one_lists_the_keys() -> None:
    assert message_of(f"model: {KLING}\nprompts: [a]\noutput: {{folder: x}}\n") == (
        "sweep.yaml:3: output.folder: unknown key; expected one of dir, name"
    )


def test_an_unknown_block_key_names_its_line() -> None:
    assert message_of(f"model: {KLING}\nprompts: [a]\njobs:\n  - name: a\n    repaet: 2\n") == (
        "sweep.yaml:5: jobs[0].repaet: unknown key (did you mean 'repeat'?)"
    )


def test_an_undefined_template_variable_names_the_prompt_line() -> None:
    assert message_of(
        f"model: {KLING}\nprompts:\n  - a cat\n  - a {{animl}}\ngrid: {{animal: [dog]}}\n"
    ) == (
        "sweep.yaml:4: prompt: undefined template variable {animl} (did you mean 'animal'?); "
        "variables come from grid, zip and vars (write {{ and }} for literal braces)"
    )


def test_an_undefined_variable_in_an_input_names_that_input() -> None:
    assert message_of(
        f"model: {KLING}\nprompts: [a]\ninputs:\n  negative_prompt: 'no {{x}}'\n"
    ).startswith("sweep.yaml:4: negative_prompt: undefined template variable {x}")


def test_an_unbalanced_brace_is_an_error_with_a_hint() -> None:
    assert message_of(f"model: {KLING}\nprompts: ['a {{cat']\n") == (
        "sweep.yaml:2: prompt: bad template: expected '}' before end of string; "
        "write {{ and }} for literal braces"
    )


@pytest.mark.parametrize("field", ["{}", "{0}", "{a.b}", "{a[0]}", "{a.__class__}"])
def test_template_fields_must_be_plain_variable_names(field: str) -> None:
    message = message_of(f"model: {KLING}\nprompts: ['x {field}']\ngrid: {{a: [1]}}\n")
    assert message.startswith("sweep.yaml:2: prompt: template field ")
    assert "must be a variable name" in message


def test_a_line_break_quoted_in_a_message_does_not_break_the_line() -> None:
    # A block scalar puts a line break inside the template field the message quotes.
    message = message_of(f"model: {KLING}\nprompts:\n  - |\n    a {{fo\n    o}} b\n")
    assert message.startswith("sweep.yaml:3: prompt: template field {fo o} must be a variable")


def test_a_format_spec_that_does_not_fit_names_the_template_line() -> None:
    assert message_of(f"model: {KLING}\nprompts:\n  - 'n={{n:d}}'\ngrid: {{n: [x]}}\n") == (
        "sweep.yaml:3: prompt: cannot render 'n={n:d}': Unknown format code 'd' for object "
        "of type 'str'"
    )


def test_a_rendered_prompt_that_is_too_long_names_the_template_line(tmp_path: Path) -> None:
    schema = {"properties": {"prompt": {"type": "string", "maxLength": 2500}}}
    (tmp_path / "echo.json").write_text(json.dumps(schema))
    long_word = "w" * 1300
    message = message_of(
        f"model: acme/echo/v1\nprompts:\n  - '{{a}} {{a}}'\ngrid: {{a: [short, {long_word}]}}\n"
        "schema: echo.json\n"
    )
    assert message == "sweep.yaml:3: prompt: is 2601 characters long, more than 2500"


def test_a_name_set_twice_is_an_error_naming_both_places() -> None:
    assert message_of(
        f"model: {KLING}\nprompts: [a]\ninputs: {{duration: 5}}\ngrid: {{duration: [5, 10]}}\n"
    ) == ("sweep.yaml:4: duration: is set both in inputs (line 3) and in grid; keep one")


def test_prompt_in_inputs_and_prompts_is_an_error() -> None:
    assert message_of(f"model: {KLING}\nprompts: [a]\ninputs: {{prompt: b}}\n") == (
        "sweep.yaml:3: prompt: is set both in prompts (line 2) and in inputs; keep one"
    )


def test_zip_lists_of_different_lengths_name_both_keys() -> None:
    assert message_of(
        f"model: {BANANA}\nprompts: ['{{camera}}']\nzip:\n"
        "  camera: [static, dolly]\n  seed: [1, 2, 3]\n"
    ) == (
        "sweep.yaml:5: zip.seed: has 3 values but 'camera' has 2; zip lists must have the "
        "same length"
    )


def test_an_empty_grid_list_is_an_error() -> None:
    assert message_of(f"model: {KLING}\nprompts: [a]\ngrid:\n  duration: []\n") == (
        "sweep.yaml:4: grid.duration: is an empty list, which would make no jobs"
    )


def test_an_empty_prompt_list_is_an_error() -> None:
    assert message_of(f"model: {KLING}\nprompts: []\n") == (
        "sweep.yaml:2: prompts: is empty, which would make no jobs; list at least one prompt"
    )


def test_a_grid_value_that_is_not_a_list_is_an_error() -> None:
    assert message_of(f"model: {KLING}\nprompts: [a]\ngrid:\n  duration: 5\n") == (
        "sweep.yaml:4: grid.duration: must be a list such as [a, b], not 5"
    )


def test_prompts_of_the_wrong_shape_are_an_error() -> None:
    assert message_of(f"model: {KLING}\nprompts: a cat\n") == (
        "sweep.yaml:2: prompts: must be a list of prompts or a mapping like {file: prompts.txt}"
    )


def test_repeat_must_be_a_positive_whole_number() -> None:
    assert message_of(f"model: {KLING}\nprompts: [a]\nrepeat: 0\n") == (
        "sweep.yaml:3: repeat: must be at least 1, not 0"
    )
    assert message_of(f"model: {KLING}\nprompts: [a]\nrepeat: '2'\n") == (
        "sweep.yaml:3: repeat: must be a whole number, not '2'"
    )


def test_errors_in_a_later_block_name_its_lines() -> None:
    text = f"""\
model: {KLING}
prompts: [a]
jobs:
  - name: ok
  - name: bad
    grid:
      aspect_ratio: ["16:9", "21:9"]
"""
    assert message_of(text) == "sweep.yaml:7: aspect_ratio: 21:9 is not one of 16:9, 9:16, 1:1"


def test_the_manifest_is_named_as_the_caller_wrote_its_path(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "m.yaml").write_text("model: x\n", encoding="utf-8")
    with pytest.raises(ManifestError, match=r"^sub/m\.yaml:1: model: 'x' is not a model id"):
        load_manifest("sub/m.yaml")
    with pytest.raises(ManifestError, match=rf"^{tmp_path}/sub/m\.yaml:1: "):
        load_manifest(tmp_path / "sub" / "m.yaml")
