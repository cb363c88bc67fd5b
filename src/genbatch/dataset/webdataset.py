"""``--format webdataset``: tar shards of samples, each a file and its row as JSON.

The WebDataset convention: a sample is the tar members sharing a key (the name up to its first
dot), here the job key: ``KEY.mp4`` (or ``.png``...) and ``KEY.json``, one after the other.
Written with ``tarfile`` alone: no library to install to write shards, any WebDataset reader
(or ``tar``) reads them. A shard is closed before the next sample would take it past its size.
"""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from genbatch.dataset.files import Sample, Samples
from genbatch.dataset.folder import replacing_directory

__all__ = ["DEFAULT_SHARD_SIZE", "SHARD_PATTERN", "WebDatasetReport", "write_webdataset"]

DEFAULT_SHARD_SIZE = 1_000_000_000
SHARD_PATTERN = "shard-{:06d}.tar"

_BLOCK = tarfile.BLOCKSIZE
_END_OF_ARCHIVE = 2 * _BLOCK


@dataclass(frozen=True, kw_only=True)
class WebDatasetReport:
    """What ``write_webdataset`` wrote."""

    samples: int
    shards: int
    missing: int
    """Rows left out because their file is not on disk."""


def write_webdataset(
    rows: Iterable[dict[str, Any]], destination: Path, *, shard_size: int = DEFAULT_SHARD_SIZE
) -> WebDatasetReport:
    """Write the files of ``rows`` as shards ``shard-000000.tar``... in the folder
    ``destination`` (replaced whole), each at most ``shard_size`` bytes unless a single sample
    is larger."""
    samples = Samples()
    with replacing_directory(destination, format_name="webdataset") as folder:
        shards = _Shards(folder, shard_size)
        try:
            for sample in samples(rows):
                shards.add(sample)
        finally:
            shards.close()
    return WebDatasetReport(samples=shards.samples, shards=shards.count, missing=samples.missing)


class _Shards:
    """The shard being written, and when to start the next."""

    def __init__(self, folder: Path, limit: int) -> None:
        self.folder = folder
        self.limit = limit
        self.count = 0
        self.samples = 0
        self._tar: tarfile.TarFile | None = None
        self._size = 0

    def add(self, sample: Sample) -> None:
        """Append ``sample``, in a new shard if it would not fit in this one."""
        text = json.dumps(sample.shareable_row(), ensure_ascii=False).encode("utf-8")
        size = sample.source.stat().st_size
        needed = _member_size(size) + _member_size(len(text))
        if self._tar is None or (_closed_size(self._size + needed) > self.limit and self._size):
            self._next_shard()
        assert self._tar is not None
        moment = _timestamp(sample.row.get("finished_at"))
        with sample.source.open("rb") as media:
            self._add(f"{sample.key}.{sample.extension}", media, size, moment)
        self._add(f"{sample.key}.json", io.BytesIO(text), len(text), moment)
        self._size += needed
        self.samples += 1

    def close(self) -> None:
        """Finish the shard being written."""
        if self._tar is not None:
            self._tar.close()
            self._tar = None

    def _next_shard(self) -> None:
        self.close()
        path = self.folder / SHARD_PATTERN.format(self.count)
        # Open across many add() calls; close() ends it (and write_webdataset always calls it).
        self._tar = tarfile.open(path, "w", format=tarfile.PAX_FORMAT)  # noqa: SIM115
        path.chmod(0o600)  # the rows hold your prompts, like metadata.jsonl
        self.count += 1
        self._size = 0

    def _add(self, name: str, data: IO[bytes], size: int, moment: int) -> None:
        assert self._tar is not None
        # Fixed owner and times: the same export gives the same bytes.
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode = size, moment, 0o644
        self._tar.addfile(info, data)


def _closed_size(size: int) -> int:
    """The bytes of a shard holding ``size`` bytes of members once closed: the end-of-archive
    blocks, then padding to a whole tar record."""
    return -(-(size + _END_OF_ARCHIVE) // tarfile.RECORDSIZE) * tarfile.RECORDSIZE


def _member_size(size: int) -> int:
    return _BLOCK + -(-size // _BLOCK) * _BLOCK


def _timestamp(text: Any) -> int:
    # Whole seconds: a fraction would cost each member an extra PAX header.
    try:
        return int(datetime.fromisoformat(str(text)).timestamp())
    except ValueError:
        return 0
