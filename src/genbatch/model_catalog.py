"""RunComfy's catalog as a run and a plan use it: entries fetched through the API client
(``GET /v1/models/{model_id}``, the endpoint ``runcomfy models get`` reads), cached in the
ledger, and made into the ``Catalog`` a manifest's jobs are checked against.

A model's entry is fetched once and then read from the ledger's cache: a resumed run checks
its jobs against the schema it started with, and a plan works offline. ``genbatch models
refresh`` fetches again. The catalog is optional: a failed fetch leaves the cache or the bundled
snapshot in charge, with a note, never an error.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from genbatch.catalog import (
    Catalog,
    CatalogEntry,
    ModelSchema,
    Price,
    bundled_models,
    page_slugs,
)
from genbatch.client import RunComfyClient
from genbatch.errors import ApiError, ModelNotFound, RequestGone, TransportError
from genbatch.ledger import CachedModel, Ledger
from genbatch.ledger.tables import utcnow

__all__ = [
    "CatalogLookup",
    "Fetched",
    "ModelView",
    "bundled_views",
    "cache_entries",
    "cached_entries",
    "fetch_entries",
    "list_entries",
    "list_views",
    "listed_views",
    "look_up",
    "show_view",
    "view_of",
]

LIST_PAGE = 500
"""Entries asked for per page of ``GET /v1/models`` (the most the endpoint gives)."""
MAX_LIST_PAGES = 20
"""Pages read at most when listing the whole catalog (10,000 models)."""


@dataclass(frozen=True, kw_only=True)
class Fetched:
    """What the catalog endpoint answered for some models."""

    entries: dict[str, CatalogEntry] = field(default_factory=dict)
    unknown: tuple[str, ...] = ()
    """Ids the API says it does not know."""
    failure: str | None = None
    """Why some entries could not be fetched (the first reason), None when all answered."""


async def fetch_entries(client: RunComfyClient, model_ids: Iterable[str]) -> Fetched:
    """The catalog entries of ``model_ids``, one call each; an id the API does not know is
    ``unknown``, and a network or account failure stops the asking (every call would fail
    the same way, each after its timeout)."""
    entries: dict[str, CatalogEntry] = {}
    unknown: list[str] = []
    failure: str | None = None
    for model_id in sorted(set(model_ids)):
        try:
            document = await client.model_info(model_id)
        except (ModelNotFound, RequestGone):
            unknown.append(model_id)
            continue
        except ApiError as error:
            failure = failure or str(error)
            if _stops_asking(error):
                break
            continue
        entries[model_id] = CatalogEntry(model_id=model_id, document=document, fetched_at=utcnow())
    return Fetched(entries=entries, unknown=tuple(unknown), failure=failure)


def _stops_asking(error: ApiError) -> bool:
    return isinstance(error, TransportError) or error.http_status in (401, 403)


async def list_entries(
    client: RunComfyClient, *, search: str | None = None, include_schema: bool = False
) -> list[dict[str, Any]]:
    """Every entry of the catalog (matching ``search``), page after page."""
    found: list[dict[str, Any]] = []
    for page in range(MAX_LIST_PAGES):
        answer = await client.list_models(
            search=search, limit=LIST_PAGE, offset=page * LIST_PAGE, include_schema=include_schema
        )
        models = answer.get("models")
        batch = [m for m in models if isinstance(m, dict)] if isinstance(models, list) else []
        found += batch
        total = answer.get("total")
        if not batch or (isinstance(total, int) and len(found) >= total):
            break
    return found


def cached_entries(
    ledger: Ledger, model_ids: Iterable[str] | None = None
) -> dict[str, CatalogEntry]:
    """The entries the ledger has cached for ``model_ids`` (every one when None)."""
    return {
        model_id: CatalogEntry(
            model_id=model_id, document=cached.document, fetched_at=cached.fetched_at
        )
        for model_id, cached in ledger.cached_models(model_ids).items()
    }


def cache_entries(ledger: Ledger, entries: Iterable[CatalogEntry], *, replace: bool = False) -> int:
    """Keep ``entries`` in the ledger; one already cached stays unless ``replace``. How many
    were written."""
    rows = [
        CachedModel(model_id=e.model_id, document=dict(e.document), fetched_at=e.fetched_at)
        for e in entries
    ]
    return ledger.cache_models(rows, replace=replace)


@dataclass(frozen=True, kw_only=True)
class CatalogLookup:
    """The catalog a manifest is loaded with, and what the asking found worth saying."""

    catalog: Catalog
    notes: tuple[str, ...] = ()


async def look_up(
    model_ids: Iterable[str],
    *,
    cached: Mapping[str, CatalogEntry],
    client: RunComfyClient | None,
) -> CatalogLookup:
    """The catalog for ``model_ids``: the cached entries, and the others fetched through
    ``client`` (none when None); for an id the API does not know, the ids it lists (for
    did-you-mean)."""
    wanted = set(model_ids)
    missing = sorted(wanted - set(cached))
    if client is None or not missing:
        return CatalogLookup(catalog=Catalog(entries=dict(cached)))
    fetched = await fetch_entries(client, missing)
    notes: list[str] = []
    if fetched.failure is not None:
        notes.append(
            f"the API's catalog could not be read ({fetched.failure}): schemas and prices "
            "of the models not cached come from genbatch's bundled snapshot"
        )
    listed = await _listed_ids(client) if fetched.unknown else frozenset()
    return CatalogLookup(
        catalog=Catalog(entries={**cached, **fetched.entries}, listed=listed),
        notes=tuple(notes),
    )


async def _listed_ids(client: RunComfyClient) -> frozenset[str]:
    """Every id the catalog lists, for did-you-mean; none when it cannot be listed (then
    did-you-mean looks at the bundled ids)."""
    try:
        entries = await list_entries(client)
    except ApiError:
        return frozenset()
    return frozenset(str(e["model_id"]) for e in entries if isinstance(e.get("model_id"), str))


# -- what ``genbatch models`` shows ----------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ModelView:
    """One model as ``genbatch models`` shows it: what a run would check its jobs against and
    price them at, and where each came from."""

    model_id: str
    display_name: str | None = None
    categories: tuple[str, ...] = ()
    schema: ModelSchema | None = None
    schema_source: str = "none"
    price: Price | None = None
    price_source: str = "none"
    fetched_at: datetime | None = None
    """When the catalog's entry was fetched (None: not from the catalog)."""
    cached: bool = False
    """Whether the entry comes from the ledger's cache (False: fetched now, or bundled)."""

    @property
    def source(self) -> str:
        """Where this view's entry comes from: ``catalog`` (asked now), ``cache`` (the ledger's,
        fetched earlier) or ``bundled``."""
        if self.fetched_at is None:
            return "bundled"
        return "cache" if self.cached else "catalog"

    def as_json(self) -> dict[str, Any]:
        """The view as ``--json`` prints it."""
        price = self.price
        return {
            "model_id": self.model_id,
            "source": self.source,
            "display_name": self.display_name,
            "categories": list(self.categories),
            "base_price_usd": price.base_price_usd if price else None,
            "price_unit": price.price_unit if price else None,
            "price_source": self.price_source,
            "schema_source": self.schema_source,
            "fetched_at": self.fetched_at.isoformat() if self.fetched_at else None,
            "cached": self.cached,
            "required_inputs": list(self.schema.required) if self.schema else [],
            "input_schema": dict(self.schema.input_schema) if self.schema else None,
        }


