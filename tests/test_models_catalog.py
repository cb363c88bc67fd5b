"""Every bundled RunComfy model: planned with its real id, checked against its published input
schema (JSON Schema), run against the simulator; pasted schemas; ids mistyped or page slugs."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from genbatch.catalog import (
    CatalogEntry,
    ModelSchema,
    SchemaSource,
    bundled_models,
    model_from_document,
)
from genbatch.errors import ManifestError
from genbatch.manifest import Manifest, load_manifest
from genbatch.simulator import Simulator

from support import cli_env, genbatch, run_args

MODELS = bundled_models()
IMAGE = "https://images.example.com/cat.png"
THE_MODELS = [
    "kling/kling-2-6/pro/text-to-video",
    "kling/kling-2-6/pro/image-to-video",
    "wan-ai/wan-2-6/text-to-video",
    "wan-ai/wan-2-6/image-to-video",
    "wan-ai/wan-2-6/flash/image-to-video",
    "wan-ai/wan-2-6/image-to-image",
    "bytedance/seedance-1-0/pro/image-to-video",
    "bytedance/seedance-1-0/lite/image-to-video",
    "bytedance/seedance-1-0/pro/fast/text-to-video",
    "bytedance/seedance-v1.5-pro/image-to-video",
    "google/nano-banana/pro/text-to-image",
    "google/nano-banana/pro/edit",
    "google/nano-banana-2/text-to-image",
    "google/nano-banana-2/edit",
    "imagineart/imagineart-1.5-preview/text-to-image",
    "bytedance/seedream-4-0/text-to-image",
    "bytedance/seedream-4-0/edit",
    "blackforestlabs/flux-2/dev/text-to-image",
    "blackforestlabs/flux-2/dev/edit",
]


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def load(text: str, files: dict[str, str] | None = None) -> Manifest:
    for name, content in (files or {}).items():
        Path(name).write_text(content, encoding="utf-8")
    Path("sweep.yaml").write_text(text, encoding="utf-8")
    manifest = load_manifest("sweep.yaml")
    manifest.validate()
    return manifest


def error_of(text: str, files: dict[str, str] | None = None) -> str:
    with pytest.raises(ManifestError) as caught:
        load(text, files)
    message = str(caught.value)
    assert "\n" not in message
    return message


def media_inputs(model_id: str) -> dict[str, Any]:
    """A public image URL under each required media input of ``model_id``."""
    model = MODELS[model_id]
    found: dict[str, Any] = {}
    for name in model.required:
        spec = model.fields[name]
        if spec.get("type") == "array":
            found[name] = [IMAGE]
        elif spec.get("format") == "uri":
            found[name] = IMAGE
    return found


def block_of(model_id: str, **extra: Any) -> str:
    inputs = {**media_inputs(model_id), **extra}
    return f"model: {model_id}\nprompts: [a red fox]\ninputs: {json.dumps(inputs)}\n"


def test_the_bundled_snapshot_holds_every_model_of_the_contract_with_its_real_id() -> None:
    assert sorted(MODELS) == sorted(THE_MODELS)


def test_the_kling_schema_is_the_seed_pages_exactly() -> None:
    seed = Path(__file__).parents[2] / "shared/model-schemas/kling-2-6-pro-text-to-video.json"
    if seed.exists():
        published = json.loads(seed.read_text())["input_schema"]
        assert MODELS["kling/kling-2-6/pro/text-to-video"].input_schema == published


@pytest.mark.parametrize("model_id", THE_MODELS)
def test_each_model_plans_with_its_real_id(model_id: str) -> None:
    manifest = load(block_of(model_id))
    [job] = manifest.jobs()
    assert job.model_id == model_id
    assert job.inputs[MODELS[model_id].text_field] == "a red fox"
    assert [b.schema_source for b in manifest.blocks] == ["bundled with genbatch"]


@pytest.mark.parametrize("model_id", THE_MODELS)
def test_each_model_refuses_a_missing_required_input_in_one_line(model_id: str) -> None:
    text_field = MODELS[model_id].text_field
    media = media_inputs(model_id)
    if media:
        missing = next(iter(media))
        assert error_of(f"model: {model_id}\nprompts: [a red fox]\n") == (
            f"sweep.yaml:1: {missing}: is required by {model_id}; add inputs: {{{missing}: ...}}"
        )
    assert error_of(f"model: {model_id}\ninputs: {json.dumps(media)}\n") == (
        f"sweep.yaml:1: {text_field}: is required by {model_id}; add prompts:"
    )


@pytest.mark.parametrize("model_id", THE_MODELS)
def test_each_model_refuses_a_value_outside_its_schema_in_one_line(model_id: str) -> None:
    model = MODELS[model_id]
    enum = next(((n, s) for n, s in model.fields.items() if "enum" in s), None)
    if enum is not None:
        name, spec = enum
        wrong = 7 if spec.get("type") == "integer" else "nope"
        message = error_of(block_of(model_id, **{name: wrong}))
        assert message == (
            f"sweep.yaml:3: {name}: {wrong} is not one of {', '.join(map(str, spec['enum']))}"
        )
    else:
        inputs = {**media_inputs(model_id), model.text_field: 5}
        message = error_of(f"model: {model_id}\ninputs: {json.dumps(inputs)}\n")
        assert message == f"sweep.yaml:2: {model.text_field}: 5 is not a string"


def test_nano_banana_2_takes_resolution_auto_and_21_9_and_defaults_to_auto() -> None:
    model = MODELS["google/nano-banana-2/text-to-image"]
    assert model.defaults["aspect_ratio"] == "auto"
    manifest = load(
        "model: google/nano-banana-2/text-to-image\nprompts: [x]\n"
        "grid:\n  aspect_ratio: [auto, '21:9']\n  resolution: [0.5K, 4K]\n"
    )
    assert manifest.validate() == 4


def test_a_media_input_must_be_a_public_https_url() -> None:
    model_id = "wan-ai/wan-2-6/image-to-video"
    assert error_of(block_of(model_id, img_url="http://example.com/a.png")) == (
        "sweep.yaml:3: img_url: http://example.com/a.png is not a public https:// URL "
        "(the API fetches inputs itself)"
    )


def test_a_list_input_is_checked_item_by_item_and_for_its_size() -> None:
    model_id = "blackforestlabs/flux-2/dev/edit"
    assert error_of(block_of(model_id, image_urls=[IMAGE, "file:///etc/passwd"])).startswith(
        "sweep.yaml:3: image_urls[1]: file:///etc/passwd is not a public https:// URL"
    )
    assert error_of(block_of(model_id, image_urls=[IMAGE] * 4)) == (
        "sweep.yaml:3: image_urls: has 4 items, more than 3"
    )


def test_prompts_fill_text_where_the_schema_has_no_prompt() -> None:
    manifest = load("model: bytedance/seedance-1-0/pro/fast/text-to-video\nprompts: [a fox]\n")
    assert next(manifest.jobs()).inputs == {"text": "a fox"}


def test_a_block_may_name_the_field_its_prompts_fill() -> None:
    manifest = load(
        "model: kling/kling-2-6/pro/text-to-video\nprompts: [a fox]\n"
        "inputs: {prompt: a scene}\nprompt_field: negative_prompt\n"
    )
    assert next(manifest.jobs()).inputs == {"negative_prompt": "a fox", "prompt": "a scene"}
    assert error_of(
        "model: kling/kling-2-6/pro/text-to-video\nprompts: [a fox]\nprompt_field: negativ\n"
    ).startswith("sweep.yaml:3: prompt_field: 'negativ' is not an input of")


SCHEMA = {
    "type": "object",
    "required": ["prompt", "style"],
    "properties": {
        "prompt": {"type": "string"},
        "style": {"type": "string", "enum": ["ink", "oil"]},
        "steps": {"type": "integer", "minimum": 1, "maximum": 50, "default": 20},
    },
}


def test_a_pasted_schema_validates_a_model_genbatch_has_never_heard_of() -> None:
    files = {"dream.json": json.dumps({"input_schema": SCHEMA, "base_price_usd": 0.02})}
    text = "model: acme/dream/v1\nschema: dream.json\nprompts: [a fox]\ninputs: {style: ink}\n"
    manifest = load(text, files)
    assert [b.schema_source for b in manifest.blocks] == ["schema file dream.json"]
    assert next(manifest.jobs()).inputs == {"prompt": "a fox", "style": "ink"}
    assert error_of(text.replace("ink", "pastel"), files) == (
        "sweep.yaml:4: style: pastel is not one of ink, oil"
    )
    assert error_of(text.replace("{style: ink}", "{style: ink, steps: 99}"), files) == (
        "sweep.yaml:4: steps: 99 is more than the maximum 50"
    )
    assert error_of(text.replace("{style: ink}", "{}"), files) == (
        "sweep.yaml:1: style: is required by acme/dream/v1; add inputs: {style: ...}"
    )


def test_a_bare_schema_file_works_and_a_broken_one_is_one_line() -> None:
    text = "model: acme/dream/v1\nschema: dream.json\nprompts: [a fox]\ninputs: {style: oil}\n"
    assert load(text, {"dream.json": json.dumps(SCHEMA)}).validate() == 1
    broken = {**SCHEMA, "properties": {"style": {"type": "colour"}}}
    assert error_of(text, {"dream.json": json.dumps(broken)}).startswith(
        "sweep.yaml:2: schema: 'dream.json' is not a valid JSON Schema: "
    )
    assert error_of(text, {"dream.json": "{nope"}).startswith(
        "sweep.yaml:2: schema: 'dream.json' is not JSON"
    )
    other = json.dumps({"model_id": "acme/other/v1", "input_schema": SCHEMA})
    assert error_of(text, {"dream.json": other}) == (
        "sweep.yaml:2: schema: 'dream.json' is the schema of 'acme/other/v1', not of "
        "'acme/dream/v1'"
    )


# --- through the command line ---------------------------------------------------------------

Run = Callable[..., Any]


def test_a_mistyped_id_exits_2_with_did_you_mean(tmp_path: Path, simulator: Simulator) -> None:
    (tmp_path / "sweep.yaml").write_text("model: wan-ai/wan-2-6/text-to-vidoe\nprompts: [x]\n")
    done = genbatch(["plan", "sweep.yaml"], env=cli_env(simulator, tmp_path / "l.db"), cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "genbatch: error: sweep.yaml:1: model: unknown model 'wan-ai/wan-2-6/text-to-vidoe' "
        "(did you mean 'wan-ai/wan-2-6/text-to-video'?); paste its input schema from its API "
        "page into a JSON file and name it under schema:, or set validate: false to send the "
        "inputs unchecked"
    ]


def test_plan_prints_where_each_schema_and_price_came_from(
    tmp_path: Path, simulator: Simulator
) -> None:
    (tmp_path / "dream.json").write_text(json.dumps(SCHEMA))
    (tmp_path / "sweep.yaml").write_text(
        "prices:\n  google/nano-banana-2/text-to-image: {base_price_usd: 0.05, price_unit: image}\n"
        "jobs:\n"
        "  - {name: clips, model: kling/kling-2-6/pro/text-to-video, prompts: [a]}\n"
        "  - {name: stills, model: google/nano-banana-2/text-to-image, prompts: [a]}\n"
        "  - {name: dream, model: acme/dream/v1, schema: dream.json, prompts: [a],"
        " inputs: {style: ink}}\n"
        "  - {name: wan, model: wan-ai/wan-2-6/text-to-video, prompts: [a]}\n"
    )
    env = cli_env(simulator, tmp_path / "l.db")
    done = genbatch(["plan", "sweep.yaml", "--offline"], env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert [line for line in done.stdout.splitlines() if line.startswith("  block ")] == [
        "  block clips: kling/kling-2-6/pro/text-to-video, 1 job(s); schema: bundled with "
        "genbatch; price: $0.07/second (bundled with genbatch)",
        "  block stills: google/nano-banana-2/text-to-image, 1 job(s); schema: bundled with "
        "genbatch; price: $0.05/image (manifest prices:)",
        "  block dream: acme/dream/v1, 1 job(s); schema: schema file dream.json; price: unknown",
        "  block wan: wan-ai/wan-2-6/text-to-video, 1 job(s); schema: bundled with genbatch; "
        "price: unknown",
    ]
    plan = ["plan", "sweep.yaml", "--offline", "--json"]
    blocks = json.loads(genbatch(plan, env=env, cwd=tmp_path).stdout)
    assert blocks["blocks"][0]["schema_source"] == "bundled with genbatch"
    assert blocks["blocks"][1]["price_source"] == "manifest prices:"
    assert simulator.stats.calls["catalog"] == 0  # --offline asks nothing


# --- schemas from the API's catalog, cached in the ledger -----------------------------------

DREAM = "acme/dream/v1"
FETCHED = re.compile(r"catalog, fetched at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC")


def served(schema: dict[str, Any], price: float) -> ModelSchema:
    """A model genbatch does not bundle, as a simulator's catalog serves it."""
    document = {"input_schema": schema, "base_price_usd": price, "price_unit": "image"}
    model = model_from_document(DREAM, document, source=SchemaSource.CATALOG, origin="test")
    assert model is not None
    return model


