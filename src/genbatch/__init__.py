"""genbatch: run thousands of paid generations on RunComfy's Model API, resumably."""

from __future__ import annotations

__version__ = "0.1.0"
