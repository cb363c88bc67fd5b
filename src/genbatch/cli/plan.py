"""``genbatch plan``: expand and validate a manifest (nothing submitted), and compare it with the
ledger."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass, field
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from genbatch.cli import app
from genbatch.cli.common import LEDGER_ENVIRONMENT, LEDGER_OPTION, one_line_errors
from genbatch.states import JobState

if TYPE_CHECKING:
    from genbatch.manifest import Manifest
    from genbatch.pricing import PriceTable

PLAN_CONNECT_TIMEOUT = 3.0
PLAN_READ_TIMEOUT = 10.0
"""A plan waits little for the catalog: without it, the cache and the bundle stand."""


@dataclass(kw_only=True)
class BlockOrigins:
    """Where one block's schema and price come from."""

    name: str
    model_id: str
    jobs: int
    schema_source: str
    price: str | None
    price_source: str
    space: int = 0
    """Combinations of the block's full expansion."""
    sample: SampleFacts | None = None
    done: int = 0
    """Jobs of the block already done in the ledger."""


@dataclass(kw_only=True)
class SampleFacts:
    """A sampled block's ``sample:``: N asked, the seed and the strategy."""

    n: int
    seed: int
    strategy: str


@dataclass(kw_only=True)
class PlanSummary:
    """What a run of the manifest would do, and cost (built-in and manifest prices)."""

    run: str
    jobs: int = 0
    new: int = 0
    done: int = 0
    other: int = 0
    cost_usd: float = 0.0
    cost_left_usd: float = 0.0
    unpriced_jobs: int = 0
    budget_usd: float | None = None
    warnings: list[str] = field(default_factory=list)
    blocks: list[BlockOrigins] = field(default_factory=list)


