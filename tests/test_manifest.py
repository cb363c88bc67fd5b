"""The manifest format: keys, expansion into jobs, job identity, settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from genbatch.errors import ManifestError
from genbatch.jobs import canonical_json, job_key, job_key_of_json
from genbatch.manifest import DEFAULT_MAX_JOBS, Manifest, ManifestSettings, load_manifest

KLING = "kling/kling-2-6/pro/text-to-video"
BANANA = "google/nano-banana-2/text-to-image"


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Manifests are loaded by relative name, so messages read "sweep.yaml:3: ...".
    monkeypatch.chdir(tmp_path)


def load(text: str, name: str = "sweep.yaml", **options: object) -> Manifest:
    Path(name).write_text(text, encoding="utf-8")
    return load_manifest(name, **options)  # type: ignore[arg-type]


def error_of(text: str, name: str = "sweep.yaml", **options: object) -> str:
    with pytest.raises(ManifestError) as caught:
        load(text, name, **options).validate()
    message = str(caught.value)
    assert "\n" not in message
    return message


# --- the minimal form and the Manifest object ---------------------------------------------


def test_minimal_manifest_is_a_model_and_prompts(tmp_path: Path) -> None:
    m = load(f"model: {KLING}\nprompts: [a cat, a dog]\n")
    jobs = list(m.jobs())
    assert [j.inputs for j in jobs] == [{"prompt": "a cat"}, {"prompt": "a dog"}]
    assert m.path == tmp_path / "sweep.yaml"
    assert m.path.is_absolute()
    assert m.name == "sweep"
    assert m.concurrency is None
    assert m.warnings == []
    assert m.job_count == 2
    assert m.validate() == 2


def test_job_fields_are_filled_from_the_manifest(tmp_path: Path) -> None:
    m = load(f"model: {KLING}\nprompts:\n  - a cat\n")
    (job,) = m.jobs()
    assert job.ordinal == 0
    assert job.block == "main"
    assert job.model_id == KLING
    assert job.repeat_index == 0
    assert job.variables == {}
    assert job.source_line == 3
    assert job.output_dir == str(tmp_path / "out" / "sweep")
    assert job.file_stem == f"00000-{job.key}"


def test_name_and_concurrency_are_read() -> None:
    m = load(f"name: night-sweep\nconcurrency: 8\nmodel: {KLING}\nprompts: [x]\n")
    assert m.name == "night-sweep"
    assert m.concurrency == 8
    assert next(m.jobs()).output_dir.endswith("/out/night-sweep")


def test_settings_default_when_not_written() -> None:
    m = load(f"model: {KLING}\nprompts: [x]\n")
    assert m.settings == ManifestSettings()
    assert m.settings.max_attempts == 1
    assert m.settings.allowed_hosts == ()


def test_settings_are_validated_and_exposed() -> None:
    m = load(
        f"model: {KLING}\nprompts: [x]\nmax_jobs: 50\nstrict: true\n"
        "allowed_hosts: [Files.Example.com, .cdn.example.org]\nmax_file_size: 2GiB\n"
        "max_attempts: 3\nbudget_usd: 12.5\n"
    )
    assert m.settings == ManifestSettings(
        max_jobs=50,
        strict=True,
        allowed_hosts=("files.example.com", ".cdn.example.org"),
        max_file_size=2 * 1024**3,
        max_attempts=3,
        budget_usd=12.5,
    )


@pytest.mark.parametrize(
    ("written", "size"),
    [("1048576", 1048576), ("500MB", 500_000_000), ("1.5 GiB", 1610612736), ("2g", 2 * 1024**3)],
)
def test_max_file_size_accepts_bytes_and_units(written: str, size: int) -> None:
    m = load(f"model: {KLING}\nprompts: [x]\nmax_file_size: {written}\n")
    assert m.settings.max_file_size == size


def test_settings_of_the_wrong_type_are_refused() -> None:
    head = f"model: {KLING}\nprompts: [x]\n"
    assert error_of(head + "max_attempts: 0\n") == (
        "sweep.yaml:3: max_attempts: must be at least 1, not 0"
    )
    assert error_of(head + "budget_usd: cheap\n") == (
        "sweep.yaml:3: budget_usd: must be a number, not 'cheap'"
    )
    assert error_of(head + "max_file_size: huge\n") == (
        "sweep.yaml:3: max_file_size: 'huge' is not a size like 2GiB, 500MB or 1048576"
    )
    assert error_of(head + "allowed_hosts: [https://x.org/a]\n").startswith(
        "sweep.yaml:3: allowed_hosts: 'https://x.org/a' is not a host name"
    )
    assert error_of(head + "concurrency: 1.5\n") == (
        "sweep.yaml:3: concurrency: must be a whole number, not 1.5"
    )


# --- inputs, grid, zip, repeat, vars ----------------------------------------------------------


SWEEP = f"""\
model: {KLING}
inputs: {{duration: 5, generate_audio: false}}
prompts:
  - "a {{animal}} at {{time_of_day}}"
