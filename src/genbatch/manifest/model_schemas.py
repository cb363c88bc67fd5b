"""Which schema a block's jobs are checked against: its ``schema:`` file, else the catalog's
(cached in the ledger), else the bundled snapshot; None when there is none anywhere."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from genbatch.catalog import (
    Catalog,
    ModelSchema,
    SchemaInvalid,
    SchemaSource,
    check_schema,
    find_model,
    model_from_document,
)
from genbatch.manifest.locations import Source
from genbatch.manifest.reading import read_named_file

__all__ = ["MAX_SCHEMA_FILE_BYTES", "resolve_model"]

MAX_SCHEMA_FILE_BYTES = 4 * 1024 * 1024
"""The largest schema file read (a model page's schema is a few KiB)."""


def resolve_model(
    model_id: str,
    catalog: Catalog,
    schema_file: str | None,
    *,
    where: Source | None,
    base_dir: Path,
) -> ModelSchema | None:
    """The schema of ``model_id``, first match wins: ``schema_file``, the catalog, the bundle."""
    if schema_file is not None and where is not None:
        return read_schema_file(model_id, schema_file, where=where, base_dir=base_dir)
    return catalog.find(model_id)


def read_schema_file(model_id: str, written: str, *, where: Source, base_dir: Path) -> ModelSchema:
    """The schema in the JSON file ``written`` (relative to the manifest's folder).

    The file may be the schema itself (``{"type": "object", "properties": ...}``) or a whole
    model document (``{"model_id": ..., "input_schema": ...}``, with a price if it has one).
    """
    document = _json_document(written, where, base_dir)
    named = document.get("model_id")
    if isinstance(named, str) and named != model_id:
        raise where.error(
            f"'{written}' is the schema of '{named}', not of '{model_id}'", field="schema"
        )
    bundled = find_model(model_id)
    model = model_from_document(
        model_id,
        document,
        source=SchemaSource.MANIFEST,
        origin=f"schema file {written}",
        shape=bundled.output if bundled is not None else None,
    )
    if model is None:
        raise where.error(
            f"'{written}' holds no input schema: expected a JSON Schema object with "
            '"properties" (the model page\'s "Input schema"), alone or under "input_schema"',
            field="schema",
        )
    try:
        check_schema(model.input_schema)
    except SchemaInvalid as why:
        raise where.error(
            f"'{written}' is not a valid JSON Schema: {why}", field="schema"
        ) from None
    return model


def _json_document(written: str, where: Source, base_dir: Path) -> dict[str, Any]:
    path = base_dir / os.path.expanduser(written)
    raw = read_named_file(
        path, written, where, limit=MAX_SCHEMA_FILE_BYTES, kind="schema", field="schema"
    )
    try:
        document = json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as error:
        raise where.error(f"'{written}' is not JSON: {error}", field="schema") from None
    if not isinstance(document, dict):
        raise where.error(f"'{written}' must hold a JSON object", field="schema")
    return document
