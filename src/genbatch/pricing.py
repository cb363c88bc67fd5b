"""What jobs cost: the price table of a run, and the budget check before every submit.

Prices come, by precedence, from the manifest's ``prices:``, then a ``schema:`` file that has a
price, then the API's catalog endpoint (``GET /v1/models/{model_id}``: ``base_price_usd``,
``price_unit``, as cached in the ledger, see ``model_catalog``), then the snapshot bundled with
genbatch. A model with no price anywhere costs
"unknown": it runs, but a budget cannot account for it (the run refuses to start).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from genbatch.catalog import (
    CatalogEntry,
    ModelSchema,
    Price,
    SchemaSource,
    estimate_cost,
    find_model,
)
from genbatch.client import RunComfyClient
from genbatch.model_catalog import fetch_entries

MANIFEST_PRICE = "manifest prices:"
API_PRICE = "catalog endpoint"


class _PricedModel(NamedTuple):
    price: Price | None
    output_key: str | None
    defaults: dict[str, Any]
    """The schema's defaults (``ModelSchema.defaults``), which prices depend on."""


@dataclass(frozen=True, kw_only=True)
class PriceTable:
    """Prices per model id, most specific source first (see the module docstring)."""

    manifest: Mapping[str, Price] = field(default_factory=dict)
    catalog: Mapping[str, CatalogEntry] = field(default_factory=dict)
    """The catalog endpoint's entries (cached in the ledger, or just fetched)."""
    api: Mapping[str, Price] = field(default_factory=dict)
    """Prices the catalog endpoint gave, without their entries."""
    schemas: Mapping[str, ModelSchema] = field(default_factory=dict)
    """The schema each model of the manifest was found with (its price, defaults, outputs)."""
    # What cost() needs of each model, looked up once: it runs for every job of a manifest.
    _models: dict[str, _PricedModel] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def price_of(self, model_id: str) -> Price | None:
        """The price genbatch uses for ``model_id``, or None when nothing is known."""
        return self.priced(model_id)[0]

    def priced(self, model_id: str) -> tuple[Price | None, str]:
        """The price of ``model_id`` and where it comes from (``none`` when unknown)."""
        schema = self._schema(model_id)
        if model_id in self.manifest:
            return self.manifest[model_id], MANIFEST_PRICE
        if schema is not None and schema.source is SchemaSource.MANIFEST and schema.price:
            return schema.price, schema.origin
        entry = self.catalog.get(model_id)
        if entry is not None and entry.price is not None:
            return entry.price, entry.origin
        if model_id in self.api:
            return self.api[model_id], API_PRICE
        if schema is not None and schema.price is not None:
            return schema.price, schema.origin
        bundled = find_model(model_id)
        if bundled is not None and bundled.price is not None:
            return bundled.price, bundled.origin
        return None, "none"

    def _schema(self, model_id: str) -> ModelSchema | None:
        return self.schemas.get(model_id) or find_model(model_id)

    def cost(self, model_id: str, inputs: Mapping[str, Any]) -> float | None:
        """Estimated cost of one job, or None when the model has no known price."""
        found = self._models.get(model_id)
        if found is None:
            schema = self._schema(model_id)
            found = self._models[model_id] = _PricedModel(
                self.price_of(model_id),
                schema.output.output_key if schema else None,
                dict(schema.defaults) if schema else {},
            )
        price, output_key, defaults = found
        if price is None:
            return None
        return round(estimate_cost(price, {**defaults, **inputs}, output_key), 6)


async def fetch_api_prices(client: RunComfyClient, model_ids: Iterable[str]) -> dict[str, Price]:
    """Prices the API's catalog endpoint reports; models it does not answer for are skipped."""
    fetched = await fetch_entries(client, model_ids)
    return {
        model_id: entry.price
        for model_id, entry in fetched.entries.items()
        if entry.price is not None
    }


def describe_usd(amount: float | None) -> str:
    """``$1.40``, or ``unknown``."""
    return "unknown" if amount is None else f"${amount:,.2f}"