grid:
  animal: [cat, dog]
  time_of_day: [dawn, dusk]
  aspect_ratio: ["16:9", "9:16"]
"""


def test_grid_is_a_cartesian_product_in_written_key_order() -> None:
    jobs = list(load(SWEEP).jobs())
    assert [(j.variables["animal"], j.variables["time_of_day"], j.inputs["aspect_ratio"])
            for j in jobs] == [
        ("cat", "dawn", "16:9"), ("cat", "dawn", "9:16"),
        ("cat", "dusk", "16:9"), ("cat", "dusk", "9:16"),
        ("dog", "dawn", "16:9"), ("dog", "dawn", "9:16"),
        ("dog", "dusk", "16:9"), ("dog", "dusk", "9:16"),
    ]  # fmt: skip
    assert [j.ordinal for j in jobs] == list(range(8))


def test_grid_keys_used_by_templates_are_variables_not_inputs() -> None:
    job = next(load(SWEEP).jobs())
    assert job.inputs == {
        "prompt": "a cat at dawn",
        "duration": 5,
        "generate_audio": False,
        "aspect_ratio": "16:9",
    }
    assert job.variables == {"animal": "cat", "time_of_day": "dawn", "aspect_ratio": "16:9"}


def test_a_model_input_used_in_a_template_is_sent_too() -> None:
    m = load(
        f"model: {KLING}\nprompts: ['shot in {{aspect_ratio}}']\ngrid: {{aspect_ratio: ['1:1']}}\n"
    )
    assert next(m.jobs()).inputs == {"prompt": "shot in 1:1", "aspect_ratio": "1:1"}


def test_expansion_order_is_prompts_then_grid_then_zip_then_repeat() -> None:
    m = load(f"""\
