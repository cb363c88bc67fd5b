"""Finding a model by id: in what the catalog endpoint said (cached), else the bundled snapshot;
with the page-slug forms of ids and a did-you-mean over every id known."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from genbatch.catalog.bundled import bundled_models, page_slugs
from genbatch.catalog.entry import CatalogEntry
from genbatch.catalog.model import ModelSchema

__all__ = ["Catalog", "find_model"]


@dataclass(frozen=True, kw_only=True)
class Catalog:
    """The models genbatch can look up: ``entries`` (the catalog endpoint's answers, as cached
    in the ledger or just fetched) over the bundled snapshot.

    ``listed`` are ids the catalog endpoint listed (for did-you-mean), with or without schemas.
    """

    entries: Mapping[str, CatalogEntry] = field(default_factory=dict)
    listed: frozenset[str] = frozenset()

    def find(self, model_id: str) -> ModelSchema | None:
        """The schema of ``model_id``: the catalog's, else the bundled one, else None."""
        entry = self.entries.get(model_id)
        found = entry.model if entry is not None else None
        return found or bundled_models().get(model_id)

    def real_id(self, written: str) -> str | None:
        """The real id of a model written in a page-slug form, or None when it is not one."""
        if written in self.entries or written in bundled_models():
            return None
        return page_slugs().get(written)

    def ids(self) -> Iterable[str]:
        """Every model id known, for did-you-mean."""
        return sorted({*self.listed, *self.entries, *bundled_models()})


def find_model(model_id: str) -> ModelSchema | None:
    """The bundled schema of ``model_id``, or None when genbatch bundles no such model."""
    return bundled_models().get(model_id)
