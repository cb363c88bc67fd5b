"""The manifest: a YAML file describing a batch of generations, loaded into jobs.

    load_manifest(path) -> Manifest        read, check, count; raises ManifestError
    model_ids_of(path) -> set[str]          the models it names (to ask the API's catalog)
    Manifest.jobs() -> Iterator[JobSpec]    lazy expansion in a deterministic order
    Manifest.validate()                     expand and check every job once

Modules: ``yaml_loader`` (safe YAML with lines), ``schema`` (the keys and their types),
``prompts`` (prompt lists and files), ``templates``, ``variants`` (``{a|b}`` and ``__name__`` in
prompts) and ``wildcards`` (their files), ``blocks`` (inheritance and checks made once per block),
``sweep`` (what variants and ``sample:`` add to a block), ``sampling`` (drawing from a block's
space), ``expand`` (blocks into jobs), ``settings`` (run-wide knobs), ``manifest`` (the API).
The format is documented in docs/manifest.md.
"""

from __future__ import annotations

from genbatch.manifest.manifest import BlockSummary, Manifest, load_manifest, model_ids_of
from genbatch.manifest.settings import DEFAULT_MAX_JOBS, ManifestSettings, parse_size

__all__ = [
    "DEFAULT_MAX_JOBS",
    "BlockSummary",
    "Manifest",
    "ManifestSettings",
    "load_manifest",
    "model_ids_of",
    "parse_size",
]