model: {KLING}
prompts: ["p1 {{camera}}", "p2 {{camera}}"]
grid: {{duration: [5, 10]}}
zip: {{camera: [static, dolly], aspect_ratio: ["16:9", "9:16"]}}
repeat: 2
""")
    order = [
        (j.inputs["prompt"][:2], j.inputs["duration"], j.variables["camera"], j.repeat_index)
        for j in m.jobs()
    ]
    assert order[:8] == [
        ("p1", 5, "static", 0), ("p1", 5, "static", 1), ("p1", 5, "dolly", 0),
        ("p1", 5, "dolly", 1), ("p1", 10, "static", 0), ("p1", 10, "static", 1),
        ("p1", 10, "dolly", 0), ("p1", 10, "dolly", 1),
    ]  # fmt: skip
    assert order[8] == ("p2", 5, "static", 0)
    assert m.job_count == len(order) == 16


def test_zip_lists_advance_together() -> None:
    m = load(
        f"model: {BANANA}\nprompts: ['{{camera}} shot']\n"
        "zip:\n  camera: [static, dolly]\n  num_images: [1, 2]\n"
    )
    assert [(j.inputs["prompt"], j.inputs["num_images"]) for j in m.jobs()] == [
        ("static shot", 1),
        ("dolly shot", 2),
    ]


def test_vars_are_fixed_template_variables() -> None:
    m = load(f"model: {KLING}\nvars: {{style: noir}}\nprompts: ['a {{style}} city']\n")
    job = next(m.jobs())
    assert job.inputs == {"prompt": "a noir city"}
    assert job.variables == {"style": "noir"}


def test_string_inputs_are_templates_too() -> None:
    m = load(
        f"model: {KLING}\nprompts: [a cat]\ngrid: {{thing: [dogs]}}\n"
        "inputs: {negative_prompt: 'no {thing}, {{braces}}'}\n"
    )
    assert next(m.jobs()).inputs["negative_prompt"] == "no dogs, {braces}"


def test_double_braces_are_literal_braces_in_prompts() -> None:
    m = load(f"model: {KLING}\nprompts: ['a {{{{json}}}} cat']\n")
    assert next(m.jobs()).inputs["prompt"] == "a {json} cat"


def test_template_format_specs_are_allowed() -> None:
    m = load(f"model: {KLING}\nprompts: ['take {{n:03d}}']\ngrid: {{n: [7]}}\n")
    assert next(m.jobs()).inputs["prompt"] == "take 007"


def test_repeat_makes_samples_with_their_own_keys() -> None:
    jobs = list(load(f"model: {KLING}\nprompts: [a cat]\nrepeat: 3\n").jobs())
    assert [j.repeat_index for j in jobs] == [0, 1, 2]
    assert len({j.key for j in jobs}) == 3
    assert jobs[0].inputs == jobs[1].inputs
    assert jobs[0].inputs is not jobs[1].inputs


def test_prompt_can_be_a_fixed_input_instead_of_prompts() -> None:
    m = load(f"model: {KLING}\ninputs: {{prompt: a cat}}\ngrid: {{duration: [5, 10]}}\n")
    assert [j.inputs for j in m.jobs()] == [
        {"prompt": "a cat", "duration": 5},
        {"prompt": "a cat", "duration": 10},
    ]


def test_an_unknown_model_is_refused_unless_validate_is_false() -> None:
    assert error_of("model: acme/dream/v1\nprompts: [x]\n") == (
        "sweep.yaml:1: model: unknown model 'acme/dream/v1'; paste its input schema from its "
        "API page into a JSON file and name it under schema:, or set validate: false to send "
        "the inputs unchecked"
    )


def test_validate_false_sends_an_unknown_models_inputs_unchecked_with_a_warning() -> None:
    m = load("model: acme/dream/v1\nvalidate: false\nprompts: [x]\ninputs: {anything: [1, 2]}\n")
    assert m.warnings == [
        "sweep.yaml:1: model: unknown model 'acme/dream/v1'; validate: false, so its inputs are "
        "sent unchecked and its cost is unknown unless prices: gives one"
    ]
    assert next(m.jobs()).inputs == {"prompt": "x", "anything": [1, 2]}
    assert [b.schema_source for b in m.blocks] == ["none"]


def test_a_mistyped_model_id_gets_a_suggestion_over_the_catalog() -> None:
    assert error_of("model: kling/kling-2-6/pro/text-to-vide\nprompts: [x]\n").startswith(
        "sweep.yaml:1: model: unknown model 'kling/kling-2-6/pro/text-to-vide' "
        "(did you mean 'kling/kling-2-6/pro/text-to-video'?)"
    )
    assert "did you mean 'bytedance/seedream-4-0/edit'?" in error_of(
        "model: bytedance/seedream-4-0/edits\nprompts: [x]\n"
    )


def test_a_page_slug_is_mapped_to_the_real_model_id_with_a_note() -> None:
    m = load("model: bytedance/seedream-4/text-to-image\nprompts: [x]\n")
    assert [b.model_id for b in m.blocks] == ["bytedance/seedream-4-0/text-to-image"]
    assert next(m.jobs()).model_id == "bytedance/seedream-4-0/text-to-image"
    assert m.warnings == [
        "sweep.yaml:1: model: 'bytedance/seedream-4/text-to-image' is the model's page slug; "
        "its API id is 'bytedance/seedream-4-0/text-to-image', used instead"
    ]


def test_strict_refuses_validate_false_for_unknown_models() -> None:
    text = "model: acme/dream/v1\nvalidate: false\nprompts: [x]\n"
    expected = (
        "sweep.yaml:1: model: unknown model 'acme/dream/v1' (strict mode refuses models "
        "genbatch does not know, even with validate: false)"
    )
    assert error_of(text, strict_models=True) == expected
    assert error_of("strict: true\n" + text).startswith("sweep.yaml:2: model: unknown model")


# --- blocks -----------------------------------------------------------------------------------


BLOCKS = f"""\
model: {KLING}
prompts: ["a {{animal}}"]
grid: {{animal: [cat, dog]}}
output: {{dir: out/all}}
jobs:
  - name: wide
    grid: {{animal: [owl], aspect_ratio: ["16:9", "1:1"]}}
  - name: long
    inputs: {{duration: 10}}
    output: {{name: "{{block}}-{{index}}"}}
  - name: images
    model: {BANANA}
    prompts: ["a {{animal}} icon"]
    output: {{dir: out/images}}
