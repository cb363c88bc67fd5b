"""A finished run of a video block and an image block, for the dataset export tests."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from genbatch.batch import run_manifest
from genbatch.simulator import Simulator

from support import KLING, genbatch

BANANA = "google/nano-banana-2/text-to-image"

LAUNCH = f"""\
name: launch
model: {KLING}
prompts: ["a watch on a pedestal", "a watch on a wrist"]
output: {{dir: out}}
jobs:
  - name: clips
    inputs: {{duration: 5}}
  - name: stills
    model: {BANANA}
    grid: {{aspect_ratio: ["1:1", "4:3"]}}
"""


@dataclass(frozen=True)
class Finished:
    """A finished run of LAUNCH: 2 clips (MP4) and 4 stills (PNG), in sibling folders."""

    folder: Path
    manifest: Path
    env: dict[str, str]

    def export(self, *args: str, every_run: bool = False) -> subprocess.CompletedProcess[str]:
        """``genbatch export`` of this run (``every_run``: of every run of the ledger)."""
        target = [] if every_run else [str(self.manifest)]
        return genbatch(["export", *target, *args], env=self.env, cwd=self.folder)

    def rows(self) -> list[dict[str, Any]]:
        """The run's export rows, as JSON Lines."""
        done = self.export()
        assert done.returncode == 0, done.stderr
        return [json.loads(line) for line in done.stdout.splitlines()]


def finish_launch(folder: Path, *, copies: int = 0) -> Finished:
    """Run LAUNCH in ``folder`` against a simulator, then ``copies`` more manifests with the
    same jobs under other run names (they reuse its files: nothing is generated again)."""
    manifest = folder / "launch.yaml"
    manifest.write_text(LAUNCH, encoding="utf-8")
    ledger = folder / "ledger.db"
    with (
        Simulator(time_scale=0.0005, capacity=8, seed=5) as sim,
        pytest.MonkeyPatch.context() as patch,
    ):
        patch.setenv("RUNCOMFY_TOKEN", sim.token)
        assert run_manifest(manifest, ledger=str(ledger), api_base=sim.base_url).all_done
        for n in range(copies):
            copy = folder / f"launch-{n}.yaml"
            copy.write_text(LAUNCH.replace("name: launch", f"name: launch-{n}", 1))
            assert run_manifest(copy, ledger=str(ledger), api_base=sim.base_url).all_done
    env = {k: v for k, v in os.environ.items() if not k.startswith("GENBATCH_")}
    env.update(GENBATCH_LEDGER=str(ledger), NO_COLOR="1")
    return Finished(folder=folder, manifest=manifest, env=env)
