"""`genbatch export --format hf`, and the run's own folders, loaded with Hugging Face `datasets`
as a user would: images decoded with Pillow, videos checked by their columns (decoding them
needs `datasets[video]`, a PyTorch install)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from datasets import Dataset, Video, load_dataset

from dataset_runs import BANANA, Finished, finish_launch
from support import KLING


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Finished:
    # Two runs of the same jobs: the second reuses the first one's files.
    return finish_launch(tmp_path_factory.mktemp("launch"), copies=1)


@pytest.fixture(scope="module")
def exported(finished: Finished) -> Path:
    done = finished.export("--format", "hf", "--output", "dataset")
    assert done.returncode == 0, done.stderr
    assert done.stderr == "genbatch: 2 in videos/, 4 in images/, written to dataset\n"
    return finished.folder / "dataset"


def load(loader: str, folder: Path, cache: Path) -> Dataset:
    dataset = load_dataset(loader, data_dir=str(folder), split="train", cache_dir=str(cache))
    assert isinstance(dataset, Dataset)
    return dataset


def by_key(finished: Finished, block: str) -> dict[str, dict[str, Any]]:
    return {row["job_key"]: row for row in finished.rows() if row["block"] == block}


def test_the_hf_export_has_a_folder_per_kind_of_file_and_a_card(exported: Path) -> None:
    assert sorted(p.name for p in exported.iterdir()) == [
        ".genbatch-export",
        "README.md",
        "images",
        "videos",
    ]
    assert {p.suffix for p in (exported / "videos").iterdir()} == {".mp4", ".jsonl"}
    assert {p.suffix for p in (exported / "images").iterdir()} == {".png", ".jsonl"}


def test_the_image_folder_loads_with_imagefolder_and_decodes_with_pillow(
    finished: Finished, exported: Path, tmp_path: Path
) -> None:
    expected = by_key(finished, "stills")

    images = load("imagefolder", exported / "images", tmp_path)

    assert len(images) == 4
    assert sorted(images["job_key"]) == sorted(expected)
    for row in images:
        source = expected[row["job_key"]]
        width, height = row["image"].size  # decoded by Pillow, drawn at the asked ratio
        across, down = (int(n) for n in source["aspect_ratio"].split(":"))
        assert width / height == pytest.approx(across / down)
        assert row["prompt"] == source["prompt"]
        assert row["aspect_ratio"] == source["aspect_ratio"]
        assert row["model_id"] == BANANA
        assert json.loads(row["inputs"]) == source["inputs"]
        assert row["sha256"] == source["sha256"]
        assert row["cost_usd"] == source["cost_usd"]
        assert "output_dir" not in row  # no path of this machine in a dataset to share


def test_the_video_folder_loads_with_videofolder_one_row_per_clip(
    finished: Finished, exported: Path, tmp_path: Path
) -> None:
    expected = by_key(finished, "clips")

    clips = load("videofolder", exported / "videos", tmp_path)

    assert len(clips) == 2
    clips = clips.cast_column("video", Video(decode=False))
    for row in clips:
        source = expected[row["job_key"]]
        assert Path(row["video"]["path"]).name == Path(source["file_name"]).name
        assert row["duration"] == 5
        assert row["model_id"] == KLING
        assert row["request_id"] == source["request_id"]


def test_the_card_names_the_run_its_manifest_models_counts_and_spend(
    finished: Finished, exported: Path
) -> None:
    card = (exported / "README.md").read_text(encoding="utf-8")
    spend = sum(row["cost_usd"] for row in finished.rows())

    assert "| launch | `launch.yaml` |" in card
    assert "| `videos/` | 2 |" in card and "| `images/` | 4 |" in card
    assert f"| `{KLING}` | 2 |" in card and f"| `{BANANA}` | 4 |" in card
    assert f"Spend: ${spend:,.2f}," in card
    assert 'load_dataset("imagefolder", data_dir="images", split="train")' in card
    assert "Pillow" in card and "datasets[video]" in card


def test_an_export_of_every_run_holds_each_generated_file_once(
    finished: Finished, tmp_path: Path
) -> None:
    done = finished.export("--format", "hf", "-o", str(tmp_path / "all"), every_run=True)

    assert done.returncode == 0, done.stderr
    assert len(finished.export(every_run=True).stdout.splitlines()) == 12  # 6 rows per run
    images = load("imagefolder", tmp_path / "all" / "images", tmp_path / "cache")
    assert len(images) == 4 and len(set(images["job_key"])) == 4


def test_each_block_folder_of_the_run_itself_loads_with_only_its_own_files(
    finished: Finished, tmp_path: Path
) -> None:
    clips = load("videofolder", finished.folder / "out" / "clips", tmp_path)
    stills = load("imagefolder", finished.folder / "out" / "stills", tmp_path)

    assert sorted(clips["block"]) == ["clips", "clips"]
    assert sorted(stills["block"]) == ["stills"] * 4