def view_of(model_id: str, entry: CatalogEntry | None, *, cached: bool = False) -> ModelView:
    """What genbatch knows of ``model_id`` from ``entry`` (the catalog's) over the bundle."""
    bundled = bundled_models().get(model_id)
    from_entry = entry.model if entry is not None else None
    schema = from_entry or bundled
    priced = _priced(entry, bundled)
    name = entry.document.get("display_name") if entry is not None else None
    categories = entry.document.get("categories") if entry is not None else None
    return ModelView(
        model_id=model_id,
        display_name=name if isinstance(name, str) else (bundled.display_name if bundled else None),
        categories=tuple(str(c) for c in categories)
        if isinstance(categories, list)
        else (bundled.categories if bundled else ()),
        schema=schema,
        schema_source=schema.origin if schema is not None else "none",
        price=priced[0],
        price_source=priced[1],
        fetched_at=entry.fetched_at if entry is not None else None,
        cached=cached and entry is not None,
    )


def _priced(entry: CatalogEntry | None, bundled: ModelSchema | None) -> tuple[Price | None, str]:
    if entry is not None and entry.price is not None:
        return entry.price, entry.origin
    if bundled is not None and bundled.price is not None:
        return bundled.price, bundled.origin
    return None, "none"


async def category_names(client: RunComfyClient | None) -> tuple[list[str], str | None]:
    """The catalog's categories, else (without a client, or when the catalog cannot be read)
    those of the bundled models; and a note on a failure."""
    if client is not None:
        try:
            return sorted(await client.model_categories()), None
        except ApiError as error:
            note = f"the API's catalog could not be read ({error}): the bundled models' categories"
            return _bundled_categories(), note
    return _bundled_categories(), None


