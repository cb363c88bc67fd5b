"""A job: one generation request, as the manifest describes it, with a stable identity."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

KEY_LENGTH = 16


# One encoder for every call: json.dumps builds a new one per call when given options.
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no spaces: equal values give equal text."""
    return _CANONICAL.encode(value)


def job_key(model_id: str, identity_inputs: Mapping[str, Any], repeat_index: int) -> str:
    """The stable identity of a job: a hash of its model, canonical inputs and repeat index.

    ``identity_inputs`` are the inputs completed with the schema's defaults, so that writing a
    default out explicitly in the manifest does not make a job new.
    """
    text = canonical_json({"model": model_id, "inputs": identity_inputs, "repeat": repeat_index})
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:KEY_LENGTH]


@dataclass(frozen=True, kw_only=True)
class JobSpec:
    """One job expanded from a manifest, before it meets the ledger."""

    key: str
    """Stable identity (see ``job_key``)."""
    ordinal: int
    """Position in the manifest's expansion order, from 0."""
    block: str
    """Name of the job block it comes from."""
    model_id: str
    inputs: dict[str, Any]
    """Exactly the JSON body that is POSTed."""
    variables: dict[str, Any] = field(default_factory=dict)
    """Template variables and grid axes of this job, for file names, reports and the gallery."""
    repeat_index: int = 0
    file_stem: str
    """Output file name without extension, rendered from the template and sanitised."""
    output_dir: str
    """Absolute directory the outputs go to."""
    source_line: int | None = None
    """Line of the manifest the job comes from, for error messages."""
