"""Moving downloaded files into place: several per trip to a thread, each with its own outcome."""

from __future__ import annotations

import os
from pathlib import Path

import anyio

from genbatch.errors import IncompleteDownload, OutputError
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


def test_a_file_that_cannot_be_moved_fails_alone_with_its_own_error(tmp_path: Path) -> None:
    committer = FileCommitter()
    errors: dict[str, Exception] = {}
    (tmp_path / "blocked.mp4").mkdir()  # a folder in the way: the rename fails
    (tmp_path / "blocked.mp4" / "x").write_bytes(b"")

    async def one(name: str, lose_part: bool = False) -> None:
        fd, part = _part(tmp_path, name, b"data")
        if lose_part:
            part.unlink()  # as a process that put the same file in place does with stale parts
        try:
            await committer.move_into_place(fd, part, tmp_path / f"{name}.mp4")
        except (OutputError, IncompleteDownload) as exc:
            errors[name] = exc
        finally:
            os.close(fd)

    async def scenario() -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(one, "good1")
            tg.start_soon(one, "lost", True)
            tg.start_soon(one, "blocked")
            tg.start_soon(one, "good2")

    anyio.run(scenario)
    assert sorted(errors) == ["blocked", "lost"]
    assert isinstance(errors["blocked"], OutputError)
    assert str(errors["blocked"]).startswith("cannot move blocked.mp4 into place: ")
    assert isinstance(errors["lost"], IncompleteDownload)  # retried by the downloader
    assert (tmp_path / "good1.mp4").read_bytes() == b"data"
    assert (tmp_path / "good2.mp4").read_bytes() == b"data"


def test_a_caller_cancelled_while_its_file_waits_still_gets_it_moved(tmp_path: Path) -> None:
    committer = FileCommitter()

    async def scenario() -> None:
        fd, part = _part(tmp_path, "clip", b"data")
        try:
            with anyio.CancelScope() as scope:
                scope.cancel()
                await committer.move_into_place(fd, part, tmp_path / "clip.mp4")
        finally:
            os.close(fd)

    anyio.run(scenario)
    assert (tmp_path / "clip.mp4").read_bytes() == b"data"
    assert not (tmp_path / ".clip.part").exists()
