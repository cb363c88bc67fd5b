"""The files behind export rows: where each is, what kind it is, and each generation once.

An export of several runs can list one generation more than once: a job reused by another run
(the same key, the same bytes) is a row in each. A dataset wants each file once, so
``Samples`` keeps the first row of each (job key, sha256) and gives every file it keeps a name
no other file of the dataset has.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path, PurePosixPath
from typing import Any

__all__ = ["FileKind", "Sample", "Samples", "file_kind", "source_of"]

LOCAL_COLUMNS = ("output_dir",)
"""Row columns that describe this machine (absolute paths), left out of shareable datasets."""


class FileKind(StrEnum):
    """A kind of output file, named as the folder it gets in a ``--format hf`` export."""

    IMAGES = "images"
    VIDEOS = "videos"
    AUDIO = "audio"
    OTHER = "files"


# The extensions the Hugging Face folder loaders read (imagefolder, videofolder, audiofolder).
_KINDS = {
    **dict.fromkeys(("png", "jpg", "jpeg", "webp", "gif", "bmp", "tif", "tiff"), FileKind.IMAGES),
    **dict.fromkeys(("mp4", "webm", "mov", "mkv", "avi", "m4v"), FileKind.VIDEOS),
    **dict.fromkeys(("mp3", "wav", "flac", "ogg", "m4a", "opus"), FileKind.AUDIO),
}


def file_kind(name: str) -> FileKind:
    """The kind of the file ``name``, by its extension."""
    return _KINDS.get(PurePosixPath(name).suffix.lower().lstrip("."), FileKind.OTHER)


def source_of(row: dict[str, Any]) -> Path | None:
    """The file an export row describes, when it has one and it is on disk."""
    if not row.get("file_name") or not row.get("output_dir"):
        return None
    path = Path(row["output_dir"]) / row["file_name"]
    return path if path.is_file() else None


@dataclass(frozen=True, slots=True)
class Sample:
    """One file of the dataset: its row, where it is, its kind and its key in the dataset."""

    row: dict[str, Any]
    source: Path
    kind: FileKind
    key: str
    """Unique in the dataset: the job key, ``KEY_1``, ``KEY_2``... for a job's other files."""

    @property
    def extension(self) -> str:
        """The file's extension, lowercase, without the dot (``mp4``)."""
        return self.source.suffix.lower().lstrip(".") or "bin"

    def shareable_row(self) -> dict[str, Any]:
        """The row without the columns that only make sense on this machine."""
        return {k: v for k, v in self.row.items() if k not in LOCAL_COLUMNS}


class Samples:
    """Picks the rows a dataset holds: each file on disk once, under a unique key."""

    def __init__(self) -> None:
        self._seen: set[tuple[str, str]] = set()
        self._keys: set[str] = set()
        self.missing = 0
        """Rows whose file is not on disk (deleted since, or a job that is not done)."""

    def __call__(self, rows: Iterable[dict[str, Any]]) -> Iterator[Sample]:
        """The samples of ``rows``, in their order."""
        for row in rows:
            sample = self._sample(row)
            if sample is not None:
                yield sample

    def _sample(self, row: dict[str, Any]) -> Sample | None:
        source = source_of(row)
        if source is None:
            self.missing += 1
            return None
        job_key = str(row.get("job_key") or source.stem)
        identity = (job_key, str(row.get("sha256") or os.fspath(source)))
        if identity in self._seen:
            return None  # the same generation, listed again by another run
        self._seen.add(identity)
        return Sample(row=row, source=source, kind=file_kind(source.name), key=self._key(job_key))

    def _key(self, job_key: str) -> str:
        key, n = job_key, 0
        while key in self._keys:
            n += 1
            key = f"{job_key}_{n}"
        self._keys.add(key)
        return key
