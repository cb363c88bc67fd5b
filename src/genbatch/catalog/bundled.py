"""The snapshot of RunComfy's catalog bundled with genbatch: one JSON document per model in
``models/``, with the model's real id, its page slugs, its input schema (whatever of it is
known) and its price when one is known."""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from importlib import resources
from typing import Any

from genbatch.catalog.documents import model_from_document
from genbatch.catalog.model import ModelSchema, SchemaSource

__all__ = ["BUNDLED_ORIGIN", "bundled_documents", "bundled_models", "page_slugs"]

BUNDLED_ORIGIN = "bundled with genbatch"


@cache
def bundled_documents() -> Mapping[str, Mapping[str, Any]]:
    """Every bundled document by model id, in id order."""
    folder = resources.files("genbatch.catalog").joinpath("models")
    documents: dict[str, Mapping[str, Any]] = {}
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".json"):
            document = json.loads(entry.read_text(encoding="utf-8"))
            documents[document["model_id"]] = document
    return dict(sorted(documents.items()))


@cache
def bundled_models() -> Mapping[str, ModelSchema]:
    """Every bundled model by id."""
    found: dict[str, ModelSchema] = {}
    for model_id, document in bundled_documents().items():
        model = model_from_document(
            model_id, document, source=SchemaSource.BUNDLED, origin=BUNDLED_ORIGIN
        )
        assert model is not None, f"the bundled document of {model_id} has no input schema"
        found[model_id] = model
    return found


@cache
def page_slugs() -> Mapping[str, str]:
    """A model page's URL slug -> the model's real id, where the two differ."""
    return {
        slug: model_id
        for model_id, document in bundled_documents().items()
        for slug in document.get("page_slugs", ())
    }
