"""``genbatch show``: everything the ledger knows about one job."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from genbatch.cli import app
from genbatch.cli.common import LEDGER_ENVIRONMENT, LEDGER_OPTION, one_line_errors
from genbatch.cli.selection import one_run, reading_ledger, run_of_manifest
from genbatch.errors import UsageError
from genbatch.export import cost_share, iso

if TYPE_CHECKING:
    from genbatch.ledger import AttemptRecord, JobOutputs, JobRecord, Ledger
    from genbatch.ratings import Rating


EPILOG = """Examples:

  genbatch show c323668a                 a job by its key, or a unique prefix of it

  genbatch show '#3' sweep.yaml --json   the fourth job of sweep.yaml's run
"""

# Remote errors and user prompts are printed to a terminal: strip escape sequences and other
# control characters so that no text can drive the terminal.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


@app.command(epilog=EPILOG + "\n" + LEDGER_ENVIRONMENT)
@one_line_errors
def show(
    job: str = typer.Argument(
        ..., metavar="JOB", help="Job key, unique key prefix, or #INDEX (manifest order)."
    ),
    manifest: Path | None = typer.Argument(
        None,
        metavar="MANIFEST",
        help="Look only in this manifest's run [#INDEX: default the run updated last].",
    ),
    ledger: str | None = LEDGER_OPTION,
    json_output: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Show one job: inputs, variables, state, every attempt and every output file."""
    with reading_ledger(ledger, manifest) as store:
        found = _find(store, job, manifest)
        item = store.job_outputs(job_id=found.id)[0]
        attempts = store.attempts(found.id)
    document = job_document(item, attempts)
    if json_output:
        print(json.dumps(document, ensure_ascii=False))
        return
    print(_clean("\n".join(_text_lines(document))))


def job_document(item: JobOutputs, attempts: list[AttemptRecord]) -> dict[str, Any]:
    """One job as a JSON-ready object (the shape of ``show --json``)."""
    job = item.job
    return {
        "run": item.run_name,
        "key": job.key,
        "index": job.ordinal,
        "block": job.block,
        "repeat": job.repeat_index,
        "model_id": job.model_id,
        "state": job.state.value,
        "error": job.error,
        "in_manifest": item.in_manifest,
        "request_id": job.request_id,
        "inputs": job.inputs,
        "variables": job.variables,
        "cost_usd": _job_cost(item),
        "created_at": iso(item.created_at),
        "updated_at": iso(item.updated_at),
        "finished_at": iso(item.finished_at),
        "output_dir": job.output_dir,
        "attempts": [_attempt(a) for a in attempts],
        "outputs": [
            {
                "position": o.position,
                "url": o.url,
                "path": o.path,
                "size": o.size,
                "sha256": o.sha256,
                "rating": _rating(item.ratings.get(o.position)),
            }
            for o in item.outputs
        ],
    }


def _rating(rating: Rating | None) -> dict[str, Any] | None:
    if rating is None:
        return None
    return {
        "verdict": rating.verdict.value if rating.verdict else None,
        "stars": rating.stars,
        "note": rating.note,
        "rated_at": iso(rating.rated_at),
        "rated_by": rating.rated_by,
    }


def _find(store: Ledger, selector: str, manifest: Path | None) -> JobRecord:
    if selector.startswith("#"):
        if not selector[1:].isdigit():
            raise UsageError(f"JOB: '{selector}' is not #INDEX (e.g. #0)")
        run = one_run(store, manifest)
        found = store.find_jobs(ordinal=int(selector[1:]), run_id=run.id)
        if not found:
            raise UsageError(f"the run '{run.name}' has no job {selector}")
        return found[0]
    if not selector:
        raise UsageError("JOB: give a job key, a prefix of one, or #INDEX")
    run_id = run_of_manifest(store, manifest).id if manifest is not None else None
    found = store.find_jobs(key_prefix=selector, run_id=run_id)
    if not found:
        raise UsageError(f"no job's key starts with '{selector}'")
    if len(found) > 1:
        # find_jobs stops at 10: so many may mean more.
        count = f"{len(found)} or more" if len(found) == 10 else str(len(found))
        shown = ", ".join(f"{j.key} (#{j.ordinal})" for j in found[:5])
        more = ", ..." if len(found) > 5 else ""
        raise UsageError(
            f"'{selector}' matches {count} jobs: {shown}{more}; give more of the key, or the "
            "manifest"
        )
    return found[0]


