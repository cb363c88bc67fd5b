"""The optional libraries of dataset exports, imported only when a format needs them."""

from __future__ import annotations

import importlib
from types import ModuleType

from genbatch.errors import UsageError

__all__ = ["INSTALL_HINT", "require"]

INSTALL_HINT = "pip install 'genbatch[dataset]'"


def require(module: str, *, needed_by: str) -> ModuleType:
    """``module`` imported; a one-line usage error naming the extra when it is not installed."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise UsageError(
            f"{needed_by} needs {module.split('.')[0]}, which is not installed: {INSTALL_HINT}"
        ) from None