@app.command(epilog="Example: genbatch plan sweep.yaml --sample 10\n\n" + LEDGER_ENVIRONMENT)
@one_line_errors
def plan(
    manifest: Path = typer.Argument(..., metavar="MANIFEST", help="The YAML manifest."),
    ledger: str | None = LEDGER_OPTION,
    sample: int = typer.Option(
        5, "--sample", "--limit", min=0, metavar="N", help="How many jobs to show."
    ),
    show_all: bool = typer.Option(False, "--all", help="Show every job."),
    max_jobs: int | None = typer.Option(
        None, "--max-jobs", min=1, metavar="N", help="Allow manifests that expand to more jobs."
    ),
    strict: bool = typer.Option(False, "--strict", help="Unknown models are an error."),
    offline: bool = typer.Option(
        False, "--offline", help="Do not ask the API's catalog (use the ledger's cache)."
    ),
    json_output: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Expand and validate MANIFEST, and show what a run would do and what it would cost.

    Nothing is submitted. The models' schemas and prices come from the ledger's cache of
    RunComfy's catalog; models not cached are asked of the catalog when a token is set (a
    failure only makes a note), unless --offline."""
    from genbatch import batch
    from genbatch.client import Timeouts

    connection = None if offline else batch.optional_connection(None)
    found = batch.load_with_catalog(
        manifest,
        ledger=ledger,
        connection=connection,
        timeouts=Timeouts(connect=PLAN_CONNECT_TIMEOUT, read=PLAN_READ_TIMEOUT),
        max_jobs=max_jobs,
        strict_models=strict,
    )
    loaded = found.manifest
    for note in found.notes:
        print(f"genbatch: note: {note}", file=sys.stderr)
    known = _known_states(loaded, ledger)
    summary = _summarise(loaded, known)
    if json_output:
        print(json.dumps(asdict(summary)))
        return
    for warning in loaded.warnings:
        print(f"genbatch: warning: {warning}", file=sys.stderr)
    print(
        f"{loaded.name}: {summary.jobs} jobs: {summary.new} new, {summary.done} already "
        f"done, {summary.other} recorded but not done"
    )
    print(_cost_line(summary))
    for block in summary.blocks:
        price = f"{block.price} ({block.price_source})" if block.price else "unknown"
        print(
            f"  block {block.name}: {block.model_id}, {block.jobs} job(s){_sampled(block)}; "
            f"schema: {block.schema_source}; price: {price}"
        )
    shown = summary.jobs if show_all else min(sample, summary.jobs)
    if shown:
        more = "" if shown == summary.jobs else " (--limit N or --all for more)"
        print(f"showing {shown} of {summary.jobs} jobs{more}:")
    for spec in islice(loaded.jobs(), shown):
        state = known.get(spec.key, "new")
        print(
            f"  #{spec.ordinal} {spec.key} [{state}] {spec.model_id} "
            f"{json.dumps(spec.inputs, ensure_ascii=False)[:160]}"
        )


def _sampled(block: BlockOrigins) -> str:
    """`` sampled from ...`` for a block with ``sample:``, else nothing."""
    if block.sample is None:
        return ""
    asked = block.sample
    capped = f" (sample: {asked.n:,} asks for more: all of them)" if asked.n > block.space else ""
    return (
        f" sampled from a space of {block.space:,}{capped}, seed {asked.seed}, "
        f"strategy {asked.strategy}: {block.done} already done"
    )


def _cost_line(summary: PlanSummary) -> str:
    from genbatch.pricing import describe_usd

    line = (
        f"estimated cost: {describe_usd(summary.cost_usd)} for the whole manifest, "
        f"{describe_usd(summary.cost_left_usd)} left to submit"
    )
    if summary.budget_usd is not None:
        line += f" (budget {describe_usd(summary.budget_usd)})"
    if summary.unpriced_jobs:
        line += f"; {summary.unpriced_jobs} job(s) of models with no known price"
    return line


def _known_states(manifest: Manifest, given: str | None) -> dict[str, str]:
    from genbatch.ledger import Ledger, resolve_location

    location = resolve_location(given, manifest_dir=manifest.path.parent, may_create=False)
    if location.sqlite_path is not None and not location.sqlite_path.exists():
        # Planning never creates a ledger, and is meant for before the first run: every job
        # is new, and the user learns which ledger the run will use.
        print(
            f"genbatch: no ledger yet at {location.display}: every job is new",
            file=sys.stderr,
        )
        return {}
    store = Ledger.open(location)
    try:
        run = store.find_run(manifest.name)
        return {} if run is None else {k: s.value for k, s in store.states_by_key(run.id).items()}
    finally:
        store.close()


def _summarise(manifest: Manifest, known: dict[str, str]) -> PlanSummary:
    from genbatch import batch

    prices = batch.manifest_prices(manifest)
    jobs = new = done = unpriced = 0
    done_in: dict[str, int] = {}
    cost_usd = cost_left_usd = 0.0
    # The jobs are validated in the same walk that sums them up: a bad one raises here. Plain
    # local counters: this loop runs once per job, a million times for a big sweep.
    for spec in manifest.validated_jobs():
        jobs += 1
        state = known.get(spec.key)
        if state is None:
            new += 1
        elif state == JobState.DONE.value:
            done += 1
            done_in[spec.block] = done_in.get(spec.block, 0) + 1
        cost = prices.cost(spec.model_id, spec.inputs)
        if cost is None:
            unpriced += 1
        else:
            cost_usd += cost
            if state is None or state == JobState.PENDING.value:
                cost_left_usd += cost
    return PlanSummary(
        run=manifest.name,
        jobs=jobs,
        new=new,
        done=done,
        other=jobs - new - done,
        cost_usd=round(cost_usd, 2),
        cost_left_usd=round(cost_left_usd, 2),
        unpriced_jobs=unpriced,
        budget_usd=manifest.settings.budget_usd,
        warnings=list(manifest.warnings),
        blocks=_origins(manifest, prices, done_in),
    )


def _origins(manifest: Manifest, prices: PriceTable, done_in: dict[str, int]) -> list[BlockOrigins]:
    found = []
    for block in manifest.blocks:
        price, source = prices.priced(block.model_id)
        asked = block.sample
        found.append(
            BlockOrigins(
                name=block.name,
                model_id=block.model_id,
                jobs=block.job_count,
                schema_source=block.schema_source,
                price=price.describe() if price is not None else None,
                price_source=source,
                space=block.space_size,
                sample=SampleFacts(n=asked.n, seed=asked.seed, strategy=asked.strategy)
                if asked is not None
                else None,
                done=done_in.get(block.name, 0),
            )
        )
    return found