def _attempt(attempt: AttemptRecord) -> dict[str, Any]:
    return {
        "number": attempt.number,
        "request_id": attempt.request_id,
        "outcome": attempt.outcome,
        "remote_status": attempt.remote_status,
        "intent_at": iso(attempt.intent_at),
        "accepted_at": iso(attempt.accepted_at),
        "finished_at": iso(attempt.finished_at),
        "error": attempt.error,
    }


def _job_cost(item: JobOutputs) -> float | None:
    share = cost_share(item)
    return None if share is None else round(share * max(1, len(item.outputs)), 6)


def _text_lines(doc: dict[str, Any]) -> list[str]:
    cost = "unknown" if doc["cost_usd"] is None else f"${doc['cost_usd']:,.2f}"
    lines = [
        f"job {doc['key']}  #{doc['index']}  run {doc['run']}  block {doc['block']}  "
        f"repeat {doc['repeat']}" + ("" if doc["in_manifest"] else "  (retired)"),
        f"  model     {doc['model_id']}  (catalog price {cost})",
        f"  state     {doc['state']}" + (f": {doc['error']}" if doc["error"] else ""),
        f"  created   {doc['created_at']}",
        f"  updated   {doc['updated_at']}",
        f"  finished  {doc['finished_at'] or '-'}",
        "inputs",
    ]
    lines += [f"  {name}: {_value(value)}" for name, value in doc["inputs"].items()]
    if doc["variables"]:
        lines.append("variables")
        lines += [f"  {name}: {_value(value)}" for name, value in doc["variables"].items()]
    lines.append(f"attempts ({len(doc['attempts'])})")
    lines += [line for attempt in doc["attempts"] for line in _attempt_lines(attempt)]
    lines.append(f"outputs ({len(doc['outputs'])})")
    lines += [line for output in doc["outputs"] for line in _output_lines(output)]
    return lines


def _attempt_lines(attempt: dict[str, Any]) -> list[str]:
    remote = f" (remote: {attempt['remote_status']})" if attempt["remote_status"] else ""
    lines = [
        f"  {attempt['number']}. {attempt['outcome']}{remote}  request "
        f"{attempt['request_id'] or '-'}",
        f"     sent {attempt['intent_at']}  accepted {attempt['accepted_at'] or '-'}  "
        f"finished {attempt['finished_at'] or '-'}",
    ]
    if attempt["error"]:
        lines.append(f"     error: {attempt['error']}")
    return lines


def _output_lines(output: dict[str, Any]) -> list[str]:
    size = "-" if output["size"] is None else f"{output['size']:,} bytes"
    return [
        f"  {output['position']}. {output['path'] or '(not downloaded)'}",
        f"     {size}  sha256 {output['sha256'] or '-'}",
        f"     url {output['url']}",
        *_rating_lines(output["rating"]),
    ]


def _rating_lines(rating: dict[str, Any] | None) -> list[str]:
    if rating is None:
        return []
    parts = [rating["verdict"] or "no verdict"]
    if rating["stars"]:
        parts.append("★" * rating["stars"] + f" ({rating['stars']}/5)")
    by = f" by {rating['rated_by']}" if rating["rated_by"] else ""
    lines = [f"     rated {', '.join(parts)}{by} at {rating['rated_at']}"]
    if rating["note"]:
        lines.append(f"     note {rating['note']}")
    return lines


def _value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _clean(text: str) -> str:
    return _CONTROL.sub("?", text)
