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


def job_key_of_json(model_json: str, identity_json: str, repeat_index: int) -> str:
    """``job_key`` from JSON already encoded: ``model_json`` is ``canonical_json(model_id)`` and
    ``identity_json`` is ``canonical_json(identity_inputs)``; the key is the same byte for byte.

    Expanding a manifest encodes each job's inputs once and reuses the text here.
    """
    # The text canonical_json gives the dict of job_key: its keys sorted, no spaces.
    text = f'{{"inputs":{identity_json},"model":{model_json},"repeat":{repeat_index}}}'
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:KEY_LENGTH]


# Not frozen: a frozen dataclass's __init__ costs three times as much, and a million-job
# manifest builds a million of these. Nothing changes a JobSpec once built.
@dataclass(kw_only=True, slots=True)
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
    inputs_json: str | None = field(default=None, repr=False)
    """``canonical_json(inputs)`` when the expansion already has it (the ledger stores it)."""
    variables_json: str | None = field(default=None, repr=False)
    """``canonical_json(variables)`` likewise."""
