"""``CatalogEntry``: one model as RunComfy's catalog endpoint (``GET /v1/models/{model_id}``)
described it, and when: its input schema (read tolerantly, see ``documents``) and its price."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

from genbatch.catalog.bundled import bundled_models
from genbatch.catalog.documents import model_from_document, price_of
from genbatch.catalog.model import ModelSchema, OutputShape, SchemaSource
from genbatch.catalog.price import Price

__all__ = ["CatalogEntry"]


@dataclass(frozen=True, kw_only=True)
class CatalogEntry:
    """The catalog's answer for ``model_id``, fetched at ``fetched_at`` (as cached in the
    ledger). It may hold no schema (then the bundled one stands) or no price."""

    model_id: str
    document: Mapping[str, Any] = field(repr=False)
    fetched_at: datetime

    @property
    def fetched(self) -> str:
        """When it was fetched, for people: ``2026-05-06 07:08:09 UTC``."""
        return f"{self.fetched_at.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"

    @property
    def origin(self) -> str:
        """Where a schema or price from this entry comes from, for people."""
        return f"catalog, fetched at {self.fetched}"

    @cached_property
    def model(self) -> ModelSchema | None:
        """The model this entry describes, or None when it holds no input schema."""
        return model_from_document(
            self.model_id,
            self.document,
            source=SchemaSource.CATALOG,
            origin=self.origin,
            fetched_at=self.fetched_at.isoformat(),
            shape=self._shape,
        )

    @cached_property
    def price(self) -> Price | None:
        """``base_price_usd`` per ``price_unit``, when the entry gives them."""
        return price_of(self.document, self._shape.audio_multiplier)

    @property
    def _shape(self) -> OutputShape:
        # The catalog says nothing of outputs: genbatch's own notes on the model, else a guess.
        bundled = bundled_models().get(self.model_id)
        return bundled.output if bundled is not None else OutputShape.guess(self.model_id)
