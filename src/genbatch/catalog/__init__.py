"""The models genbatch knows: their input schemas (JSON Schema documents), prices and outputs.

A model's schema comes, first match wins, from a ``schema:`` file in the manifest, from
RunComfy's catalog endpoint (cached in the ledger), or from the snapshot bundled with genbatch
(``models/``, one document per model). The manifest loader validates every job against it with
``jsonschema`` before a cent is spent; the simulator serves the same schemas and answers 422
for a body that breaks them, as the real API does.

Modules: ``price`` (prices and the cost of a job), ``validation`` (jsonschema and its errors
as one-liners), ``model`` (``ModelSchema``), ``entry`` (``CatalogEntry``, the endpoint's
answer), ``documents`` (reading a catalog entry or a schema file tolerantly), ``bundled`` (the
snapshot), ``lookup`` (finding a model by id).
"""

from __future__ import annotations

from genbatch.catalog.bundled import BUNDLED_ORIGIN, bundled_documents, bundled_models, page_slugs
from genbatch.catalog.documents import (
    input_schema_of,
    model_from_document,
    price_of,
    read_model_file,
)
from genbatch.catalog.entry import CatalogEntry
from genbatch.catalog.lookup import Catalog, find_model
from genbatch.catalog.model import ModelSchema, OutputShape, SchemaSource
from genbatch.catalog.price import Price, estimate_cost
from genbatch.catalog.validation import InputProblem, SchemaInvalid, check_schema

__all__ = [
    "BUNDLED_ORIGIN",
    "Catalog",
    "CatalogEntry",
    "InputProblem",
    "ModelSchema",
    "OutputShape",
    "Price",
    "SchemaInvalid",
    "SchemaSource",
    "bundled_documents",
    "bundled_models",
    "check_schema",
    "estimate_cost",
    "find_model",
    "input_schema_of",
    "model_from_document",
    "page_slugs",
    "price_of",
    "read_model_file",
]
