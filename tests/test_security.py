"""Hostile surroundings: file hosts, redirects, sizes, names, full or unwritable disks."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from genbatch.client import describe_remote_error
from genbatch.simulator import Simulator, SimulatorConfig

from support import cli_env, genbatch, kling_manifest, mounted_tmpfs, output_files, run_args, status

FAST = 0.0005


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(SimulatorConfig(time_scale=FAST, capacity=8, seed=31)) as simulator:
        yield simulator


def test_the_token_is_never_sent_to_file_hosts(tmp_path: Path, sim: Simulator) -> None:
    env = cli_env(sim, tmp_path / "ledger.db")

    done = genbatch(run_args(kling_manifest(tmp_path, 3)), env=env, cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    assert sim.stats.calls["file"] == 3
    assert sim.stats.file_requests_with_token == 0


def test_a_redirect_to_a_host_not_allowed_is_refused_and_the_paid_job_kept(
    tmp_path: Path, sim: Simulator
) -> None:
    env = cli_env(sim, tmp_path / "ledger.db")
    sim.inject(route="file", fault="redirect", location="https://evil.example.com/x.mp4")

    done = genbatch(run_args(kling_manifest(tmp_path, 1)), env=env, cwd=tmp_path)

    assert done.returncode == 1
    assert "not allowed" in done.stderr
    # The generation succeeded and is paid: the job keeps its request id and stays resumable.
    assert status(env, tmp_path)["counts"]["fetching"] == 1
    assert not output_files(tmp_path / "out")


def test_a_redirect_within_allowed_hosts_is_followed(tmp_path: Path, sim: Simulator) -> None:
    env = cli_env(sim, tmp_path / "ledger.db")
    sim.inject(route="file", fault="redirect")  # to the same URL on the same (allowed) host

    done = genbatch(run_args(kling_manifest(tmp_path, 1)), env=env, cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    assert sim.stats.faults["redirect"] == 1
    assert len(output_files(tmp_path / "out")) == 1


def test_files_over_the_size_cap_are_refused_and_nothing_is_left_on_disk(
    tmp_path: Path, sim: Simulator
) -> None:
    env = cli_env(sim, tmp_path / "ledger.db")
    manifest = kling_manifest(tmp_path, 1, extra="max_file_size: 100\n")

    done = genbatch(run_args(manifest), env=env, cwd=tmp_path)

    assert done.returncode == 1
    assert "cap" in done.stderr
    assert status(env, tmp_path)["counts"]["fetching"] == 1  # paid: kept, resumable
    assert not [p for p in (tmp_path / "out").iterdir() if p.suffix in (".mp4", ".part")]


def test_file_names_made_from_hostile_prompts_stay_inside_the_output_directory(
    tmp_path: Path, sim: Simulator
) -> None:
    env = cli_env(sim, tmp_path / "ledger.db")
    manifest = tmp_path / "m.yaml"
    manifest.write_text(
        "model: kling/kling-2-6/pro/text-to-video\n"
        'prompts: ["../../escape", "/etc/passwd", "CON", "a\\0b", "' + "x" * 400 + '"]\n'
        "output: {dir: out, name: '{prompt}'}\n"
    )

    done = genbatch(run_args(manifest), env=env, cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    written = [p for p in tmp_path.rglob("*.mp4")]
    assert len(written) == 5
    assert all(p.parent == tmp_path / "out" for p in written)
    assert all(len(p.name) <= 255 and "\0" not in p.name for p in written)


def test_an_unwritable_output_directory_stops_the_run_and_resumes_once_fixed(
    tmp_path: Path, sim: Simulator
) -> None:
    env = cli_env(sim, tmp_path / "ledger.db")
    manifest = kling_manifest(tmp_path, 2)
    (tmp_path / "out").write_text("a file where the output directory should be")

    stopped = genbatch(run_args(manifest), env=env, cwd=tmp_path)

    assert stopped.returncode == 4
    assert "output directory" in stopped.stderr
    assert "Traceback" not in stopped.stderr
    assert status(env, tmp_path)["counts"]["done"] == 0
    (tmp_path / "out").unlink()
    resumed = genbatch(run_args(manifest), env=env, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert sim.stats.submissions == 2


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs, mounted for the test (needs root; skipped elsewhere)."""
    with mounted_tmpfs(tmp_path / "disk", "64k") as disk:
        yield disk


