"""Prompt files: .txt, .csv and .jsonl, their errors, and lines of values that come from them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from genbatch.errors import ManifestError
from genbatch.manifest import Manifest, load_manifest
from genbatch.manifest.reading import MAX_PROMPT_FILE_BYTES
from genbatch.manifest.yaml_loader import MAX_MANIFEST_BYTES
from genbatch.simulator import Simulator

from support import cli_env, genbatch, run_args

KLING = "kling/kling-2-6/pro/text-to-video"


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def load(text: str, files: dict[str, str | bytes]) -> Manifest:
    for name, content in files.items():
        path = Path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    Path("sweep.yaml").write_text(text, encoding="utf-8")
    return load_manifest("sweep.yaml")


def prompts_of(manifest: Manifest) -> list[str]:
    return [job.inputs["prompt"] for job in manifest.jobs()]


def error_of(text: str, files: dict[str, str | bytes]) -> str:
    with pytest.raises(ManifestError) as caught:
        load(text, files).validate()
    assert "\n" not in str(caught.value)
    return str(caught.value)


def test_a_text_file_gives_one_prompt_per_line_skipping_blanks_and_comments() -> None:
    m = load(
        f"model: {KLING}\nprompts: {{file: prompts.txt}}\n",
        {"prompts.txt": "# my prompts\na cat\n\n   \n  a dog  \n#a fox\nno\n"},
    )
    assert prompts_of(m) == ["a cat", "a dog", "no"]


def test_a_csv_file_reads_the_prompt_column_by_default() -> None:
    m = load(
        f"model: {KLING}\nprompts: {{file: p.csv}}\n",
        {"p.csv": 'id,prompt\n1,a cat\n2,"a dog, running"\n3,\n'},
    )
    assert prompts_of(m) == ["a cat", "a dog, running"]


def test_a_csv_file_can_name_its_column() -> None:
    m = load(
        f"model: {KLING}\nprompts: {{file: p.csv, column: text}}\n",
        {"p.csv": "text,other\na cat,x\n"},
    )
    assert prompts_of(m) == ["a cat"]


def test_a_jsonl_file_reads_the_prompt_field_by_default() -> None:
    rows = [{"prompt": "a cat"}, {"prompt": "a \u00e9t\u00e9 dog", "x": 1}]
    m = load(
        f"model: {KLING}\nprompts: {{file: p.jsonl}}\n",
        {"p.jsonl": "\n".join(json.dumps(r) for r in rows) + "\n\n"},
    )
    assert prompts_of(m) == ["a cat", "a \u00e9t\u00e9 dog"]


def test_a_jsonl_file_can_name_its_field() -> None:
    m = load(
        f"model: {KLING}\nprompts: {{file: p.jsonl, field: text}}\n",
        {"p.jsonl": '{"text": "a cat"}\n'},
    )
    assert prompts_of(m) == ["a cat"]


def test_prompt_files_are_relative_to_the_manifest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    load(f"model: {KLING}\nprompts: {{file: data/p.txt}}\n", {"data/p.txt": "a cat\n"})
    monkeypatch.chdir("/")
    assert prompts_of(load_manifest(tmp_path / "sweep.yaml")) == ["a cat"]


def test_prompts_from_a_file_are_templates() -> None:
    m = load(
        f"model: {KLING}\nprompts: {{file: p.txt}}\ngrid: {{animal: [cat, owl]}}\n",
        {"p.txt": "a {animal}\n"},
    )
    assert prompts_of(m) == ["a cat", "a owl"]


def test_a_missing_prompt_file_names_the_manifest_line() -> None:
    message = error_of(f"model: {KLING}\nprompts:\n  file: missing.txt\n", {})
    assert message.startswith(
        "sweep.yaml:3: prompts.file: prompt file 'missing.txt' not found (looked for "
    )


def test_an_empty_prompt_file_is_an_error() -> None:
    assert error_of(f"model: {KLING}\nprompts: {{file: p.txt}}\n", {"p.txt": "# none\n"}) == (
        "sweep.yaml:2: prompts.file: prompt file 'p.txt' has no prompts"
    )


def test_an_unknown_prompt_file_type_is_an_error() -> None:
    assert error_of(f"model: {KLING}\nprompts: {{file: p.json}}\n", {"p.json": "[]"}) == (
        "sweep.yaml:2: prompts.file: cannot read prompts from a '.json' file; use .txt "
        "(one per line), .csv or .jsonl"
    )


def test_column_is_for_csv_and_field_for_jsonl() -> None:
    assert error_of(f"model: {KLING}\nprompts: {{file: p.txt, column: a}}\n", {"p.txt": "x\n"}) == (
        "sweep.yaml:2: prompts.column: 'column' applies to .csv files only"
    )
    assert error_of(
        f"model: {KLING}\nprompts: {{file: p.csv, field: a}}\n", {"p.csv": "prompt\nx\n"}
    ) == ("sweep.yaml:2: prompts.field: 'field' applies to .jsonl files only")


def test_a_csv_without_the_column_names_the_header_line() -> None:
    assert error_of(f"model: {KLING}\nprompts: {{file: p.csv}}\n", {"p.csv": "text\nx\n"}) == (
        "p.csv:1: prompt: no column 'prompt' (columns: text)"
    )


def test_bad_json_names_the_prompt_file_line() -> None:
    assert error_of(
        f"model: {KLING}\nprompts: {{file: p.jsonl}}\n",
        {"p.jsonl": '{"prompt": "a"}\n{"prompt": \n'},
    ).startswith("p.jsonl:2: not valid JSON: ")


def test_a_jsonl_row_without_the_field_names_its_line() -> None:
    assert error_of(
        f"model: {KLING}\nprompts: {{file: p.jsonl}}\n",
        {"p.jsonl": '{"prompt": "a"}\n{"text": "b"}\n'},
    ) == ("p.jsonl:2: prompt: no field 'prompt' (fields: text)")


def test_a_jsonl_prompt_that_is_not_text_names_its_line() -> None:
    assert (
        error_of(f"model: {KLING}\nprompts: {{file: p.jsonl}}\n", {"p.jsonl": '{"prompt": 5}\n'})
        == "p.jsonl:1: prompt: must be text, not 5"
    )


def test_a_non_utf8_prompt_file_names_its_line() -> None:
    assert error_of(
        f"model: {KLING}\nprompts: {{file: p.txt}}\n",
        {"p.txt": "a cat\nun caf\xe9\n".encode("latin-1")},
    ) == ("p.txt:2: not valid UTF-8 text (byte 0xe9); save the file as UTF-8")


def test_an_invalid_value_from_a_prompt_file_names_that_file_and_line() -> None:
    too_long = "x" * 2501
    schema = '{"properties": {"prompt": {"type": "string", "maxLength": 2500}}}'
    assert error_of(
        "model: acme/echo/v1\nschema: echo.json\nprompts: {file: p.txt}\n",
        {"p.txt": f"a cat\n\n{too_long}\n", "echo.json": schema},
    ) == ("p.txt:3: prompt: is 2501 characters long, more than 2500")


def test_a_bad_template_in_a_prompt_file_names_that_file_and_line() -> None:
    assert error_of(
        f"model: {KLING}\nprompts: {{file: p.txt}}\n", {"p.txt": "a cat\na {dog}\n"}
    ).startswith("p.txt:2: prompt: undefined template variable {dog}")


def test_prompt_files_in_a_subfolder_are_named_by_their_path() -> None:
    assert error_of(
        f"model: {KLING}\nprompts: {{file: data/p.txt}}\n", {"data/p.txt": "a {dog}\n"}
    ).startswith("data/p.txt:1: prompt: ")


def test_jobs_from_a_prompt_file_point_at_the_block_line() -> None:
    m = load(f"model: {KLING}\nprompts: {{file: p.txt}}\n", {"p.txt": "a\nb\n"})
    assert {job.source_line for job in m.jobs()} == {1}


def test_a_prompt_file_outside_the_manifests_folder_is_refused_unless_allowed(
    tmp_path: Path,
) -> None:
    shared = tmp_path.parent / f"{tmp_path.name}-shared"
    shared.mkdir()
    (shared / "p.txt").write_text("a cat from elsewhere\n", encoding="utf-8")
    text = f"model: {KLING}\nprompts:\n  file: ../{shared.name}/p.txt\n"

    message = error_of(text, {})
    assert message == (
        f"sweep.yaml:3: prompts.file: prompt file '../{shared.name}/p.txt' is outside the "
        "manifest's folder; move it there, or set allow_outside_prompt_files: true in the manifest"
    )
    allowed = load(text + "allow_outside_prompt_files: true\n", {})
    assert prompts_of(allowed) == ["a cat from elsewhere"]


def test_a_link_in_the_manifests_folder_to_a_file_outside_it_is_outside(tmp_path: Path) -> None:
    secret = tmp_path.parent / f"{tmp_path.name}-secret.txt"
    secret.write_text("not for prompts\n", encoding="utf-8")
    Path("p.txt").symlink_to(secret)

    message = error_of(f"model: {KLING}\nprompts: {{file: p.txt}}\n", {})

    assert "is outside the manifest's folder" in message
    assert "not for prompts" not in message


@pytest.mark.parametrize("path", ["/proc/self/environ", "/dev/zero", "/sys/kernel/uevent_seqnum"])
def test_kernel_files_are_never_prompt_files_even_where_outside_files_are_allowed(
    path: str,
) -> None:
    text = f"model: {KLING}\nprompts: {{file: {path}}}\nallow_outside_prompt_files: true\n"
    root = "/" + path.split("/")[1]
    assert error_of(text, {}) == (
        f"sweep.yaml:2: prompts.file: prompt file '{path}' is under {root}, which holds no "
        "prompt files"
    )


def test_a_prompt_file_over_the_size_cap_is_refused_before_it_is_read() -> None:
    with open("p.txt", "wb") as sparse:  # announces the size, holds no data blocks
        sparse.truncate(MAX_PROMPT_FILE_BYTES + 1)

    assert error_of(f"model: {KLING}\nprompts: {{file: p.txt}}\n", {}) == (
        f"sweep.yaml:2: prompts.file: prompt file 'p.txt' is larger than "
        f"{MAX_PROMPT_FILE_BYTES:,} bytes, the limit for a prompt file"
    )


def test_a_manifest_over_the_size_cap_is_refused_before_it_is_read() -> None:
    # Pipes and devices, which used to hang or exhaust the memory, are tested through the CLI
    # (test_security.py), in a subprocess with a timeout.
    with open("sweep.yaml", "wb") as sparse:
        sparse.truncate(MAX_MANIFEST_BYTES + 1)

    with pytest.raises(ManifestError) as caught:
        load_manifest("sweep.yaml")

    assert str(caught.value) == (
        f"sweep.yaml: is larger than {MAX_MANIFEST_BYTES:,} bytes, the limit for a manifest file"
    )


def test_line_numbers_hold_deep_into_a_big_file_with_every_kind_of_line_break() -> None:
    breaks = ["\n", "\r\n", "\r", "\u2028", "\x85", "\u2029"]
    lines = [f"prompt number {i} of a long file" for i in range(120_000)]
    lines[-2] = "a {dog}"
    text = "".join(line + breaks[i % len(breaks)] for i, line in enumerate(lines))
    assert len(text) > 3 * 1024 * 1024  # several of the reader's chunks
    expected = text.splitlines().index("a {dog}") + 1
    assert error_of(f"model: {KLING}\nprompts: {{file: p.txt}}\n", {"p.txt": text}).startswith(
        f"p.txt:{expected}: prompt: undefined template variable {{dog}}"
    )


def test_every_prompt_of_a_big_file_reaches_its_job_as_written() -> None:
    lines = [f"clip {i} caf\u00e9 \U0001f98a" for i in range(50_000)]
    m = load(f"model: {KLING}\nprompts: {{file: p.txt}}\n", {"p.txt": "\r\n".join(lines)})
    assert prompts_of(m) == lines


def test_a_jsonl_lone_surrogate_escape_is_a_one_line_error_naming_its_field() -> None:
    assert error_of(
        f"model: {KLING}\nprompts: {{file: p.jsonl}}\n",
        {"p.jsonl": '{"prompt": "a cat"}\n{"prompt": "a fox \\ud800 runs"}\n'},
    ) == (
        "p.jsonl:2: prompt: holds a lone UTF-16 surrogate escape (\\ud800-\\udfff), "
        "not a character: remove it"
    )


def test_a_jsonl_surrogate_pair_escape_is_the_character_it_spells() -> None:
    manifest = load(
        f"model: {KLING}\nprompts: {{file: p.jsonl}}\n",
        {"p.jsonl": '{"prompt": "a \\ud83e\\udd8a"}\n'},
    )
    assert prompts_of(manifest) == ["a \U0001f98a"]


@pytest.mark.parametrize(
    ("name", "content", "line", "code"),
    [
        ("p.txt", "\ufeffa cat\n\x00dog\n", 2, "0000"),
        ("p.txt", "a cat\r\na dog\r\n# note \x1b[31m\r\n", 3, "001B"),
        ("p.txt", "a cat\ra dog\u2028a fox\x0ca hare\n", 3, "000C"),
        ("p.csv", 'prompt,id\na cat,1\n"a\x07dog",2\n', 3, "0007"),
        ("p.jsonl", '{"prompt": "a cat"}\n{"prompt": "a dog\x7f"}\n', 2, "007F"),
    ],
)
def test_a_control_character_in_a_prompt_file_is_refused_at_its_line(
    name: str, content: str, line: int, code: str
) -> None:
    # The manifest's own text refuses these (YAML does); a prompt file is held to the same rule.
    assert error_of(f"model: {KLING}\nprompts: {{file: {name}}}\n", {name: content}) == (
        f"{name}:{line}: character U+{code} is not allowed in a prompt file "
        "(a control character?); remove it"
    )


def test_a_control_character_in_a_wildcard_file_is_refused_at_its_line() -> None:
    assert error_of(
        f"model: {KLING}\nprompts: ['a __animals__']\n",
        {"wildcards/animals.txt": "fox\nhare\x00\n"},
    ) == (
        "wildcards/animals.txt:2: character U+0000 is not allowed in a wildcard file "
        "(a control character?); remove it"
    )


def test_tabs_and_line_breaks_in_a_prompt_file_are_not_control_characters_refused() -> None:
    m = load(
        f"model: {KLING}\nprompts: {{file: p.tsv}}\n",
        {"p.tsv": 'id\tprompt\r\n1\ta cat\u00a0on a mat\r\n2\t"a dog\nrunning"\r\n'},
    )
    assert prompts_of(m) == ["a cat\u00a0on a mat", "a dog\nrunning"]


def test_a_control_character_written_as_a_jsonl_escape_is_kept_like_a_yaml_escape() -> None:
    # An escape is written on purpose, as "\u0007" may be in the manifest's double quotes.
    m = load(
        f"model: {KLING}\nprompts: {{file: p.jsonl}}\n", {"p.jsonl": '{"prompt": "a\\u0007"}\n'}
    )
    assert prompts_of(m) == ["a\u0007"]


def test_a_run_whose_prompt_file_holds_a_nul_exits_2_in_one_line_sending_nothing(
    tmp_path: Path, simulator: Simulator
) -> None:
    (tmp_path / "p.txt").write_bytes(b"a cat\n\x00dog\n")
    (tmp_path / "sweep.yaml").write_text(f"model: {KLING}\nprompts: {{file: p.txt}}\n")
    env = cli_env(simulator, tmp_path / "ledger.db")

    done = genbatch(run_args(Path("sweep.yaml")), env=env, cwd=tmp_path)

    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == (
        "genbatch: error: p.txt:2: character U+0000 is not allowed in a prompt file "
        "(a control character?); remove it"
    )
    assert "Traceback" not in done.stderr
    assert simulator.stats.submissions == 0
