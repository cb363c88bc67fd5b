"""The simulated catalog: ``GET /v1/models`` (paged, ``search``, ``category``,
``include_schema``), ``GET /v1/models/categories`` and ``GET /v1/models/{model_id}``, in the
shape the official CLI reads (``model_id``, ``display_name``, ``categories``, ``base_price_usd``,
``price_unit``), the input schema under ``input_schema``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from genbatch.catalog import ModelSchema

__all__ = ["MAX_PAGE", "categories", "entry", "page"]

MAX_PAGE = 500
"""The largest ``limit`` the list accepts."""


def entry(model: ModelSchema, *, include_schema: bool = True) -> dict[str, Any]:
    """One model's catalog entry."""
    answer: dict[str, Any] = {
        "model_id": model.model_id,
        "display_name": model.display_name or model.model_id,
        "categories": list(model.categories),
        "base_price_usd": model.price.base_price_usd if model.price else None,
        "price_unit": model.price.price_unit if model.price else None,
        "required_inputs": list(model.required),
        "page_url": f"https://www.runcomfy.com/models/{model.model_id}",
    }
    if include_schema:
        answer["input_schema"] = dict(model.input_schema)
        if not model.complete:
            # genbatch's own mark, not the API's: a bundled schema copied in part from a model
            # page must not refuse the inputs it leaves out once read back from this catalog.
            answer["complete_schema"] = False
    return answer


def page(
    models: Mapping[str, ModelSchema],
    *,
    limit: int,
    offset: int,
    search: str | None,
    category: str | None,
    include_schema: bool,
) -> dict[str, Any]:
    """``{"models": [...], "total": N}``: the matching models in id order, ``limit`` from
    ``offset``; ``total`` counts every match."""
    matches = [
        model
        for model_id, model in sorted(models.items())
        if _matches(model, search) and (category is None or category in model.categories)
    ]
    chosen = matches[offset : offset + limit]
    return {
        "models": [entry(m, include_schema=include_schema) for m in chosen],
        "total": len(matches),
    }


def _matches(model: ModelSchema, search: str | None) -> bool:
    if not search:
        return True
    words = search.casefold().split()
    text = f"{model.model_id} {model.display_name or ''}".casefold()
    return all(word in text for word in words)


def categories(models: Mapping[str, ModelSchema]) -> list[str]:
    """Every category of the catalog, sorted."""
    return sorted({c for model in models.values() for c in model.categories})
