"""genbatch: run thousands of paid generations on RunComfy's Model API, resumably.

The Python API, for notebooks and scripts::

    import genbatch

    manifest = genbatch.load_manifest("sweep.yaml")     # validated; nothing sent
    summary = genbatch.run_manifest("sweep.yaml", simulate=True)
    rows = genbatch.results("sweep.yaml")               # one dict per output file

Inside a running event loop (a notebook cell, an async application), await the run there::

    summary = await genbatch.arun_manifest("sweep.yaml", simulate=True)

``run_manifest`` works there too, but blocks the loop until the run ends (it runs in a thread).

``genbatch.batch`` has the steps one by one (prepare, which validates every job as it
syncs it, then execute; open_manifest validates without a ledger).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from genbatch.lazy import imported_on_first_use

__version__ = "0.1.0"

if TYPE_CHECKING:
    from genbatch.batch import arun_manifest, results, run_manifest
    from genbatch.errors import GenbatchError, ManifestError
    from genbatch.manifest import Manifest, load_manifest
    from genbatch.runner import RunOptions, RunSummary
    from genbatch.states import JobState

# Imported on first use: ``genbatch --version`` and the command's signal handlers (see
# ``launch``) do not wait for the whole package (httpx, SQLAlchemy...) to load.
_WHERE = {
    "arun_manifest": "genbatch.batch",
    "results": "genbatch.batch",
    "run_manifest": "genbatch.batch",
    "GenbatchError": "genbatch.errors",
    "ManifestError": "genbatch.errors",
    "Manifest": "genbatch.manifest",
    "load_manifest": "genbatch.manifest",
    "RunOptions": "genbatch.runner",
    "RunSummary": "genbatch.runner",
    "JobState": "genbatch.states",
}


__getattr__ = imported_on_first_use(__name__, _WHERE)


__all__ = [
    "GenbatchError",
    "JobState",
    "Manifest",
    "ManifestError",
    "RunOptions",
    "RunSummary",
    "__version__",
    "arun_manifest",
    "load_manifest",
    "results",
    "run_manifest",
]