"""


def test_blocks_inherit_the_top_level_and_may_override(tmp_path: Path) -> None:
    jobs = list(load(BLOCKS).jobs())
    wide = [j for j in jobs if j.block == "wide"]
    long = [j for j in jobs if j.block == "long"]
    images = [j for j in jobs if j.block == "images"]
    assert [j.inputs["aspect_ratio"] for j in wide] == ["16:9", "1:1"]
    assert all(j.variables["animal"] == "owl" for j in wide)
    assert [j.inputs for j in long] == [
        {"prompt": "a cat", "duration": 10},
        {"prompt": "a dog", "duration": 10},
    ]
    assert [j.file_stem for j in long] == ["long-2", "long-3"]
    assert images[0].model_id == BANANA
    assert images[0].inputs == {"prompt": "a cat icon"}


def test_block_inputs_merge_over_top_level_inputs() -> None:
    m = load(
        f"model: {KLING}\nprompts: [a]\ninputs: {{duration: 5, generate_audio: false}}\n"
        "jobs:\n  - inputs: {duration: 10}\n"
    )
    assert next(m.jobs()).inputs == {"prompt": "a", "duration": 10, "generate_audio": False}


def test_inherited_inputs_are_checked_against_the_block_model() -> None:
    assert error_of(
        f"model: {KLING}\nprompts: [a]\ninputs: {{duration: 5}}\njobs:\n  - model: {BANANA}\n"
    ) == (
        "sweep.yaml:3: duration: is not an input of google/nano-banana-2/text-to-image "
        "(known: prompt, num_images, aspect_ratio, resolution, output_format, safety_tolerance, "
        "limit_generations, enable_web_search)"
    )


def test_blocks_come_in_order_with_global_ordinals() -> None:
    m = load(BLOCKS)
    jobs = list(m.jobs())
    assert [j.block for j in jobs] == ["wide", "wide", "long", "long", "images", "images"]
    assert [j.ordinal for j in jobs] == list(range(6))
    assert [(b.name, b.job_count) for b in m.blocks] == [("wide", 2), ("long", 2), ("images", 2)]
    assert m.job_count == 6


def test_blocks_without_their_own_folder_get_sibling_folders_named_after_them(
    tmp_path: Path,
) -> None:
    m = load(BLOCKS)
    dirs = {j.block: j.output_dir for j in m.jobs()}
    assert dirs == {
        "wide": str(tmp_path / "out/all/wide"),
        "long": str(tmp_path / "out/all/long"),
        "images": str(tmp_path / "out/images"),
    }
    assert m.warnings == []


def test_blocks_without_any_output_dir_go_under_the_run_name(tmp_path: Path) -> None:
    m = load(
        f"name: launch\nmodel: {KLING}\nprompts: [a]\n"
        "jobs:\n  - name: hero shot\n  - name: stills\n    model: " + BANANA + "\n"
    )
    assert {j.block: j.output_dir for j in m.jobs()} == {
        "hero shot": str(tmp_path / "out/launch/hero-shot"),
        "stills": str(tmp_path / "out/launch/stills"),
    }


def test_a_block_folder_written_inside_another_blocks_folder_is_warned_about(
    tmp_path: Path,
) -> None:
    m = load(
        f"model: {KLING}\nprompts: [a]\noutput: {{dir: out/launch}}\n"
        "jobs:\n"
        "  - name: clips\n"
        "    output: {dir: out/launch}\n"
        f"  - name: stills\n    model: {BANANA}\n"
    )
    assert {j.block: j.output_dir for j in m.jobs()} == {
        "clips": str(tmp_path / "out/launch"),
        "stills": str(tmp_path / "out/launch/stills"),
    }
    assert m.warnings == [
        f"sweep.yaml:7: output.dir: block 'stills' writes into {tmp_path / 'out/launch/stills'}, "
        "inside the folder of block 'clips': a dataset loader reading that folder reads both; "
        "give the blocks sibling folders"
    ]


def test_unnamed_blocks_are_numbered() -> None:
    m = load(f"model: {KLING}\njobs:\n  - prompts: [a]\n  - prompts: [b]\n")
    assert [j.block for j in m.jobs()] == ["block-1", "block-2"]


def test_a_block_may_clear_an_inherited_grid() -> None:
    m = load(
        f"model: {KLING}\nprompts: [a]\ngrid: {{duration: [5, 10]}}\n"
        "jobs:\n  - name: one\n    grid: null\n"
    )
    assert m.job_count == 1


def test_two_blocks_with_one_name_are_an_error() -> None:
    assert error_of(f"model: {KLING}\nprompts: [a]\njobs:\n  - name: x\n  - name: x\n") == (
        "sweep.yaml:5: name: two blocks are named 'x' (first at line 4)"
    )


def test_settings_are_top_level_only() -> None:
    assert error_of(f"model: {KLING}\nprompts: [a]\njobs:\n  - concurrency: 2\n") == (
        "sweep.yaml:4: jobs[0].concurrency: 'concurrency' is only allowed at the top level, "
        "not in a block"
    )


# --- job identity -----------------------------------------------------------------------------


def keys_of(text: str) -> list[str]:
    return [j.key for j in load(text).jobs()]


def test_key_is_the_job_key_of_model_inputs_with_defaults_and_repeat() -> None:
    job = next(load(f"model: {KLING}\nprompts: [a cat]\n").jobs())
    full = {
        "prompt": "a cat",
        "negative_prompt": "blur, distort, and low quality",
        "duration": 5,
        "aspect_ratio": "16:9",
        "generate_audio": True,
    }
    assert job.key == job_key(KLING, full, 0)


def test_same_inputs_give_the_same_key_across_loads() -> None:
    text = f"model: {KLING}\nprompts: [a cat]\n"
    assert keys_of(text) == keys_of(text)


def test_writing_a_default_out_does_not_change_the_key() -> None:
    plain = keys_of(f"model: {KLING}\nprompts: [a cat]\n")
    explicit = keys_of(
        f"model: {KLING}\nprompts: [a cat]\ninputs: {{duration: 5, "
        "aspect_ratio: '16:9', generate_audio: true}\n"
    )
    assert plain == explicit


def test_a_changed_input_changes_the_key() -> None:
    five = keys_of(f"model: {KLING}\nprompts: [a cat]\ninputs: {{duration: 5}}\n")
    ten = keys_of(f"model: {KLING}\nprompts: [a cat]\ninputs: {{duration: 10}}\n")
    other_prompt = keys_of(f"model: {KLING}\nprompts: [a dog]\ninputs: {{duration: 5}}\n")
    assert len({*five, *ten, *other_prompt}) == 3


def test_the_repeat_index_changes_the_key() -> None:
    once = keys_of(f"model: {KLING}\nprompts: [a cat]\n")
    twice = keys_of(f"model: {KLING}\nprompts: [a cat]\nrepeat: 2\n")
    assert twice[0] == once[0]
    assert twice[1] != once[0]


def test_reordering_yaml_keys_does_not_change_keys() -> None:
    first = keys_of(
        f"model: {KLING}\nprompts: [a cat]\ninputs: {{duration: 10, generate_audio: false}}\n"
    )
    second = keys_of(
        f"inputs: {{generate_audio: false, duration: 10}}\nprompts: [a cat]\nmodel: {KLING}\n"
    )
    assert first == second


def test_template_variables_that_are_not_sent_do_not_change_the_key() -> None:
    via_template = keys_of(f"model: {KLING}\nprompts: ['a {{animal}}']\ngrid: {{animal: [cat]}}\n")
    written_out = keys_of(f"model: {KLING}\nprompts: [a cat]\n")
    assert via_template == written_out


# Keys are stored in users' ledgers: a key that changed would submit (and pay for) every job of
# a resumed run again. These were computed by genbatch before expansion was made faster. The
# manifest predates the published schemas (duration "10", seed for Nano Banana 2 are refused
# now): validate: false keeps it loadable, and the schemas' defaults still complete identities.
PINNED_MANIFEST = r"""name: pinned
vars: {style: "film grain", "n": 1.5}
validate: false
jobs:
  - model: kling/kling-2-6/pro/text-to-video
    prompts:
      - "un renard roux « {style} », scène {scene}"
      - "a cat\twith \"quotes\" \\ and \u00e9 \U0001F98A {scene}"
    inputs: {negative_prompt: "blur {style}", generate_audio: false}
    grid:
      duration: [5, "10"]
      scene: [1, 2.25]
    repeat: 2
  - name: images
    model: google/nano-banana-2/text-to-image
    prompts: ["a fox {n}"]
    zip:
      seed: [0, 2147483647]
      aspect_ratio: ["1:1", "16:9"]
  - name: other
    model: someone/unknown-model/v1
    prompts: ["plain"]
    inputs: {extra: {b: [1, 2.0, null, true], a: "x"}, "z": -3}
