"""``genbatch plan``: expand and validate a manifest, offline, and compare it with the ledger."""

from __future__ import annotations

import json
import sys
from itertools import islice
from pathlib import Path

import typer

from genbatch import batch
from genbatch.cli import app
from genbatch.cli.common import LEDGER_OPTION, one_line_errors
from genbatch.ledger import Ledger, resolve_location
from genbatch.manifest import Manifest
from genbatch.states import JobState


@app.command(epilog="Example: genbatch plan sweep.yaml --sample 10")
@one_line_errors
def plan(
    manifest: Path = typer.Argument(..., help="The YAML manifest."),
    ledger: str | None = LEDGER_OPTION,
    sample: int = typer.Option(5, "--sample", min=0, help="How many jobs to show."),
    max_jobs: int | None = typer.Option(None, "--max-jobs", min=1,
                                        help="Allow manifests that expand to more jobs."),
    strict: bool = typer.Option(False, "--strict", help="Unknown models are an error."),
    json_output: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Expand and validate MANIFEST without any network call; show what a run would do."""
    loaded = batch.open_manifest(manifest, max_jobs=max_jobs, strict_models=strict)
    known = _known_states(loaded, ledger)
    summary = _summarise(loaded, known)
    if json_output:
        print(json.dumps(summary))
        return
    for warning in loaded.warnings:
        print(f"genbatch: warning: {warning}", file=sys.stderr)
    print(f"{loaded.name}: {summary['jobs']} jobs: {summary['new']} new, "
          f"{summary['done']} already done, {summary['other']} recorded but not done")
    for spec in islice(loaded.jobs(), sample):
        state = known.get(spec.key, "new")
        print(f"  #{spec.ordinal} {spec.key} [{state}] {spec.model_id} "
              f"{json.dumps(spec.inputs, ensure_ascii=False)[:160]}")


def _known_states(manifest: Manifest, given: str | None) -> dict[str, str]:
    location = resolve_location(given)
    if location.sqlite_path is not None and not location.sqlite_path.exists():
        return {}  # planning never creates a ledger
    store = Ledger.open(location)
    try:
        run = store.find_run(manifest.name)
        return {} if run is None else {k: s.value for k, s in store.states_by_key(run.id).items()}
    finally:
        store.close()


def _summarise(manifest: Manifest, known: dict[str, str]) -> dict[str, object]:
    total = new = done = 0
    for spec in manifest.jobs():
        total += 1
        state = known.get(spec.key)
        new += state is None
        done += state == JobState.DONE.value
    return {"run": manifest.name, "jobs": total, "new": new, "done": done,
            "other": total - new - done, "warnings": list(manifest.warnings)}
