"""``genbatch models list|show|refresh``: RunComfy's models as a run would use them, like the
official CLI's ``runcomfy models list|get``, and the ledger's cache of the API's catalog."""

from __future__ import annotations

import json
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import typer

from genbatch.cli import app
from genbatch.cli.common import LEDGER_OPTION, one_line_errors
from genbatch.errors import ApiUnreachable, UsageError

if TYPE_CHECKING:
    from genbatch import batch
    from genbatch.catalog import CatalogEntry
    from genbatch.client import RunComfyClient
    from genbatch.model_catalog import Fetched, ModelView

T = TypeVar("T")

models_app = typer.Typer(
    help="RunComfy's models: their schemas and prices, and the ledger's cache of the catalog.",
    no_args_is_help=True,
)
app.add_typer(models_app, name="models")

READ_CONNECT_TIMEOUT = 3.0
READ_READ_TIMEOUT = 15.0
"""A reading command waits little for the catalog: the cache and the bundle stand without it."""
OFFLINE = typer.Option(
    False, "--offline", help="Do not ask the API's catalog (the ledger's cache and the bundle)."
)
JSON = typer.Option(False, "--json", help="Print JSON.")


@models_app.command("list", epilog="Example: genbatch models list --search kling")
@one_line_errors
def list_models(
    search: str | None = typer.Option(None, "--search", "-s", help="Words in the id or name."),
    ledger: str | None = LEDGER_OPTION,
    offline: bool = OFFLINE,
    json_output: bool = JSON,
) -> None:
    """List the models: RunComfy's catalog when a token is set, else the models cached in the
    ledger and bundled with genbatch. Never creates a ledger."""
    from genbatch import batch
    from genbatch.model_catalog import list_views

    cached = batch.cached_catalog(ledger, manifest=None)
    views, note = _with_client(
        offline, lambda client: list_views(search, cached=cached, client=client)
    )
    if note:
        print(f"genbatch: note: {note}", file=sys.stderr)
    if json_output:
        print(json.dumps([_listed_json(v) for v in views], ensure_ascii=False))
        return
    _print_table(views)


@models_app.command(
    "show", epilog="Example: genbatch models show kling/kling-2-6/pro/text-to-video"
)
@one_line_errors
def show_model(
    model: str = typer.Argument(..., help="The model id (a page slug is read as its id)."),
    ledger: str | None = LEDGER_OPTION,
    offline: bool = OFFLINE,
    json_output: bool = JSON,
) -> None:
    """Show a model as a run would use it: its input schema and price, where each came from,
    and when the catalog's entry was fetched (the ledger's cache first, else the catalog, else
    the bundled snapshot). Never creates a ledger."""
    from genbatch import batch
    from genbatch.manifest.locations import did_you_mean
    from genbatch.model_catalog import show_view

    cached = batch.cached_catalog(ledger, manifest=None)
    view, catalog, notes = _with_client(
        offline, lambda client: show_view(model, cached=cached, client=client)
    )
    for note in notes:
        print(f"genbatch: note: {note}", file=sys.stderr)
    if view is None:
        raise UsageError(f"unknown model '{model}'{did_you_mean(model, catalog.ids())}")
    if json_output:
        print(json.dumps(view.as_json(), ensure_ascii=False))
        return
    _print_view(view)


@models_app.command("categories", epilog="Example: genbatch models categories --json")
@one_line_errors
def list_categories(offline: bool = OFFLINE, json_output: bool = JSON) -> None:
    """List the catalog's categories (RunComfy's when a token is set, else the bundled
    models')."""
    from genbatch.model_catalog import category_names

    names, note = _with_client(offline, category_names)
    if note:
        print(f"genbatch: note: {note}", file=sys.stderr)
    if json_output:
        print(json.dumps({"categories": names}, ensure_ascii=False))
        return
    for name in names:
        print(name)