def _bundled_categories() -> list[str]:
    return sorted({name for model in bundled_models().values() for name in model.categories})


def bundled_views(search: str | None, cached: Mapping[str, CatalogEntry]) -> list[ModelView]:
    """Every model cached or bundled, matching ``search`` (every word in its id or name)."""
    views = [
        view_of(model_id, cached.get(model_id), cached=True)
        for model_id in sorted({*cached, *bundled_models()})
    ]
    return [view for view in views if _matches(view, search)]


def _matches(view: ModelView, search: str | None) -> bool:
    text = f"{view.model_id} {view.display_name or ''}".casefold()
    return all(word in text for word in (search or "").casefold().split())


def listed_views(
    documents: Iterable[Mapping[str, Any]], cached: Mapping[str, CatalogEntry]
) -> list[ModelView]:
    """The catalog's list as views; a model the ledger has cached shows its cached entry (what
    a run would use)."""
    now = utcnow()
    views: list[ModelView] = []
    for document in documents:
        model_id = document.get("model_id")
        if not isinstance(model_id, str):
            continue
        if model_id in cached:
            views.append(view_of(model_id, cached[model_id], cached=True))
        else:
            entry = CatalogEntry(model_id=model_id, document=document, fetched_at=now)
            views.append(view_of(model_id, entry))
    return views


async def list_views(
    search: str | None, *, cached: Mapping[str, CatalogEntry], client: RunComfyClient | None
) -> tuple[list[ModelView], str | None]:
    """The catalog's models matching ``search`` (``GET /v1/models``), else, without a client or
    when the catalog cannot be read, the cached and bundled ones; and a note on a failure."""
    note = None
    if client is not None:
        try:
            documents = await list_entries(client, search=search)
        except ApiError as error:
            note = (
                f"the API's catalog could not be read ({error}): showing the models cached in "
                "the ledger and bundled with genbatch"
            )
        else:
            return listed_views(documents, cached), None
    return bundled_views(search, cached), note


async def show_view(
    written: str, *, cached: Mapping[str, CatalogEntry], client: RunComfyClient | None
) -> tuple[ModelView | None, Catalog, tuple[str, ...]]:
    """What a run would use for the model ``written`` (a page slug is read as its real id):
    its cached entry, else the catalog's (fetched now, not cached), else the bundled copy; None
    when it is known nowhere. With the catalog looked in (for did-you-mean) and notes."""
    model_id = page_slugs().get(written, written) if written not in cached else written
    lookup = await look_up([model_id], cached=cached, client=client)
    entry = lookup.catalog.entries.get(model_id)
    if entry is None and model_id not in bundled_models():
        return None, lookup.catalog, lookup.notes
    return view_of(model_id, entry, cached=model_id in cached), lookup.catalog, lookup.notes