def dream_manifest(folder: Path, style: str = "ink") -> Path:
    path = folder / "dream.yaml"
    path.write_text(
        f"model: {DREAM}\nprompts: [a fox]\ninputs: {{style: {style}}}\noutput: {{dir: out}}\n"
    )
    return path


def block_lines(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if line.startswith("  block ")]


@pytest.mark.parametrize(
    "document",
    [
        {"input_schema": SCHEMA},
        {"schema": SCHEMA},
        {"schema": {"input": SCHEMA, "output": {"type": "object"}}},
        {"inputs": SCHEMA},
        {"inputs": {**SCHEMA, "required": ["prompt"]}, "required_inputs": ["style"]},
    ],
)
def test_a_catalog_entry_gives_its_schema_under_any_of_the_keys_the_contract_names(
    document: dict[str, Any],
) -> None:
    entry = CatalogEntry(model_id=DREAM, document=document, fetched_at=datetime.now(UTC))
    assert entry.model is not None
    assert entry.model.source is SchemaSource.CATALOG
    assert sorted(entry.model.required) == ["prompt", "style"]
    assert entry.model.problems({"prompt": "x", "style": "pastel"})[0].field == "style"


@pytest.mark.parametrize(
    "document",
    [
        {},
        {"input_schema": "see the page"},
        {"schema": {"input": [1, 2]}},
        {"inputs": ["prompt", "style"], "required_inputs": "prompt"},
        {"base_price_usd": "cheap", "price_unit": 7},
    ],
)
def test_a_catalog_entry_without_a_readable_schema_gives_none_and_never_crashes(
    document: dict[str, Any],
) -> None:
    entry = CatalogEntry(model_id=DREAM, document=document, fetched_at=datetime.now(UTC))
    assert entry.model is None and entry.price is None
    assert load(block_of("kling/kling-2-6/pro/text-to-video")).validate() == 1


