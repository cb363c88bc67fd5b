"""The dataset card (``README.md``) of a ``--format hf`` export.

Its text says where the data comes from (runs and their manifests, models, counts, what the
files cost) and how to load each folder. It declares no ``configs:``: ``datasets`` picks one
loader for a whole repository from its most common file type, so a card naming an image folder
and a video folder as configurations loads the images with the video loader; each folder is
loaded on its own instead.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from genbatch.atomic import write_atomically
from genbatch.dataset.files import FileKind, Sample

__all__ = ["CardFacts", "write_card"]

_LOADERS = {
    FileKind.IMAGES: "imagefolder",
    FileKind.VIDEOS: "videofolder",
    FileKind.AUDIO: "audiofolder",
}


@dataclass
class CardFacts:
    """What the card says, counted as the samples are written."""

    manifests: dict[str, str]
    """Run name to manifest file."""
    files: Counter[FileKind] = field(default_factory=Counter)
    models: Counter[str] = field(default_factory=Counter)
    runs: dict[str, None] = field(default_factory=dict)
    spend_usd: float = 0.0
    unpriced: int = 0

    def count(self, sample: Sample) -> None:
        """Add ``sample`` to the counts."""
        row = sample.row
        self.files[sample.kind] += 1
        self.models[str(row.get("model_id"))] += 1
        self.runs[str(row.get("run"))] = None
        cost = row.get("cost_usd")
        if cost is None:
            self.unpriced += 1
        else:
            self.spend_usd += float(cost)


def write_card(path: Path, facts: CardFacts) -> None:
    """Write the card of ``facts`` to ``path``."""
    write_atomically(path, card_text(facts).encode("utf-8"))


def card_text(facts: CardFacts) -> str:
    """The card: a YAML header of tags, then the dataset's story in Markdown."""
    kinds = sorted(facts.files, key=list(FileKind).index)
    return "\n".join([*_header(), *_summary(facts, kinds), *_models(facts), *_loading(kinds), ""])


def _header() -> list[str]:
    return ["---", "tags:", "- synthetic", "- genbatch", "---", ""]


def _summary(facts: CardFacts, kinds: list[FileKind]) -> list[str]:
    total = sum(facts.files.values())
    lines = [
        "# Generated dataset",
        "",
        f"{total} file(s) generated on RunComfy's Model API by genbatch.",
        "",
        "| run | manifest |",
        "|---|---|",
    ]
    lines += [f"| {_cell(run)} | `{_cell(facts.manifests.get(run, '?'))}` |" for run in facts.runs]
    lines += ["", "| folder | files |", "|---|---|"]
    lines += [f"| `{kind}/` | {facts.files[kind]} |" for kind in kinds]
    spend = f"${facts.spend_usd:,.2f}"
    if facts.unpriced:
        spend += f" (and {facts.unpriced} file(s) of models without a known price)"
    return [
        *lines,
        "",
        f"Spend: {spend}, the recorded cost of the jobs, split across their files.",
        "",
    ]


def _models(facts: CardFacts) -> list[str]:
    lines = ["| model | files |", "|---|---|"]
    lines += [f"| `{_cell(model)}` | {n} |" for model, n in facts.models.most_common()]
    return [*lines, ""]


def _loading(kinds: list[FileKind]) -> list[str]:
    lines = [
        "## Loading",
        "",
        "Each folder on its own, from this one (one loader per folder: never the whole export):",
        "",
        "```python",
        "from datasets import load_dataset",
        "",
    ]
    for kind in kinds:
        loader = _LOADERS.get(kind)
        if loader is not None:
            lines.append(f'{kind} = load_dataset("{loader}", data_dir="{kind}", split="train")')
    lines += [
        "```",
        "",
        "Each folder's `metadata.jsonl` has one row per file: `file_name`, the prompt and every "
        "input, `inputs` and `variables` (JSON text), model, job key, request id, sha256, cost.",
        "Decoding images needs Pillow (`pip install pillow`); decoding videos needs the video "
        "extra of `datasets` (`pip install 'datasets[video]'`): a column (`videos[\"prompt\"]`) "
        "reads without it, a whole row (`videos[0]`) decodes its video.",
    ]
    return lines


def _cell(text: str) -> str:
    """``text`` safe in a Markdown table cell."""
    return " ".join(text.split()).replace("|", "\\|").replace("`", "'")
