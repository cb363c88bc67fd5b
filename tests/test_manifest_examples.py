"""Every manifest shipped in examples/ and manifests/ loads and validates without warnings."""

from __future__ import annotations

from pathlib import Path

import pytest

from genbatch.manifest import load_manifest

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = sorted([*ROOT.glob("examples/**/*.yaml"), *ROOT.glob("manifests/**/*.yaml")])


def test_there_are_shipped_manifests() -> None:
    assert (ROOT / "manifests" / "quickstart.yaml") in SHIPPED
    assert len(SHIPPED) >= 6


@pytest.mark.parametrize("path", SHIPPED, ids=lambda path: str(path.relative_to(ROOT)))
def test_shipped_manifest_loads_and_validates(path: Path) -> None:
    manifest = load_manifest(path)
    assert manifest.validate() == manifest.job_count > 0
    assert manifest.warnings == []
    for job in manifest.jobs():
        assert Path(job.output_dir).is_absolute()
        assert job.file_stem


def test_quickstart_is_small_and_lands_next_to_it() -> None:
    manifest = load_manifest(ROOT / "manifests" / "quickstart.yaml")
    assert 6 <= manifest.job_count <= 8
    assert {job.output_dir for job in manifest.jobs()} == {
        str(ROOT / "manifests" / "out" / "quickstart")
    }