@models_app.command(
    "refresh",
    epilog="Examples: genbatch models refresh; genbatch models refresh --manifest sweep.yaml",
)
@one_line_errors
def refresh_models(
    models: list[str] | None = typer.Argument(
        None, help="Model ids [default: the manifest's, else every model cached]."
    ),
    manifest: Path | None = typer.Option(
        None, "--manifest", "-m", help="Refresh this manifest's models, in its ledger."
    ),
    ledger: str | None = LEDGER_OPTION,
    api_base: str | None = typer.Option(
        None, "--api-base", metavar="URL", help="API base [default: $RUNCOMFY_API_BASE]"
    ),
) -> None:
    """Fetch models' entries from RunComfy's catalog into the ledger's cache, replacing what
    was cached: the runs and resumes that follow check their jobs against these schemas. Needs
    a token; creates the ledger where a run would (beside --manifest, else in this folder)."""
    import anyio

    from genbatch import batch
    from genbatch.ledger import open_ledger_for
    from genbatch.manifest import model_ids_of
    from genbatch.model_catalog import cache_entries

    connection = batch.resolve_connection(api_base)
    with open_ledger_for(ledger, manifest=manifest, may_create=True) as store:
        wanted = list(models or ()) or (sorted(model_ids_of(manifest)) if manifest else [])
        wanted = wanted or sorted(store.cached_models())
        if not wanted:
            raise UsageError(
                f"nothing to refresh: the ledger {store.location.display} caches no model yet; "
                "name the models, or give --manifest"
            )
        fetched = anyio.run(_fetch, connection, wanted)
        cache_entries(store, fetched.entries.values(), replace=True)
        where = store.location.display
    for entry in fetched.entries.values():
        print(f"{entry.model_id}: {_what_entry_gives(entry)}; cached in {where}")
    if fetched.failure is not None and not fetched.entries:
        raise ApiUnreachable(f"the API's catalog could not be read: {fetched.failure}")
    if fetched.failure is not None:
        print(f"genbatch: note: some entries were not fetched: {fetched.failure}", file=sys.stderr)
    if fetched.unknown:
        raise UsageError(f"the API's catalog has no model {', '.join(fetched.unknown)}")


async def _fetch(connection: batch.Connection, model_ids: list[str]) -> Fetched:
    from genbatch import batch
    from genbatch.model_catalog import fetch_entries

    async with batch.client_for(connection) as client:
        return await fetch_entries(client, model_ids)


def _what_entry_gives(entry: CatalogEntry) -> str:
    schema = "input schema" if entry.model is not None else "no input schema (bundled one stands)"
    price = entry.price.describe() if entry.price is not None else "no price"
    return f"{schema}, {price}, fetched at {entry.fetched}"


def _with_client(offline: bool, ask: Callable[[RunComfyClient | None], Awaitable[T]]) -> T:
    """``ask`` with a client of the API (None when --offline or without a token)."""
    import anyio

    from genbatch import batch
    from genbatch.client import Timeouts

    connection = None if offline else batch.optional_connection(None)

    async def asked() -> T:
        if connection is None:
            return await ask(None)
        async with batch.client_for(
            connection, timeouts=Timeouts(connect=READ_CONNECT_TIMEOUT, read=READ_READ_TIMEOUT)
        ) as client:
            return await ask(client)

    return anyio.run(asked)


def _listed_json(view: ModelView) -> dict[str, object]:
    shown = view.as_json()
    del shown["input_schema"]  # as `runcomfy models list` without --include-schema
    return shown


def _print_table(views: list[ModelView]) -> None:
    if not views:
        print("no models match")
        return
    rows = [("model", "name", "price", "from")] + [
        (
            view.model_id,
            view.display_name or "",
            view.price.describe() if view.price else "unknown",
            view.source,
        )
        for view in views
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False))
            + "  "
            + row[3]
        )


def _print_view(view: ModelView) -> None:
    price = view.price.describe() if view.price else "unknown"
    named = view.display_name not in (None, "", view.model_id)
    print(f"model      {view.model_id}" + (f"  ({view.display_name})" if named else ""))
    print(f"schema     {view.schema_source}")
    print(f"price      {price} ({view.price_source})")
    if view.fetched_at is not None:
        cached = "cached in the ledger" if view.cached else "fetched now, not cached"
        print(f"fetched at {view.fetched_at.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC ({cached})")
    if view.schema is not None:
        print(f"required   {', '.join(view.schema.required) or '-'}")
        print("input schema:")
        print(json.dumps(dict(view.schema.input_schema), indent=2, ensure_ascii=False))
