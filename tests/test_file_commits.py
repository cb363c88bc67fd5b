"""Moving downloaded files into place: several per trip to a thread, each with its own outcome."""

from __future__ import annotations

import os
from pathlib import Path

import anyio
import pytest

from genbatch.errors import OutputError
from genbatch.file_commits import FileCommitter


def _part(directory: Path, name: str, data: bytes) -> tuple[int, Path]:
    part = directory / f".{name}.part"
    fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.write(fd, data)
    return fd, part


def test_files_written_together_are_all_moved_into_place_with_their_bytes(tmp_path: Path) -> None:
    committer = FileCommitter()
    outcomes: dict[str, str] = {}

    async def one(index: int, directory: Path) -> None:
        name = f"clip{index:02d}"
        with committer.writing():
            await anyio.sleep(0.001 * (index % 3))  # finishing at slightly different times
            fd, part = _part(directory, name, name.encode())
            try:
                await committer.move_into_place(fd, part, directory / f"{name}.mp4")
                outcomes[name] = "moved"
            finally:
                os.close(fd)

    async def scenario() -> None:
        async with anyio.create_task_group() as tg:
            for index in range(40):  # more than one trip can take
                directory = tmp_path / ("a" if index % 2 else "b")
                directory.mkdir(exist_ok=True)
                tg.start_soon(one, index, directory)

    anyio.run(scenario)
    assert len(outcomes) == 40
    for index in range(40):
        name = f"clip{index:02d}"
        final = tmp_path / ("a" if index % 2 else "b") / f"{name}.mp4"
        assert final.read_bytes() == name.encode()
    assert not list(tmp_path.rglob("*.part"))


def test_a_file_that_cannot_be_moved_fails_alone(tmp_path: Path) -> None:
    committer = FileCommitter()
    errors: dict[str, str] = {}

    async def one(name: str, lose_part: bool) -> None:
        fd, part = _part(tmp_path, name, b"data")
        if lose_part:
            part.unlink()  # the rename of this one fails
        try:
            await committer.move_into_place(fd, part, tmp_path / f"{name}.mp4")
        except OutputError as exc:
            errors[name] = str(exc)
        finally:
            os.close(fd)

    async def scenario() -> None:
        with committer.writing(), committer.writing(), committer.writing():
            async with anyio.create_task_group() as tg:
                tg.start_soon(one, "good1", False)
                tg.start_soon(one, "lost", True)
                tg.start_soon(one, "good2", False)

    anyio.run(scenario)
    assert list(errors) == ["lost"]
    assert errors["lost"].startswith("cannot move lost.mp4 into place: ")
    assert (tmp_path / "good1.mp4").read_bytes() == b"data"
    assert (tmp_path / "good2.mp4").read_bytes() == b"data"


def test_a_caller_cancelled_before_its_trip_leaves_its_file_unmoved(tmp_path: Path) -> None:
    committer = FileCommitter(gather_seconds=5.0)

    async def scenario() -> None:
        fd, part = _part(tmp_path, "clip", b"data")
        try:
            # Another file is still being written: the trip waits for it, and is cancelled.
            with committer.writing(), committer.writing(), anyio.move_on_after(0.05):
                await committer.move_into_place(fd, part, tmp_path / "clip.mp4")
                pytest.fail("moved although cancelled")
        finally:
            os.close(fd)
        assert part.exists() and not (tmp_path / "clip.mp4").exists()
        # The committer still works for the next files.
        fd2, part2 = _part(tmp_path, "next", b"more")
        try:
            await committer.move_into_place(fd2, part2, tmp_path / "next.mp4")
        finally:
            os.close(fd2)
        assert (tmp_path / "next.mp4").read_bytes() == b"more"

    anyio.run(scenario)
