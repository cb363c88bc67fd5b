"""Names of a package imported on first use (PEP 562), so that importing the package is cheap.

``genbatch --version`` and the command's signal handlers must not wait for httpx or SQLAlchemy,
and ``genbatch status MANIFEST`` must not wait for the manifest's compiler, the catalog and
jsonschema: ``genbatch`` and ``genbatch.manifest`` name what they export and where it lives.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def imported_on_first_use(package: str, where: Mapping[str, str]) -> Callable[[str], Any]:
    """The module ``__getattr__`` of ``package``: a name of ``where`` is imported from the module
    it maps to when first asked for, then kept in the package's namespace."""

    def __getattr__(name: str) -> Any:
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(where[name]), name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__
