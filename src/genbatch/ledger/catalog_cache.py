"""The API's catalog entries cached in the ledger (``catalog_models``): read, added, replaced.

Adding keeps an entry already cached (a resumed run keeps the schema it started with);
replacing is what ``genbatch models refresh`` does. One ``INSERT ... ON CONFLICT`` each, which
SQLite and PostgreSQL both speak.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, select

from genbatch.ledger.leases import aware
from genbatch.ledger.records import CachedModel
from genbatch.ledger.statements import insert_on_conflict
from genbatch.ledger.tables import CATALOG_MODELS

__all__ = ["cached_models", "store_models"]


def cached_models(
    conn: Connection, model_ids: Iterable[str] | None = None
) -> dict[str, CachedModel]:
    """The cached entries of ``model_ids`` (every entry when None), by id; an entry whose JSON
    is unreadable is skipped, as if never fetched."""
    query = select(CATALOG_MODELS).order_by(CATALOG_MODELS.c.model_id)
    if model_ids is not None:
        query = query.where(CATALOG_MODELS.c.model_id.in_(sorted(set(model_ids))))
    found: dict[str, CachedModel] = {}
    for row in conn.execute(query):
        document = _document(row.document)
        if document is not None:
            found[row.model_id] = CachedModel(
                model_id=row.model_id, document=document, fetched_at=aware(row.fetched_at)
            )
    return found


def _document(text: str) -> dict[str, Any] | None:
    try:
        document = json.loads(text)
    except ValueError:
        return None
    return document if isinstance(document, dict) else None


def store_models(conn: Connection, models: Iterable[CachedModel], *, replace: bool = False) -> int:
    """Cache ``models``; those already cached are kept unless ``replace``. How many were
    written. Workers starting together may cache the same entry at once: the statement itself
    settles it (``ON CONFLICT``), never a unique-key error."""
    rows = [
        {
            "model_id": model.model_id,
            "document": json.dumps(model.document, sort_keys=True),
            "fetched_at": model.fetched_at,
        }
        for model in {model.model_id: model for model in models}.values()
    ]
    if not rows:
        return 0
    statement = insert_on_conflict(conn, CATALOG_MODELS).values(rows)
    if replace:
        statement = statement.on_conflict_do_update(
            index_elements=[CATALOG_MODELS.c.model_id],
            set_={
                "document": statement.excluded.document,
                "fetched_at": statement.excluded.fetched_at,
            },
        )
    else:
        statement = statement.on_conflict_do_nothing(index_elements=[CATALOG_MODELS.c.model_id])
    # Rows returned, not rowcount: a driver may batch the insert and report -1.
    return len(conn.execute(statement.returning(CATALOG_MODELS.c.model_id)).all())
