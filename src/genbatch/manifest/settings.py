"""The optional run-wide knobs of a manifest, read by the runner, scheduler and downloader."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the catalog (and jsonschema) loads only where a manifest is compiled
    from genbatch.catalog import Price

__all__ = ["DEFAULT_MAX_JOBS", "ManifestSettings", "parse_size"]

DEFAULT_MAX_JOBS = 100_000
"""Explosion guard: a manifest expanding to more jobs than this is refused unless allowed."""

_SIZE = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*")
_UNITS = {
    "": 1,
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
    "k": 1024,
    "m": 1024**2,
    "g": 1024**3,
    "t": 1024**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}


@dataclass(frozen=True, kw_only=True)
class ManifestSettings:
    """Top-level knobs of a manifest, validated; ``None`` means "not set, use the default"."""

    max_jobs: int | None = None
    """Override of the explosion guard (``DEFAULT_MAX_JOBS``) as written in the manifest."""
    strict: bool = False
    """Unknown models are an error instead of a warning."""
    allowed_hosts: tuple[str, ...] = ()
    """Extra hosts outputs may be downloaded from, lowercase, as written: ``*.example.com``
    (or ``.example.com``) means example.com and any of its subdomains."""
    max_file_size: int | None = None
    """Largest output file to download, in bytes."""
    max_attempts: int = 1
    """Attempts per job when a generation fails (1: no retry)."""
    budget_usd: float | None = None
    """Spending limit of the run in US dollars."""
    prices: Mapping[str, Price] = field(default_factory=dict)
    """Prices by model id, overriding the built-in ones and the API's catalog."""


def parse_size(text: str) -> int:
    """Bytes in ``text`` such as ``"2GiB"``, ``"500 MB"``, ``"1.5G"`` or ``"1048576"``.

    ``KB``/``MB``/``GB``/``TB`` are powers of 1000; ``KiB``... and the bare ``K``/``M``/``G``/``T``
    are powers of 1024. Raises ``ValueError`` for anything else.
    """
    match = _SIZE.fullmatch(text)
    unit = match.group(2).lower() if match else None
    if match is None or unit not in _UNITS:
        raise ValueError(f"{text!r} is not a size like 2GiB, 500MB or 1048576")
    size = int(float(match.group(1)) * _UNITS[unit])
    if size < 1:
        raise ValueError(f"{text!r} is not a positive size")
    return size
