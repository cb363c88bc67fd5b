"""Moving downloaded files into place: several per trip to a thread, each with its own outcome."""

from __future__ import annotations

import hashlib
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


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_files_written_together_are_all_moved_into_place_with_their_bytes(tmp_path: Path) -> None:
    committer = FileCommitter()
    outcomes: dict[str, str] = {}

    async def one(index: int, directory: Path) -> None:
        name = f"clip{index:02d}"
        await anyio.sleep(0.001 * (index % 3))  # finishing at slightly different times
        fd, part = _part(directory, name, name.encode())
        try:
            await committer.move_into_place(
                fd, part, directory / f"{name}.mp4", _sha(name.encode())
            )
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
    (tmp_path / "blocked.mp4").mkdir()  # a folder in the way: never replaced, the file beside
    (tmp_path / "blocked.mp4" / "x").write_bytes(b"")
    too_long = "n" * 300  # longer than a file name may be

    async def one(name: str, lose_part: bool = False) -> None:
        fd, part = _part(tmp_path, name[:40], b"data")
        if lose_part:
            part.unlink()  # as a process that put the same file in place does with stale parts
        try:
            await committer.move_into_place(fd, part, tmp_path / f"{name}.mp4", _sha(b"data"))
        except (OutputError, IncompleteDownload) as exc:
            errors[name] = exc
        finally:
            os.close(fd)

    async def scenario() -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(one, "good1")
            tg.start_soon(one, "lost", True)
            tg.start_soon(one, too_long)
            tg.start_soon(one, "blocked")
            tg.start_soon(one, "good2")

    anyio.run(scenario)
    assert sorted(errors) == ["lost", too_long]
    assert isinstance(errors[too_long], OutputError)
    assert str(errors[too_long]).startswith(f"cannot move {too_long}.mp4 into place: ")
    assert isinstance(errors["lost"], IncompleteDownload)  # retried by the downloader
    assert (tmp_path / "good1.mp4").read_bytes() == b"data"
    assert (tmp_path / "good2.mp4").read_bytes() == b"data"
    assert (tmp_path / f"blocked.{_sha(b'data')[:12]}.mp4").read_bytes() == b"data"
    placed = ("good1", "good2", "blocked")
    assert not [name for name in placed if (tmp_path / f".{name}.part").exists()]


def test_a_caller_cancelled_while_its_file_waits_still_gets_it_moved(tmp_path: Path) -> None:
    committer = FileCommitter()

    async def scenario() -> None:
        fd, part = _part(tmp_path, "clip", b"data")
        try:
            with anyio.CancelScope() as scope:
                scope.cancel()
                await committer.move_into_place(fd, part, tmp_path / "clip.mp4", _sha(b"data"))
        finally:
            os.close(fd)

    anyio.run(scenario)
    assert (tmp_path / "clip.mp4").read_bytes() == b"data"
    assert not (tmp_path / ".clip.part").exists()


def test_a_name_taken_by_other_bytes_is_kept_and_the_new_file_goes_beside_it(
    tmp_path: Path,
) -> None:
    committer = FileCommitter()
    (tmp_path / "cat_1.png").write_bytes(b"the dog, another job's whole name")
    (tmp_path / "same.png").write_bytes(b"same bytes")  # this file, put in place before a crash
    placed: dict[str, Path] = {}

    async def one(name: str, data: bytes) -> None:
        fd, part = _part(tmp_path, name, data)
        try:
            placed[name] = await committer.move_into_place(
                fd, part, tmp_path / f"{name}.png", _sha(data)
            )
        finally:
            os.close(fd)

    async def scenario() -> None:
        await one("cat_1", b"the cat's second image")
        await one("same", b"same bytes")
        await one("cat_1", b"the cat's second image")  # downloaded again: finds its own file

    anyio.run(scenario)
    second_image = _sha(b"the cat's second image")
    beside = tmp_path / f"cat_1.{second_image[:12]}.png"
    assert placed == {"cat_1": beside, "same": tmp_path / "same.png"}
    assert (tmp_path / "cat_1.png").read_bytes() == b"the dog, another job's whole name"
    assert beside.read_bytes() == b"the cat's second image"
    assert (tmp_path / "same.png").read_bytes() == b"same bytes"
    assert {p.name for p in tmp_path.iterdir()} == {"cat_1.png", beside.name, "same.png"}