def test_a_full_disk_leaves_no_partial_file_as_if_complete_and_resumes_once_space_is_back(
    tmp_path: Path, sim: Simulator, tiny_disk: Path
) -> None:
    filler = tiny_disk / "filler"
    filler.write_bytes(b"\0" * (63 * 1024))  # leaves less than one clip's worth of space
    env = cli_env(sim, tmp_path / "ledger.db")
    manifest = kling_manifest(
        tmp_path, 3, extra=f"output: {{dir: {tiny_disk}/out}}\n", name="disk.yaml"
    )
    manifest.write_text(manifest.read_text().replace("output:\n  dir: out\n", ""))

    stopped = genbatch(run_args(manifest), env=env, cwd=tmp_path)

    assert stopped.returncode == 4, stopped.stderr
    assert "No space left" in stopped.stderr
    counts = status(env, tmp_path)["counts"]
    assert counts["done"] == 0
    assert not [p for p in (tiny_disk / "out").iterdir() if p.suffix in (".mp4", ".part")]
    filler.unlink()
    resumed = genbatch(run_args(manifest), env=env, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert len(output_files(tiny_disk / "out")) == 3
    assert sim.stats.submissions == 3
    shutil.rmtree(tiny_disk / "out")


def test_a_link_planted_at_a_part_file_is_never_written_through(
    tmp_path: Path, sim: Simulator
) -> None:
    manifest = kling_manifest(tmp_path, 1, extra='  name: "clip"\n')
    env = cli_env(sim, tmp_path / "ledger.db")
    victim = tmp_path / "precious.txt"
    victim.write_bytes(b"not yours")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / ".clip.part").symlink_to(victim)

    done = genbatch(run_args(manifest), env=env, cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    assert victim.read_bytes() == b"not yours"
    [output] = output_files(tmp_path / "out")
    assert output.name == "clip.mp4" and not output.is_symlink()


def test_a_prompt_file_naming_the_process_environment_never_shows_the_token(
    tmp_path: Path, sim: Simulator
) -> None:
    env = cli_env(sim, tmp_path / "ledger.db")
    manifest = tmp_path / "m.yaml"
    manifest.write_text(
        "model: kling/kling-2-6/pro/text-to-video\nprompts: {file: /proc/self/environ}\n"
        "allow_outside_prompt_files: true\n",
        encoding="utf-8",
    )

    for command in ("plan", "run"):
        done = genbatch([command, str(manifest)], env=env, cwd=tmp_path, timeout=30)

        assert done.returncode == 2, done.stderr
        assert done.stderr.strip().splitlines() == [
            f"genbatch: error: {manifest}:2: prompts.file: prompt file '/proc/self/environ' "
            "is under /proc, which holds no prompt files"
        ]
        assert sim.token not in done.stdout + done.stderr
    assert sim.stats.calls["submit"] == 0


@pytest.mark.parametrize("kind", ["/dev/zero", "named pipe", "/dev/zero prompts", "pipe prompts"])
def test_a_device_or_a_pipe_as_manifest_or_prompt_file_is_one_line_and_exit_2(
    tmp_path: Path, sim: Simulator, kind: str
) -> None:
    env = cli_env(sim, tmp_path / "ledger.db")
    manifest = tmp_path / "m.yaml"
    if kind == "/dev/zero":
        manifest = Path("/dev/zero")
    elif kind == "named pipe":
        os.mkfifo(manifest)
    else:
        prompts = "/dev/zero" if kind.startswith("/dev") else "p.txt"
        if kind.startswith("pipe"):
            os.mkfifo(tmp_path / "p.txt")
        manifest.write_text(
            f"model: kling/kling-2-6/pro/text-to-video\nprompts: {{file: {prompts}}}\n"
            "allow_outside_prompt_files: true\n",
            encoding="utf-8",
        )

    # Reading a device whole used to end in MemoryError, and a pipe used to hang: a timeout here.
    done = genbatch(["plan", str(manifest)], env=env, cwd=tmp_path, timeout=30)

    assert done.returncode == 2, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert done.stderr.startswith(f"genbatch: error: {manifest}:"), done.stderr
    assert "Traceback" not in done.stderr


def test_a_token_quoted_back_by_the_server_is_redacted_before_it_is_shown_or_stored(
    tmp_path: Path,
) -> None:
    token = "sk-quoted-back-secret-7781"
    quoted = f"upstream refused token {token} (Authorization: Bearer {token})"
    with Simulator(SimulatorConfig(time_scale=FAST, token=token, seed=5)) as sim:
        env = cli_env(sim, tmp_path / "ledger.db")
        manifest = kling_manifest(tmp_path, 3)

        def fail_twice() -> None:
            # A gateway quoting the request's headers, then a generation error quoting the token.
            sim.inject(route="submit", fault="echo_auth", count=1)
            sim.inject(route="submit", fault="fail", error={"message": quoted, "code": "E1"})

        fail_twice()
        outputs = [genbatch(run_args(manifest, "-c", "1"), env=env, cwd=tmp_path)]
        fail_twice()
        retry = ["retry", str(manifest), "--poll-interval", "0.01", "-c", "1", "--json"]
        outputs.append(genbatch(retry, env=env, cwd=tmp_path))
        for command in (
            ["status", "--json"],
            ["status"],
            ["show", "#0", str(manifest)],
            ["show", "#1", str(manifest), "--json"],
            ["export", str(manifest), "--all-states"],
            ["export", str(manifest), "--all-states", "-f", "csv", "-o", "rows.csv"],
            ["gallery", str(manifest), "-o", "gallery.html"],
        ):
            outputs.append(genbatch(command, env=env, cwd=tmp_path))

    assert sim.stats.faults["echo_auth"] == 2
    assert [done.returncode for done in outputs[:2]] == [1, 1]
    for done in outputs:
        assert token not in done.stdout + done.stderr, done.args
    # Not vacuous: both failures were shown and stored, redacted.
    assert "Request refused by the gateway" in outputs[0].stderr + outputs[0].stdout
    shown = "".join(done.stdout for done in outputs[4:7])  # show, show --json, export
    assert "authorization=[redacted];" in shown
    assert "upstream refused token [redacted] (Authorization: [redacted])" in shown
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert token.encode() not in path.read_bytes(), path


@pytest.mark.parametrize(
    ("remote", "shown"),
    [
        ({"message": "denied: Authorization: Bearer sk-live-abcdef123"}, "denied: Authorization: "),
        ('{"authorization": "Basic dXNlcjpwYXNz"}', '{"authorization": "'),
        ([{"error": "retry with Bearer eyJhbGciOi.x.y"}], "retry with Bearer "),
        ("fetch https://user:hunter22@cdn.example.com/a failed", "fetch https://"),
    ],
)
def test_a_credential_the_client_does_not_know_is_still_redacted_from_remote_errors(
    remote: object, shown: str
) -> None:
    text = describe_remote_error(remote)

    assert text.startswith(shown)
    assert "[redacted]" in text
    assert not any(secret in text for secret in ("sk-live", "dXNlcjpw", "eyJhbG", "hunter22"))
    assert describe_remote_error(text) == text  # redacting twice changes nothing


def test_api_calls_redirected_on_the_api_host_are_followed_and_paid_once(
    tmp_path: Path, sim: Simulator
) -> None:
    env = cli_env(sim, tmp_path / "ledger.db")
    sim.inject(route="submit", fault="redirect", count=1)
    sim.inject(route="result", fault="redirect", count=2)

    done = genbatch(run_args(kling_manifest(tmp_path, 2)), env=env, cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    assert sim.stats.faults["redirect"] == 3
    assert sim.stats.submissions == 2 and sim.stats.duplicate_submissions == 0
    assert len(output_files(tmp_path / "out")) == 2


def test_an_api_call_redirected_to_another_host_is_not_followed(
    tmp_path: Path, sim: Simulator
) -> None:
    env = cli_env(sim, tmp_path / "ledger.db")
    elsewhere = sim.base_url.replace("127.0.0.1", "localhost") + "/v1/requests/x/result"
    sim.inject(route="result", fault="redirect", count=1, location=elsewhere)

    done = genbatch(run_args(kling_manifest(tmp_path, 1)), env=env, cwd=tmp_path)

    assert done.returncode == 0, done.stderr  # the poll is asked again, on the API itself
    assert sim.stats.auth_failures == 0  # nothing reached the other host without its token
    assert status(env, tmp_path)["counts"]["done"] == 1
