"""``--format hf``: a folder per kind of file, each loadable by a Hugging Face folder loader.

    OUT/
    ├── README.md          the dataset card: runs, manifests, models, counts, spend
    ├── videos/            load_dataset("videofolder", data_dir="OUT/videos")
    │   ├── metadata.jsonl
    │   └── *.mp4
    └── images/            load_dataset("imagefolder", data_dir="OUT/images")
        ├── metadata.jsonl
        └── *.png

One folder per kind, never one inside another: a folder loader reads every file below its
folder, and a video folder holding an image folder gives rows it cannot decode. Files are hard
links to the outputs where the file system allows (no space used), else copies.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from genbatch.dataset.card import CardFacts, write_card
from genbatch.dataset.columns import ColumnPlan
from genbatch.dataset.files import FileKind, Sample, Samples
from genbatch.dataset.folder import replacing_directory

__all__ = ["HfReport", "write_hf_folders"]

METADATA = "metadata.jsonl"


@dataclass(frozen=True, kw_only=True)
class HfReport:
    """What ``write_hf_folders`` wrote."""

    files: dict[FileKind, int]
    missing: int
    """Rows left out because their file is not on disk."""


def write_hf_folders(
    rows: Callable[[], Iterable[dict[str, Any]]], destination: Path, *, manifests: dict[str, str]
) -> HfReport:
    """Write the files of ``rows`` (called twice: once to learn each folder's columns) as
    Hugging Face image/video/audio folders in ``destination`` (replaced whole), with a card.
    ``manifests`` maps run names to their manifest files, for the card."""
    plans: dict[FileKind, ColumnPlan] = {}
    for sample in Samples()(rows()):
        plans.setdefault(sample.kind, ColumnPlan()).observe(sample.shareable_row())
    samples = Samples()
    facts = CardFacts(manifests=manifests)
    with replacing_directory(destination, format_name="hf") as folder:
        writer = _FolderWriter(folder, plans)
        try:
            for sample in samples(rows()):
                facts.count(sample)
                writer.add(sample)
        finally:
            writer.close()
        write_card(folder / "README.md", facts)
    return HfReport(files=dict(facts.files), missing=samples.missing)


@dataclass
class _FolderWriter:
    """Places each sample's file in its kind's folder and writes its metadata row."""

    root: Path
    plans: dict[FileKind, ColumnPlan]
    _metadata: dict[FileKind, IO[str]] = field(default_factory=dict)
    _names: dict[FileKind, set[str]] = field(default_factory=dict)

    def add(self, sample: Sample) -> None:
        """Link (or copy) the file and write its row, ``file_name`` naming it in the folder."""
        out = self._out(sample.kind)
        name = self._name(sample)
        _link_or_copy(sample.source, self.root / sample.kind / name)
        row = {**sample.shareable_row(), "file_name": name}
        out.write(json.dumps(self.plans[sample.kind].normalise(row), ensure_ascii=False) + "\n")

    def close(self) -> None:
        """Close every metadata file."""
        for out in self._metadata.values():
            out.close()

    def _name(self, sample: Sample) -> str:
        """The output's own file name, unless another file of the folder has it already."""
        names = self._names.setdefault(sample.kind, set())
        name = sample.source.name
        if name in names:
            name = f"{sample.source.stem}-{sample.key}{sample.source.suffix}"
        names.add(name)
        return name

    def _out(self, kind: FileKind) -> IO[str]:
        out = self._metadata.get(kind)
        if out is None:
            (self.root / kind).mkdir()
            path = self.root / kind / METADATA
            out = self._metadata[kind] = path.open("w", encoding="utf-8")
            path.chmod(0o600)  # it holds your prompts, like the run's own metadata.jsonl
        return out


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)  # another file system, or one without hard links