"""
PINNED_KEYS = [
    "2fb193e356812db8",
    "ebe3d8d1553fcb00",
    "215af77fe37092ca",
    "e5e3e9a74bfd7363",
    "3a04596fb0c60de5",
    "c5b652f02f4b249d",
    "addd9135b9f9d22b",
    "54bf4237fa578652",
    "233a335738243c8a",
    "7e74fa616567065b",
    "26cd0db1b8e91946",
    "bf8649db2daa4cae",
    "df4b883bf75307ef",
    "24fdefaa32c2b8e8",
    "a4051cfb13c8cbc0",
    "c02c23c9e7ef1929",
    "8e436c7c1d369928",
    "ff24aaf57007fda7",
    "4b5771c667ea0a87",
]


def test_keys_are_those_earlier_versions_stored() -> None:
    m = load(PINNED_MANIFEST)
    assert [j.key for j in m.validated_jobs()] == PINNED_KEYS
    assert [j.key for j in m.jobs()] == PINNED_KEYS


def test_each_job_carries_the_canonical_json_of_its_inputs_and_variables() -> None:
    for job in load(PINNED_MANIFEST).jobs():
        assert job.inputs_json == canonical_json(job.inputs)
        assert job.variables_json == canonical_json(job.variables)


def test_job_key_of_json_is_job_key() -> None:
    identity = {"prompt": 'é "q"', "n": [1, 2.5, None], "b": {"y": True, "x": "z"}}
    assert job_key_of_json(canonical_json(KLING), canonical_json(identity), 3) == job_key(
        KLING, identity, 3
    )


# --- output file names ------------------------------------------------------------------------


def test_output_name_template_uses_inputs_variables_and_builtins() -> None:
    name = "{index:03d}_{block}_{model}_{prompt}_{duration}_{aspect_ratio}_{tag}_{repeat}"
    m = load(f"""\
