"""The manifest: a YAML file describing a batch of generations, loaded into jobs.

    load_manifest(path) -> Manifest        read, check, count; raises ManifestError
    model_ids_of(path) -> set[str]          the models it names (to ask the API's catalog)
    run_name_of(path) -> str                its run's name (for the commands reading the ledger)
    Manifest.jobs() -> Iterator[JobSpec]    lazy expansion in a deterministic order
    Manifest.validate()                     expand and check every job once

Modules: ``yaml_loader`` (safe YAML with lines), ``schema`` (the keys and their types),
``top_level`` (the file read and parsed; its run's name), ``prompts`` (prompt lists and files),
``templates``, ``variants`` (``{a|b}`` and ``__name__`` in prompts) and ``wildcards`` (their
files), ``blocks`` (inheritance and checks made once per block), ``sweep`` (what variants and
``sample:`` add to a block), ``sampling`` (drawing from a block's space), ``expand`` (blocks into
jobs), ``settings`` (run-wide knobs), ``manifest`` (the API).
The format is documented in docs/manifest.md.

The names below are imported on first use (as ``genbatch``'s own): reading a run's name
(``run_name_of``, for ``genbatch status MANIFEST``) needs neither the blocks' compiler nor the
catalog and jsonschema it loads.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from genbatch.lazy import imported_on_first_use

if TYPE_CHECKING:
    from genbatch.manifest.manifest import BlockSummary, Manifest, load_manifest, model_ids_of
    from genbatch.manifest.settings import DEFAULT_MAX_JOBS, ManifestSettings, parse_size
    from genbatch.manifest.top_level import run_name_of

__all__ = [
    "DEFAULT_MAX_JOBS",
    "BlockSummary",
    "Manifest",
    "ManifestSettings",
    "load_manifest",
    "model_ids_of",
    "parse_size",
    "run_name_of",
]

_WHERE = {
    "BlockSummary": "genbatch.manifest.manifest",
    "Manifest": "genbatch.manifest.manifest",
    "load_manifest": "genbatch.manifest.manifest",
    "model_ids_of": "genbatch.manifest.manifest",
    "DEFAULT_MAX_JOBS": "genbatch.manifest.settings",
    "ManifestSettings": "genbatch.manifest.settings",
    "parse_size": "genbatch.manifest.settings",
    "run_name_of": "genbatch.manifest.top_level",
}


__getattr__ = imported_on_first_use(__name__, _WHERE)
