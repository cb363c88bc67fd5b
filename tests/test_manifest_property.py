"""Whatever the file holds, loading a manifest either works or raises a one-line ManifestError.

Examples per property: 350 by default (over 1,000 manifests a run), 5,000 with
``HYPOTHESIS_PROFILE=thorough`` (profiles in conftest.py).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from genbatch.catalog import find_model
from genbatch.errors import ManifestError
from genbatch.jobs import JobSpec, canonical_json, job_key
from genbatch.manifest import load_manifest

VALID = """\
model: kling/kling-2-6/pro/text-to-video
name: night
concurrency: 4
vars: {style: noir}
prompts:
  - "a {animal} at {time_of_day}, {style}"
  - "a sleepy {animal}"
grid:
  animal: [cat, dog]
  time_of_day: [dawn, dusk]
zip:
  aspect_ratio: ["16:9", "9:16"]
repeat: 2
output: {dir: out/x, name: "{index:05d}-{animal}-{key}"}
jobs:
  - name: wide
    inputs: {duration: 5, generate_audio: false}
    grid: {animal: [owl], time_of_day: [noon]}
  - name: images
    model: google/nano-banana-2/text-to-image
    prompts: {file: prompts.txt}
    grid: {animal: [cat, dog]}
    zip: null
"""

PROMPTS = "a {animal}\na small {animal}\n"

KEYS = [
    "model",
    "name",
    "concurrency",
    "inputs",
    "vars",
    "prompts",
    "grid",
    "zip",
    "repeat",
    "output",
    "jobs",
    "max_jobs",
    "strict",
    "validate",
    "schema",
    "prompt_field",
    "allowed_hosts",
    "max_file_size",
    "max_attempts",
    "budget_usd",
    "dir",
    "file",
    "column",
    "field",
    "prompt",
    "duration",
    "aspect_ratio",
    "seed",
    "animal",
]
MODELS = [
    "kling/kling-2-6/pro/text-to-video",
    "google/nano-banana-2/text-to-image",
    "bytedance/seedream-4-0/text-to-image",
    "bytedance/seedance-1-0/pro/fast/text-to-video",
    "acme/x/y",
    "bad model",
    "",
]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 20),
    st.floats(allow_nan=False, width=32),
    st.sampled_from(MODELS),
    st.sampled_from(
        ["{animal}", "{", "}", "16:9", "no", "2GiB", "prompts.txt", "a {x:05d}", "{{}}", "../.."]
    ),
    st.text(max_size=12),
)
values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.sampled_from(KEYS), children, max_size=4),
    ),
    max_leaves=25,
)
documents = st.dictionaries(st.sampled_from(KEYS), values, min_size=1, max_size=8)


@st.composite
def mutated(draw: st.DrawFn) -> str:
    """The valid manifest with a few characters deleted, replaced or inserted."""
    text = VALID
    for _ in range(draw(st.integers(1, 4))):
        position = draw(st.integers(0, len(text)))
        insert = draw(
            st.sampled_from(
                [
                    "",
                    ":",
                    "-",
                    " ",
                    "\t",
                    "{",
                    "}",
                    "[",
                    "]",
                    "&a",
                    "*a",
                    "\n",
                    "'",
                    '"',
                    "!!",
                    "#",
                    "\x00",
                    "é",
                    "\ufeff",
                ]
            )
        )
        cut = draw(st.integers(0, 3))
        text = text[:position] + insert + text[position + cut :]
    return text


def check_loads_or_fails_cleanly(text: str | bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "m.yaml"
        if isinstance(text, str):
            path.write_text(text, encoding="utf-8", errors="surrogatepass")
        else:
            path.write_bytes(text)
        (Path(folder) / "prompts.txt").write_text(PROMPTS, encoding="utf-8")
        try:
            manifest = load_manifest(path, max_jobs=500)
            manifest.validate()
            for job in manifest.jobs():
                assert job.file_stem
                assert_identity_is_canonical(job)
        except ManifestError as error:
            assert "\n" not in str(error)


def assert_identity_is_canonical(job: JobSpec) -> None:
    """The texts expansion assembles from parts are exactly the canonical JSON of the job."""
    model = find_model(job.model_id)
    identity = model.with_defaults(job.inputs) if model else job.inputs
    assert job.key == job_key(job.model_id, identity, job.repeat_index)
    assert job.inputs_json == canonical_json(job.inputs)
    assert job.variables_json == canonical_json(job.variables)


PROPERTY = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(mutated())
def test_a_mutated_manifest_loads_or_raises_manifest_error(text: str) -> None:
    check_loads_or_fails_cleanly(text)


@PROPERTY
@given(documents)
def test_a_random_document_loads_or_raises_manifest_error(document: dict[str, Any]) -> None:
    check_loads_or_fails_cleanly(yaml.safe_dump(document, allow_unicode=True))


@PROPERTY
@given(st.binary(max_size=200))
def test_random_bytes_load_or_raise_manifest_error(raw: bytes) -> None:
    check_loads_or_fails_cleanly(raw)


def test_the_unmutated_manifest_is_valid() -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "m.yaml"
        path.write_text(VALID, encoding="utf-8")
        (Path(folder) / "prompts.txt").write_text(PROMPTS, encoding="utf-8")
        assert load_manifest(path).validate() == 2 * 1 * 2 * 2 + 2 * 2 * 2


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_the_cli_answers_any_mutated_manifest_with_a_plan_or_one_line_and_exit_2(text: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "m.yaml"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        (Path(folder) / "prompts.txt").write_text(PROMPTS, encoding="utf-8")
        done = subprocess.run(
            [sys.executable, "-m", "genbatch", "plan", str(path), "--json", "--max-jobs", "500"],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode in (0, 2), done.stderr
    assert "Traceback" not in done.stderr
    if done.returncode == 2:
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