def test_plan_reads_a_model_genbatch_does_not_bundle_from_the_catalog(
    tmp_path: Path, make_simulator: Callable[..., Simulator]
) -> None:
    sim = make_simulator(extra_models=(served(SCHEMA, 0.02),))
    env = cli_env(sim, tmp_path / "l.db")
    dream_manifest(tmp_path)

    done = genbatch(["plan", "dream.yaml"], env=env, cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    [line] = block_lines(done.stdout)
    assert FETCHED.sub("CATALOG", line) == (
        f"  block main: {DREAM}, 1 job(s); schema: CATALOG; price: $0.02/image (CATALOG)"
    )
    dream_manifest(tmp_path, style="pastel")
    refused = genbatch(["plan", "dream.yaml"], env=env, cwd=tmp_path)
    assert refused.returncode == 2
    assert refused.stderr.splitlines() == [
        "genbatch: error: dream.yaml:3: style: pastel is not one of ink, oil"
    ]


def test_a_run_caches_the_catalog_and_its_resumes_and_plans_keep_it_even_offline(
    tmp_path: Path, make_simulator: Callable[..., Simulator]
) -> None:
    first = make_simulator(extra_models=(served(SCHEMA, 0.02),))
    manifest = dream_manifest(tmp_path)
    ran = genbatch(run_args(manifest), env=cli_env(first, tmp_path / "l.db"), cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    planned = genbatch(["plan", "dream.yaml"], env=cli_env(first, tmp_path / "l.db"), cwd=tmp_path)
    [started_with] = block_lines(planned.stdout)
    assert "schema: catalog, fetched at" in started_with and "$0.02/image" in started_with

    # The catalog changed since (a new style, a new price): the ledger keeps what the run used.
    pastel = {**SCHEMA, "properties": {**SCHEMA["properties"], "style": {"enum": ["pastel"]}}}
    later = make_simulator(extra_models=(served(pastel, 0.05),))
    env = cli_env(later, tmp_path / "l.db")
    again = genbatch(["plan", "dream.yaml"], env=env, cwd=tmp_path)
    assert block_lines(again.stdout) == [started_with]
    offline = {**env, "RUNCOMFY_API_BASE": "http://127.0.0.1:9", "RUNCOMFY_TOKEN": ""}
    assert block_lines(genbatch(["plan", "dream.yaml"], env=offline, cwd=tmp_path).stdout) == [
        started_with
    ]
    assert later.stats.calls["catalog"] == 0
    resumed = genbatch(run_args(manifest), env=env, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert later.stats.submissions == 0  # done already: nothing sent, nothing fetched


def test_a_catalog_that_cannot_be_reached_leaves_the_bundle_in_charge_with_a_note(
    tmp_path: Path, simulator: Simulator
) -> None:
    (tmp_path / "sweep.yaml").write_text(block_of("kling/kling-2-6/pro/text-to-video"))
    env = {**cli_env(simulator, tmp_path / "l.db"), "RUNCOMFY_API_BASE": "http://127.0.0.1:9"}

    done = genbatch(["plan", "sweep.yaml"], env=env, cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    assert "schema: bundled with genbatch" in block_lines(done.stdout)[0]
    [note] = [line for line in done.stderr.splitlines() if "note:" in line]
    assert note.startswith("genbatch: note: the API's catalog could not be read (")
    assert simulator.token not in done.stdout + done.stderr


def test_plan_without_a_token_reads_no_catalog_and_says_nothing_of_it(
    tmp_path: Path, simulator: Simulator
) -> None:
    (tmp_path / "sweep.yaml").write_text(block_of("kling/kling-2-6/pro/text-to-video"))
    env = {
        **cli_env(simulator, tmp_path / "l.db"),
        "RUNCOMFY_TOKEN": "",
        "RUNCOMFY_CONFIG_DIR": str(tmp_path / "no-login"),
    }

    done = genbatch(["plan", "sweep.yaml"], env=env, cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    assert "schema: bundled with genbatch" in block_lines(done.stdout)[0]
    assert "note:" not in done.stderr
    assert simulator.stats.calls["catalog"] == 0


def test_a_mistyped_id_gets_a_did_you_mean_over_the_ids_the_catalog_lists(
    tmp_path: Path, make_simulator: Callable[..., Simulator]
) -> None:
    sim = make_simulator(extra_models=(served(SCHEMA, 0.02),))
    (tmp_path / "sweep.yaml").write_text("model: acme/dream/v2\nprompts: [x]\n")

    done = genbatch(["plan", "sweep.yaml"], env=cli_env(sim, tmp_path / "l.db"), cwd=tmp_path)

    assert done.returncode == 2
    assert "unknown model 'acme/dream/v2' (did you mean 'acme/dream/v1'?)" in done.stderr


def test_a_manifest_of_every_model_runs_against_the_simulator(
    tmp_path: Path, make_simulator: Callable[..., Simulator]
) -> None:
    sim = make_simulator(time_scale=0.0005)
    blocks = "".join(
        f"  - model: {model_id}\n    inputs: {json.dumps(media_inputs(model_id))}\n"
        for model_id in THE_MODELS
    )
    (tmp_path / "sweep.yaml").write_text(
        f"prompts: [a red fox]\noutput: {{dir: out}}\nconcurrency: 8\njobs:\n{blocks}"
    )
    done = genbatch(
        run_args(tmp_path / "sweep.yaml"), env=cli_env(sim, tmp_path / "l.db"), cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert sim.stats.submissions == len(THE_MODELS)
    assert sim.stats.rejected_submissions == 0
    assert sorted({r.model_id for r in sim.records.values()}) == sorted(THE_MODELS)


# --- genbatch models list | show | refresh --------------------------------------------------


def test_models_list_searches_the_catalog_without_creating_a_ledger(
    tmp_path: Path, make_simulator: Callable[..., Simulator]
) -> None:
    sim = make_simulator(extra_models=(served(SCHEMA, 0.02),))
    env = cli_env(sim, tmp_path / "l.db")

    done = genbatch(["models", "list", "--search", "acme dream", "--json"], env=env, cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    [listed] = json.loads(done.stdout)
    assert (listed["model_id"], listed["source"], listed["base_price_usd"]) == (
        DREAM,
        "catalog",
        0.02,
    )
    table = genbatch(["models", "list", "--search", "kling"], env=env, cwd=tmp_path).stdout
    assert table.splitlines()[0].split() == ["model", "name", "price", "from"]
    assert [line.split()[0] for line in table.splitlines()[1:]] == [
        "kling/kling-2-6/pro/image-to-video",
        "kling/kling-2-6/pro/text-to-video",
    ]
    assert not (tmp_path / "l.db").exists()


def test_models_categories_lists_the_catalogs_and_offline_the_bundled_ones(
    tmp_path: Path, make_simulator: Callable[..., Simulator]
) -> None:
    document = {"input_schema": SCHEMA, "categories": ["3d"], "base_price_usd": 0.02}
    model = model_from_document(DREAM, document, source=SchemaSource.CATALOG, origin="test")
    assert model is not None
    env = cli_env(make_simulator(extra_models=(model,)), tmp_path / "l.db")

    online = genbatch(["models", "categories", "--json"], env=env, cwd=tmp_path)
    offline = genbatch(["models", "categories", "--offline"], env=env, cwd=tmp_path)

    assert online.returncode == 0, online.stderr
    assert "3d" in json.loads(online.stdout)["categories"]
    assert "text-to-video" in offline.stdout.split() and "3d" not in offline.stdout.split()
    assert not (tmp_path / "l.db").exists()


def test_models_list_offline_lists_the_bundled_models(tmp_path: Path, simulator: Simulator) -> None:
    env = cli_env(simulator, tmp_path / "l.db")

    done = genbatch(["models", "list", "--offline", "--json"], env=env, cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    listed = json.loads(done.stdout)
    assert [m["model_id"] for m in listed] == sorted(THE_MODELS)
    assert {m["source"] for m in listed} == {"bundled"}
    assert simulator.stats.calls["catalog"] == 0


def test_models_show_gives_schema_price_and_where_they_came_from(
    tmp_path: Path, make_simulator: Callable[..., Simulator]
) -> None:
    sim = make_simulator(extra_models=(served(SCHEMA, 0.02),))
    env = cli_env(sim, tmp_path / "l.db")

    shown = json.loads(genbatch(["models", "show", DREAM, "--json"], env=env, cwd=tmp_path).stdout)
    text = genbatch(["models", "show", DREAM], env=env, cwd=tmp_path).stdout

    assert shown["input_schema"] == SCHEMA and shown["required_inputs"] == ["prompt", "style"]
    assert (shown["source"], shown["cached"], shown["price_unit"]) == ("catalog", False, "image")
    assert FETCHED.match(shown["schema_source"]) and shown["fetched_at"]
    assert [FETCHED.sub("CATALOG", line) for line in text.splitlines()[:3]] == [
        f"model      {DREAM}",
        "schema     CATALOG",
        "price      $0.02/image (CATALOG)",
    ]
    assert "(fetched now, not cached)" in text
    slug = genbatch(
        ["models", "show", "google/nano-banana-pro/edit", "--offline", "--json"],
        env=env,
        cwd=tmp_path,
    )
    assert json.loads(slug.stdout)["model_id"] == "google/nano-banana/pro/edit"
    mistyped = genbatch(["models", "show", "acme/dream/v2"], env=env, cwd=tmp_path)
    assert mistyped.returncode == 2
    assert mistyped.stderr.splitlines() == [
        "genbatch: error: unknown model 'acme/dream/v2' (did you mean 'acme/dream/v1'?)"
    ]


def test_models_refresh_replaces_the_cached_entry_and_the_next_run_uses_it(
    tmp_path: Path, make_simulator: Callable[..., Simulator]
) -> None:
    first = make_simulator(extra_models=(served(SCHEMA, 0.02),))
    manifest = dream_manifest(tmp_path)
    assert (
        genbatch(run_args(manifest), env=cli_env(first, tmp_path / "l.db"), cwd=tmp_path).returncode
        == 0
    )
    pastel = {
        **SCHEMA,
        "properties": {**SCHEMA["properties"], "style": {"enum": ["ink", "pastel"]}},
    }
    later = make_simulator(extra_models=(served(pastel, 0.05),))
    env = cli_env(later, tmp_path / "l.db")
    dream_manifest(tmp_path, style="pastel")
    assert (
        genbatch(["plan", "dream.yaml"], env=env, cwd=tmp_path).returncode == 2
    )  # cached: ink, oil

    refreshed = genbatch(["models", "refresh", "--manifest", "dream.yaml"], env=env, cwd=tmp_path)

    assert refreshed.returncode == 0, refreshed.stderr
    [line] = refreshed.stdout.splitlines()
    assert line.startswith(f"{DREAM}: input schema, $0.05/image, fetched at ")
    shown = json.loads(genbatch(["models", "show", DREAM, "--json"], env=env, cwd=tmp_path).stdout)
    assert (shown["source"], shown["base_price_usd"]) == ("cache", 0.05)
    ran = genbatch(run_args(manifest), env=env, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert later.stats.submissions == 1


def test_models_refresh_needs_a_token_and_something_to_refresh(
    tmp_path: Path, simulator: Simulator
) -> None:
    env = cli_env(simulator, tmp_path / "l.db")
    nothing = genbatch(["models", "refresh"], env=env, cwd=tmp_path)
    assert nothing.returncode == 2
    assert "nothing to refresh" in nothing.stderr
    unknown = genbatch(["models", "refresh", "acme/none/v1"], env=env, cwd=tmp_path)
    assert unknown.returncode == 2
    assert unknown.stderr.splitlines() == [
        "genbatch: error: the API's catalog has no model acme/none/v1"
    ]
    no_token = {**env, "RUNCOMFY_TOKEN": "", "RUNCOMFY_CONFIG_DIR": str(tmp_path / "none")}
    refused = genbatch(["models", "refresh", DREAM], env=no_token, cwd=tmp_path)
    assert refused.returncode == 2 and "no API token" in refused.stderr


# --- media inputs from prompt files ---------------------------------------------------------

I2V = "wan-ai/wan-2-6/image-to-video"
CAT, DOG = "https://images.example.com/cat.png", "https://images.example.com/dog.png"


def test_a_csv_column_fills_an_image_input_per_row() -> None:
    files = {"stills.csv": f"prompt,image\nthe cat turns,{CAT}\n,{DOG}\nthe dog runs,{DOG}\n"}
    manifest = load(
        f"model: {I2V}\nprompts: {{file: stills.csv, inputs: {{img_url: image}}}}\n"
        "grid:\n  seed: [1, 2]\n",
        files,
    )
    assert [
        (j.inputs["prompt"], j.inputs["img_url"], j.inputs["seed"]) for j in manifest.jobs()
    ] == [
        ("the cat turns", CAT, 1),
        ("the cat turns", CAT, 2),
        ("the dog runs", DOG, 1),  # the row with no prompt is skipped, its image too
        ("the dog runs", DOG, 2),
    ]


def test_a_media_cell_that_is_not_a_public_https_url_is_one_line_at_its_row() -> None:
    files = {"stills.csv": f"prompt,img_url\nthe cat turns,{CAT}\nthe dog runs,/home/me/dog.png\n"}
    text = f"model: {I2V}\nprompts: {{file: stills.csv, inputs: [img_url]}}\n"
    assert error_of(text, files) == (
        "stills.csv:3: img_url: /home/me/dog.png is not a public https:// URL (the API fetches "
        "inputs itself)"
    )
    assert error_of(text, {"stills.csv": f"prompt,img_url\nthe cat turns,{CAT}\nthe dog,\n"}) == (
        "stills.csv:3: img_url: has no value; every row with a prompt needs one"
    )
    assert error_of(text, {"stills.csv": f"prompt,image\nthe cat turns,{CAT}\n"}) == (
        "stills.csv:1: img_url: no column 'img_url' (columns: prompt, image)"
    )
    assert error_of(f"model: {I2V}\nprompts: {{file: stills.csv}}\n", files) == (
        f"sweep.yaml:1: img_url: is required by {I2V}; add inputs: {{img_url: ...}}"
    )


def test_a_list_input_is_a_bar_separated_csv_cell_checked_for_its_size() -> None:
    model_id = "blackforestlabs/flux-2/dev/edit"
    text = f"model: {model_id}\nprompts: {{file: edits.csv, inputs: [image_urls]}}\n"
    manifest = load(text, {"edits.csv": f"prompt,image_urls\nmerge them,{CAT}|{DOG}\n"})
    assert next(manifest.jobs()).inputs["image_urls"] == [CAT, DOG]
    four = "|".join([CAT] * 4)
    assert error_of(text, {"edits.csv": f"prompt,image_urls\nmerge them,{four}\n"}) == (
        "edits.csv:2: image_urls: has 4 items, more than 3"
    )


def test_a_jsonl_field_fills_an_input_as_written_and_a_csv_cell_takes_the_schemas_type() -> None:
    model_id = "google/nano-banana-2/edit"
    line = json.dumps({"prompt": "merge them", "images": [CAT, DOG]})
    manifest = load(
        f"model: {model_id}\nprompts: {{file: edits.jsonl, inputs: {{image_urls: images}}}}\n",
        {"edits.jsonl": line + "\n"},
    )
    assert next(manifest.jobs()).inputs["image_urls"] == [CAT, DOG]
    kling = load(
        "model: kling/kling-2-6/pro/text-to-video\n"
        "prompts: {file: shots.csv, inputs: [duration, generate_audio]}\n",
        {"shots.csv": "prompt,duration,generate_audio\na fox,10,false\n"},
    )
    assert next(kling.jobs()).inputs == {"prompt": "a fox", "duration": 10, "generate_audio": False}


def test_an_edited_image_column_makes_a_different_manifest() -> None:
    text = f"model: {I2V}\nprompts: {{file: stills.csv, inputs: [img_url]}}\n"
    before = load(text, {"stills.csv": f"prompt,img_url\nthe cat turns,{CAT}\n"})
    after = load(text, {"stills.csv": f"prompt,img_url\nthe cat turns,{DOG}\n"})
    assert before.digest != after.digest
    assert next(before.jobs()).key != next(after.jobs()).key


def test_the_image_to_video_example_plans_and_runs_against_the_simulator(tmp_path: Path) -> None:
    examples = Path(__file__).parents[1] / "examples"
    for name in ("image-to-video.yaml", "prompts/stills.csv"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text((examples / name).read_text())
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNCOMFY_", "GENBATCH_"))}
    planned = genbatch(["plan", "image-to-video.yaml"], env=env, cwd=tmp_path)
    assert planned.returncode == 0, planned.stderr
    assert planned.stdout.startswith("animate-stills: 4 jobs: 4 new")
    ran = genbatch(["run", "image-to-video.yaml", "--simulate"], env=env, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert len(list((tmp_path / "out" / "animate-stills" / "simulated").glob("*.mp4"))) == 4