model: {KLING}
prompts: ["A Cat, at dawn!"]
grid: {{duration: [10]}}
vars: {{tag: v1}}
output:
  name: "{name}"
""")
    job = next(m.jobs())
    assert job.file_stem == (
        "000_main_kling-kling-2-6-pro-text-to-video_a-cat-at-dawn_10_16_9_v1_0"
    )


def test_file_name_values_cannot_escape_the_output_dir() -> None:
    m = load(
        f"model: {KLING}\nprompts: ['{{where}}']\ngrid: {{where: ['../../etc/passwd']}}\n"
        "output: {name: '{where}-{key}'}\n"
    )
    stem = next(m.jobs()).file_stem
    assert "/" not in stem
    assert ".." not in stem


def test_output_name_with_a_slash_is_refused() -> None:
    assert error_of(f"model: {KLING}\nprompts: [a]\noutput: {{name: 'a/{{key}}'}}\n") == (
        "sweep.yaml:3: output.name: must not contain / or \\ (a file name cannot create "
        "folders; use output.dir)"
    )


def test_output_name_with_an_unknown_field_names_its_line() -> None:
    message = error_of(
        f"model: {KLING}\nprompts: [a]\noutput:\n  dir: o\n  name: '{{indx}}-{{key}}'\n"
    )
    assert message.startswith(
        "sweep.yaml:5: output.name: unknown field {indx} (did you mean 'index'?); fields: "
    )


def test_output_name_format_that_does_not_fit_a_value_is_an_error() -> None:
    message = error_of(
        f"model: {KLING}\nprompts: ['{{a}}']\ngrid: {{a: [cat]}}\n"
        "output: {name: '{a:05d}-{key}'}\n"
    )
    assert message.startswith("sweep.yaml:4: output.name: cannot format {a} = 'cat' with ':05d'")


def test_two_jobs_writing_one_file_name_are_refused_by_validate() -> None:
    m = load(f"model: {KLING}\nprompts: [a, b]\noutput: {{name: same}}\n")
    with pytest.raises(
        ManifestError,
        match=r"job 1 has the same file name 'same' as job 0; "
        r"add \{index\} or \{key\} to output.name",
    ):
        m.validate()


def test_output_dir_defaults_to_out_and_the_run_name(tmp_path: Path) -> None:
    m = load(f"name: 'my run/../x'\nmodel: {KLING}\nprompts: [a]\n")
    assert next(m.jobs()).output_dir == str(tmp_path / "out" / "my-run_._x")


def test_output_dir_may_be_absolute(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    m = load(f"model: {KLING}\nprompts: [a]\noutput: {{dir: '{target}'}}\n")
    assert next(m.jobs()).output_dir == str(target)


# --- explosion guard and duplicates -----------------------------------------------------------


def big_grid(values: int) -> str:
    numbers = ", ".join(str(i) for i in range(values))
    return (
        f"model: {BANANA}\nprompts: ['{{a}} {{b}} {{c}}']\n"
        f"grid:\n  a: [{numbers}]\n  b: [{numbers}]\n  c: [{numbers}]\n"
    )


def test_job_count_is_computed_without_expanding() -> None:
    m = load(big_grid(40) + "max_jobs: 64000\n")
    assert m.job_count == 64_000


def test_too_many_jobs_is_an_error_saying_how_many_and_how_to_allow_it() -> None:
    assert DEFAULT_MAX_JOBS == 100_000
    assert error_of(big_grid(47)) == (
        "sweep.yaml:1: this manifest would make 103,823 jobs, more than the limit of 100,000; "
        "if that is intended, set max_jobs: 103823 in the manifest (or pass --max-jobs 103823)"
    )


def test_max_jobs_key_and_argument_raise_or_lower_the_limit() -> None:
    assert load(big_grid(47) + "max_jobs: 200000\n").job_count == 103_823
    assert load(big_grid(47), max_jobs=200_000).job_count == 103_823
    assert "more than the limit of 10" in error_of(big_grid(3), max_jobs=10)
    assert error_of(big_grid(3) + "max_jobs: 5\n").startswith(
        "sweep.yaml:7: max_jobs: this manifest would make 27 jobs, more than the limit of 5"
    )


def test_identical_jobs_are_refused_by_validate() -> None:
    m = load(f"model: {KLING}\nprompts:\n  - a cat\n  - a cat\n")
    with pytest.raises(ManifestError) as caught:
        m.validate()
    assert str(caught.value) == (
        "sweep.yaml:4: job 1 has the same model, inputs and repeat index as job 0; "
        "use repeat: for more samples of the same inputs"
    )


def test_a_variable_no_template_uses_per_prompt_makes_duplicates() -> None:
    m = load(
        f"model: {KLING}\nprompts: ['a {{animal}}', 'still life']\ngrid: {{animal: [cat, dog]}}\n"
    )
    with pytest.raises(ManifestError, match="job 3 has the same model, inputs"):
        m.validate()
