"""What jobs cost: the price table of a run, and the budget check before every submit.

Prices come, by precedence, from the manifest's ``prices:``, then the API's catalog endpoint
(``GET /v1/models/{model_id}``: ``base_price_usd``, ``price_unit``) when it answers, then the
prices built into genbatch's catalog. A model with no price anywhere costs "unknown": it runs,
but a budget cannot account for it (the run says so).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from genbatch.catalog import ModelSpec, Price, estimate_cost, find_model
from genbatch.client import RunComfyClient
from genbatch.errors import ApiError


class _PricedModel(NamedTuple):
    price: Price | None
    spec: ModelSpec | None
    defaults: dict[str, Any]
    """The schema's defaults (``ModelSpec.with_defaults``), which prices depend on."""


@dataclass(frozen=True, kw_only=True)
class PriceTable:
    """Prices per model id, most specific source first."""

    manifest: Mapping[str, Price] = field(default_factory=dict)
    api: Mapping[str, Price] = field(default_factory=dict)
    # What cost() needs of each model, looked up once: it runs for every job of a manifest.
    _models: dict[str, _PricedModel] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def price_of(self, model_id: str) -> Price | None:
        """The price genbatch uses for ``model_id``, or None when nothing is known."""
        if model_id in self.manifest:
            return self.manifest[model_id]
        if model_id in self.api:
            return self.api[model_id]
        spec = find_model(model_id)
        return spec.price if spec else None

    def cost(self, model_id: str, inputs: Mapping[str, Any]) -> float | None:
        """Estimated cost of one job, or None when the model has no known price."""
        found = self._models.get(model_id)
        if found is None:
            spec = find_model(model_id)
            found = self._models[model_id] = _PricedModel(
                self.price_of(model_id), spec, spec.with_defaults({}) if spec else {}
            )
        price, spec, defaults = found
        if price is None:
            return None
        return round(estimate_cost(price, {**defaults, **inputs}, spec), 6)

    def with_api_prices(self, prices: Mapping[str, Price]) -> PriceTable:
        """This table with prices read from the API's catalog endpoint."""
        return PriceTable(manifest=self.manifest, api={**self.api, **prices})


async def fetch_api_prices(client: RunComfyClient, model_ids: Iterable[str]) -> dict[str, Price]:
    """Prices the API's catalog endpoint reports; models it does not answer for are skipped."""
    found: dict[str, Price] = {}
    for model_id in sorted(set(model_ids)):
        try:
            info = await client.model_info(model_id)
        except ApiError:
            continue  # the endpoint is optional: built-in prices stand
        price = _price_from_catalog(model_id, info)
        if price is not None:
            found[model_id] = price
    return found


def _price_from_catalog(model_id: str, info: Mapping[str, Any]) -> Price | None:
    base = info.get("base_price_usd")
    if not isinstance(base, int | float) or isinstance(base, bool) or base < 0:
        return None
    unit = str(info.get("price_unit") or "request").lower()
    spec = find_model(model_id)
    audio = spec.audio_multiplier if spec else 1.0
    return Price(base_price_usd=float(base), price_unit=unit, audio_multiplier=audio)


def describe_usd(amount: float | None) -> str:
    """``$1.40``, or ``unknown``."""
    return "unknown" if amount is None else f"${amount:,.2f}"
