"""`genbatch run`, end to end: the CLI against the simulator over loopback, a real SQLite ledger."""

from __future__ import annotations

import json
import os
import re
import signal
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from genbatch.catalog import find_model
from genbatch.simulator import FaultConfig, Simulator, SimulatorConfig

from support import (
    KLING,
    cli_env,
    genbatch,
    kill,
    kling_manifest,
    output_files,
    run_args,
    sha256_of,
    start_genbatch,
    status,
    wait_until,
)

FAST = 0.0005  # a 240 s Kling clip takes 0.12 s


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(SimulatorConfig(time_scale=FAST, capacity=8, seed=1)) as simulator:
        yield simulator


def served_hashes(simulator: Simulator) -> set[str]:
    return {out.sha256 for info in simulator.records.list() for out in info.outputs}


def test_a_run_downloads_every_output_verified_and_exits_0(tmp_path: Path, sim: Simulator) -> None:
    manifest = kling_manifest(tmp_path, 6)
    env = cli_env(sim, tmp_path / "ledger.db")

    done = genbatch(run_args(manifest), env=env, cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    files = output_files(tmp_path / "out")
    assert len(files) == 6
    assert all(f.suffix == ".mp4" for f in files)
    assert {sha256_of(f) for f in files} == served_hashes(sim)
    assert sim.stats.submissions == 6
    assert sim.stats.duplicate_submissions == 0
    assert status(env, tmp_path)["counts"]["done"] == 6


def test_running_again_submits_nothing_and_an_edited_manifest_runs_only_new_jobs(
    tmp_path: Path, sim: Simulator
) -> None:
    env = cli_env(sim, tmp_path / "ledger.db")
    manifest = kling_manifest(tmp_path, 3)
    assert genbatch(run_args(manifest), env=env, cwd=tmp_path).returncode == 0

    again = genbatch(run_args(manifest), env=env, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert sim.stats.submissions == 3

    kling_manifest(tmp_path, 5)  # the same three prompts, and two more
    edited = genbatch(run_args(manifest), env=env, cwd=tmp_path)
    assert edited.returncode == 0, edited.stderr
    assert sim.stats.submissions == 5
    assert sim.stats.duplicate_submissions == 0
    assert len(output_files(tmp_path / "out")) == 5


def test_plan_counts_new_and_done_jobs_sending_nothing_nor_creating_a_ledger(
    tmp_path: Path, sim: Simulator
) -> None:
    env = cli_env(sim, tmp_path / "ledger.db")
    manifest = kling_manifest(tmp_path, 2)

    before = genbatch(["plan", str(manifest), "--json"], env=env, cwd=tmp_path)
    assert before.returncode == 0, before.stderr
    assert json.loads(before.stdout)["new"] == 2
    assert not (tmp_path / "ledger.db").exists()
    assert dict(sim.stats.calls) == {"catalog": 1}  # the model's schema and price, free
    offline = genbatch(["plan", str(manifest), "--offline"], env=env, cwd=tmp_path)
    assert offline.returncode == 0 and dict(sim.stats.calls) == {"catalog": 1}

    genbatch(run_args(manifest), env=env, cwd=tmp_path)
    kling_manifest(tmp_path, 3)
    after = json.loads(genbatch(["plan", str(manifest), "--json"], env=env, cwd=tmp_path).stdout)
    assert (after["jobs"], after["new"], after["done"]) == (3, 1, 2)


def test_status_json_maps_every_state_name_to_a_count(tmp_path: Path, sim: Simulator) -> None:
    env = cli_env(sim, tmp_path / "ledger.db")
    manifest = kling_manifest(tmp_path, 2)
    genbatch(run_args(manifest), env=env, cwd=tmp_path)

    listed = genbatch(["status", "--json"], env=env, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    report = json.loads(listed.stdout)

    assert set(report["counts"]) == {
        "pending",
        "submitting",
        "queued",
        "running",
        "fetching",
        "done",
        "failed",
        "cancelled",
        "unknown",
        "expired",
    }
    assert report["runs"][0]["counts"]["done"] == 2
    one = json.loads(genbatch(["status", str(manifest), "--json"], env=env, cwd=tmp_path).stdout)
    assert one["total"] == 2


def test_the_ledger_is_created_readable_by_its_owner_only(tmp_path: Path, sim: Simulator) -> None:
    env = cli_env(sim, tmp_path / "state" / "ledger.db")
    genbatch(run_args(kling_manifest(tmp_path, 1)), env=env, cwd=tmp_path)

    mode = stat.S_IMODE(os.stat(tmp_path / "state" / "ledger.db").st_mode)
    assert mode == 0o600


def test_a_lost_submit_answer_makes_the_job_unknown_and_it_is_never_resubmitted_silently(
    tmp_path: Path, sim: Simulator
) -> None:
    env = cli_env(sim, tmp_path / "ledger.db")
    manifest = kling_manifest(tmp_path, 3)
    sim.inject(route="submit", fault="lost_answer", count=1)

    first = genbatch(run_args(manifest), env=env, cwd=tmp_path)
    assert first.returncode == 1
    assert "unknown" in first.stderr
    assert status(env, tmp_path)["counts"]["unknown"] == 1
    assert sim.stats.submissions == 3  # the lost one exists remotely

    again = genbatch(run_args(manifest), env=env, cwd=tmp_path)
    assert again.returncode == 1
    assert sim.stats.submissions == 3

    forced = genbatch(run_args(manifest, "--resubmit-unknown", "--json"), env=env, cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    assert sim.stats.duplicate_submissions == 1  # paid twice, as the user asked
    # The progress counts the resubmitted job as it goes: pending, then done, never unknown.
    events = [json.loads(line) for line in forced.stdout.splitlines()]
    progress = [e for e in events if e["event"] == "progress"]
    assert progress[0]["counts"] == {"done": 2, "pending": 1}, progress[0]
    assert progress[-1]["counts"] == {"done": 3}
    resubmitted = [e for e in events if e["event"] == "job" and e["previous"] == "unknown"]
    assert [e["state"] for e in resubmitted] == ["pending"]


def test_input_rejected_by_the_api_fails_that_job_with_the_servers_message(
    tmp_path: Path, sim: Simulator
) -> None:
    # With validate: false an unknown model is sent unchecked; the API says 400001 for it.
    env = cli_env(sim, tmp_path / "ledger.db")
    manifest = tmp_path / "m.yaml"
    manifest.write_text(
        "model: acme/unknown-model\nvalidate: false\nprompts: [a, b]\noutput: {dir: out}\n"
    )

    done = genbatch(run_args(manifest), env=env, cwd=tmp_path)

    assert done.returncode == 1
    assert status(env, tmp_path)["counts"]["failed"] == 2
    assert "400001" in done.stderr or "model" in done.stderr


def test_a_bad_token_stops_the_run_with_exit_3_and_leaves_it_resumable(
    tmp_path: Path, sim: Simulator
) -> None:
    manifest = kling_manifest(tmp_path, 3)
    env = cli_env(sim, tmp_path / "ledger.db", RUNCOMFY_TOKEN="wrong-token")

    done = genbatch(run_args(manifest), env=env, cwd=tmp_path)

    assert done.returncode == 3
    assert "token" in done.stderr.lower()
    # Where to put it right, then what to run once it is: the command's last two lines.
    assert done.stderr.splitlines()[-2] == "genbatch: the refused token came from $RUNCOMFY_TOKEN"
    assert done.stderr.splitlines()[-1].startswith("genbatch: next: genbatch run ")
    assert "wrong-token" not in done.stderr + done.stdout
    assert "Traceback" not in done.stderr
    assert status(env, tmp_path)["counts"]["pending"] == 3
    good = genbatch(run_args(manifest), env=cli_env(sim, tmp_path / "ledger.db"), cwd=tmp_path)
    assert good.returncode == 0, good.stderr


def test_an_empty_balance_stops_submitting_then_a_resume_finishes(tmp_path: Path) -> None:
    clip = find_model(KLING)
    assert clip is not None
    price_of_two_clips = 2 * clip.cost_usd({"prompt": "x"}) + 0.01
    config = SimulatorConfig(time_scale=FAST, balance_usd=price_of_two_clips, seed=2)
    with Simulator(config) as sim:
        env = cli_env(sim, tmp_path / "ledger.db")
        manifest = kling_manifest(tmp_path, 4)

        stopped = genbatch(run_args(manifest, "-c", "1"), env=env, cwd=tmp_path)
        assert stopped.returncode == 3
        assert "balance" in stopped.stderr
        counts = status(env, tmp_path)["counts"]
        assert (counts["done"], counts["pending"]) == (2, 2)

        sim.set_balance(None)
        resumed = genbatch(run_args(manifest), env=env, cwd=tmp_path)
        assert resumed.returncode == 0, resumed.stderr
        assert sim.stats.submissions == 4


def test_transient_faults_on_polls_and_downloads_are_retried_to_completion(tmp_path: Path) -> None:
    faults = FaultConfig(
        server_error=0.15, drop=0.1, truncate=0.2, routes=frozenset({"poll", "file"})
    )
    with Simulator(SimulatorConfig(time_scale=FAST, faults=faults, seed=3)) as sim:
        env = cli_env(sim, tmp_path / "ledger.db")
        done = genbatch(run_args(kling_manifest(tmp_path, 8)), env=env, cwd=tmp_path)

        assert done.returncode == 0, done.stderr
        assert sum(sim.stats.faults.values()) > 0
        assert {sha256_of(f) for f in output_files(tmp_path / "out")} == served_hashes(sim)
        assert sim.stats.duplicate_submissions == 0


def test_a_stale_part_file_is_never_resumed_even_when_the_first_download_attempt_fails(
    tmp_path: Path,
) -> None:
    manifest = kling_manifest(tmp_path, 1, extra='  name: "clip"\n')
    stale = tmp_path / "out" / ".clip.part"
    stale.parent.mkdir()
    stale.write_bytes(b"bytes of another attempt, left by a process that was killed")
    with Simulator(SimulatorConfig(time_scale=FAST, seed=5)) as sim:
        # The first attempt fails before writing anything; the retry must not resume the
        # stale bytes (the file host honours Range, so it would send only the rest).
        sim.inject(route="file", fault="server_error", count=1)
        env = cli_env(sim, tmp_path / "ledger.db")
        done = genbatch(run_args(manifest), env=env, cwd=tmp_path)

        assert done.returncode == 0, done.stderr
        assert sim.stats.faults["server_error"] == 1
        [output] = output_files(tmp_path / "out")
        assert {sha256_of(output)} == served_hashes(sim)
    assert not stale.exists()


def test_rate_limits_are_waited_out_without_losing_or_repeating_jobs(tmp_path: Path) -> None:
    faults = FaultConfig(rate_limit=0.3, retry_after=0.05, routes=frozenset({"submit"}))
    with Simulator(SimulatorConfig(time_scale=FAST, faults=faults, seed=4)) as sim:
        env = cli_env(sim, tmp_path / "ledger.db")
        done = genbatch(run_args(kling_manifest(tmp_path, 10)), env=env, cwd=tmp_path)

        assert done.returncode == 0, done.stderr
        assert sim.stats.faults["rate_limit"] + sim.stats.faults["rate_limit_bare"] > 0
        assert sim.stats.submissions == 10
        assert sim.stats.duplicate_submissions == 0


def test_concurrency_limits_requests_in_flight_remotely(tmp_path: Path) -> None:
    with Simulator(SimulatorConfig(time_scale=0.002, capacity=50, seed=5)) as sim:
        env = cli_env(sim, tmp_path / "ledger.db")
        done = genbatch(
            run_args(kling_manifest(tmp_path, 12), "--concurrency", "3"), env=env, cwd=tmp_path
        )

        assert done.returncode == 0, done.stderr
        assert sim.stats.peak_active == 3


def test_polling_adapts_so_a_job_costs_a_handful_of_calls(tmp_path: Path) -> None:
    # 240 s clips scaled to 2.4 s, with a 0.05 s floor: fixed polling would make ~48 calls a job.
    with Simulator(SimulatorConfig(time_scale=0.01, capacity=20, seed=6)) as sim:
        env = cli_env(sim, tmp_path / "ledger.db")
        done = genbatch(
            ["run", str(kling_manifest(tmp_path, 10)), "--poll-interval", "0.05"],
            env=env,
            cwd=tmp_path,
        )

        assert done.returncode == 0, done.stderr
        polls_per_job = (sim.stats.calls["result"] + sim.stats.calls["status"]) / 10
        assert polls_per_job <= 16


def test_the_token_never_appears_in_any_artifact_of_a_run(tmp_path: Path) -> None:
    token = "sk-very-secret-token-4242"
    with Simulator(SimulatorConfig(time_scale=FAST, token=token, seed=7)) as sim:
        sim.inject(route="submit", fault="lost_answer", count=1)
        sim.inject(route="result", fault="server_error", count=2)
        env = cli_env(sim, tmp_path / "ledger.db")
        manifest = kling_manifest(tmp_path, 3)
        outputs = [
            genbatch(run_args(manifest), env=env, cwd=tmp_path),
            genbatch(run_args(manifest, "--json"), env=env, cwd=tmp_path),
            genbatch(["status", "--json"], env=env, cwd=tmp_path),
        ]

    for done in outputs:
        assert token not in done.stdout + done.stderr
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert token.encode() not in path.read_bytes(), path


def test_json_output_is_one_event_per_line(tmp_path: Path, sim: Simulator) -> None:
    env = cli_env(sim, tmp_path / "ledger.db")
    done = genbatch(run_args(kling_manifest(tmp_path, 2), "--json"), env=env, cwd=tmp_path)

    events = [json.loads(line) for line in done.stdout.splitlines()]
    done_events = [e for e in events if e["event"] == "job" and e["state"] == "done"]
    assert len(done_events) == 2
    assert all(e["request_id"] for e in done_events)


def test_a_corrupt_ledger_is_refused_never_replaced(tmp_path: Path, sim: Simulator) -> None:
    ledger = tmp_path / "ledger.db"
    ledger.write_bytes(b"this is not a database, but somebody's precious file" * 100)
    env = cli_env(sim, ledger)

    done = genbatch(run_args(kling_manifest(tmp_path, 1)), env=env, cwd=tmp_path)

    assert done.returncode == 4
    assert len(done.stderr.strip().splitlines()) == 1
    assert "corrupt" in done.stderr
    assert ledger.read_bytes().startswith(b"this is not a database")
    assert sim.stats.submissions == 0


def test_bad_manifests_get_one_line_errors_and_exit_2(tmp_path: Path, sim: Simulator) -> None:
    env = cli_env(sim, tmp_path / "ledger.db")
    cases = {
        "duration.yaml": "model: kling/kling-2-6/pro/text-to-video\nprompts: [a]\n"
        "grid:\n  duration: [5, 7]\n",
        "syntax.yaml": "model: [unclosed\n",
        "dupe.yaml": "model: x/y\nmodel: x/z\nprompts: [a]\n",
        "missing.yaml": "prompts: [a]\n",
    }
    for name, text in cases.items():
        (tmp_path / name).write_text(text)
        done = genbatch(run_args(tmp_path / name), env=env, cwd=tmp_path)
        assert done.returncode == 2, (name, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1, (name, done.stderr)
        assert name in done.stderr and "Traceback" not in done.stderr
    assert sim.stats.submissions == 0
    assert (
        "duration.yaml:4"
        in genbatch(run_args(tmp_path / "duration.yaml"), env=env, cwd=tmp_path).stderr
    )


def test_plain_http_api_bases_are_refused_unless_loopback(tmp_path: Path, sim: Simulator) -> None:
    env = cli_env(sim, tmp_path / "ledger.db")
    done = genbatch(
        run_args(kling_manifest(tmp_path, 1), "--api-base", "http://api.example.com"),
        env=env,
        cwd=tmp_path,
    )

    assert done.returncode == 2
    assert "http://" in done.stderr


def test_a_budget_stops_submitting_lets_in_flight_jobs_finish_and_says_what_is_left(
    tmp_path: Path, sim: Simulator
) -> None:
    clip = find_model(KLING)
    assert clip is not None
    env = cli_env(sim, tmp_path / "ledger.db")
    budget = 2.5 * clip.cost_usd({"prompt": "x"})
    manifest = kling_manifest(tmp_path, 5, extra=f"budget_usd: {budget}\n")

    stopped = genbatch(run_args(manifest, "-c", "1"), env=env, cwd=tmp_path)

    assert stopped.returncode == 5
    assert "budget reached" in stopped.stderr
    assert "3 job(s) left to run" in stopped.stderr
    counts = status(env, tmp_path)["counts"]
    assert (counts["done"], counts["pending"]) == (2, 3)
    assert sim.stats.submissions == 2

    raised = genbatch(run_args(manifest, "--budget", "100"), env=env, cwd=tmp_path)
    assert raised.returncode == 0, raised.stderr
    assert sim.stats.submissions == 5


def test_a_budget_refuses_to_run_jobs_it_cannot_price(tmp_path: Path, sim: Simulator) -> None:
    env = cli_env(sim, tmp_path / "ledger.db")
    manifest = tmp_path / "m.yaml"
    manifest.write_text("model: acme/new-model\nvalidate: false\nprompts: [a]\nbudget_usd: 5\n")

    done = genbatch(run_args(manifest), env=env, cwd=tmp_path)

    assert done.returncode == 2
    assert "no known price" in done.stderr
    assert sim.stats.submissions == 0


def test_plan_estimates_the_cost_of_the_manifest_and_of_what_is_left(
    tmp_path: Path, sim: Simulator
) -> None:
    env = cli_env(sim, tmp_path / "ledger.db")
    manifest = kling_manifest(tmp_path, 3, extra="inputs: {duration: 10}\n")
    plan = json.loads(genbatch(["plan", str(manifest), "--json"], env=env, cwd=tmp_path).stdout)
    assert plan["cost_usd"] == pytest.approx(3 * 1.40)  # 10 s with audio: $0.14 a second

    genbatch(run_args(manifest), env=env, cwd=tmp_path)
    kling_manifest(tmp_path, 4, extra="inputs: {duration: 10}\n")
    after = json.loads(genbatch(["plan", str(manifest), "--json"], env=env, cwd=tmp_path).stdout)
    assert (after["cost_usd"], after["cost_left_usd"]) == (pytest.approx(5.60), pytest.approx(1.40))


def test_plan_says_its_job_list_is_a_sample_and_shows_all_on_request(
    tmp_path: Path, sim: Simulator
) -> None:
    env = cli_env(sim, tmp_path / "ledger.db")
    manifest = kling_manifest(tmp_path, 8)

    sample = genbatch(["plan", str(manifest)], env=env, cwd=tmp_path).stdout
    everything = genbatch(["plan", str(manifest), "--all"], env=env, cwd=tmp_path).stdout
    three = genbatch(["plan", str(manifest), "--limit", "3"], env=env, cwd=tmp_path).stdout

    assert "showing 5 of 8 jobs (--limit N or --all for more):" in sample
    assert sample.count("\n  #") == 5
    assert "showing 8 of 8 jobs:" in everything and everything.count("\n  #") == 8
    assert "showing 3 of 8 jobs" in three and three.count("\n  #") == 3


def test_manifest_prices_price_models_genbatch_does_not_know(
    tmp_path: Path, sim: Simulator
) -> None:
    env = cli_env(sim, tmp_path / "ledger.db")
    manifest = tmp_path / "m.yaml"
    manifest.write_text(
        "model: acme/new-model\nvalidate: false\nprompts: [a, b]\n"
        "prices:\n  acme/new-model: {base_price_usd: 0.25}\n"
    )

    plan = json.loads(genbatch(["plan", str(manifest), "--json"], env=env, cwd=tmp_path).stdout)

    assert (plan["cost_usd"], plan["unpriced_jobs"]) == (0.5, 0)


def test_the_command_line_concurrency_overrides_the_manifests_on_a_single_machine(
    tmp_path: Path,
) -> None:
    with Simulator(SimulatorConfig(time_scale=0.002, capacity=50, seed=8)) as sim:
        env = cli_env(sim, tmp_path / "ledger.db")
        manifest = kling_manifest(tmp_path, 12, extra="concurrency: 2\n")
        done = genbatch(run_args(manifest, "--concurrency", "5"), env=env, cwd=tmp_path)

        assert done.returncode == 0, done.stderr
        assert sim.stats.peak_active == 5


def test_a_job_with_several_output_files_keeps_each_one_verified(
    tmp_path: Path, sim: Simulator
) -> None:
    manifest = tmp_path / "stills.yaml"
    manifest.write_text(
        "model: google/nano-banana-2/text-to-image\n"
        'prompts: ["a lighthouse at dawn"]\n'
        "inputs: {num_images: 3}\n"
        'output:\n  dir: out\n  name: "still"\n',
        encoding="utf-8",
    )
    env = cli_env(sim, tmp_path / "ledger.db")

    done = genbatch(run_args(manifest), env=env, cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    files = output_files(tmp_path / "out")
    assert sorted(f.stem for f in files) == ["still_0", "still_1", "still_2"]
    assert {sha256_of(f) for f in files} == served_hashes(sim)
    again = genbatch(run_args(manifest), env=env, cwd=tmp_path)
    assert again.returncode == 0 and sim.stats.submissions == 1


def test_a_second_run_on_a_ledger_in_use_names_the_process_holding_it(tmp_path: Path) -> None:
    # Generations of minutes: the first run is still running when the second starts, however
    # slow the box (a loaded one started the second after the first had ended).
    with Simulator(SimulatorConfig(time_scale=1.0, capacity=8, seed=12)) as slow_sim:
        env = cli_env(slow_sim, tmp_path / "ledger.db")
        manifest = kling_manifest(tmp_path, 2)
        first = start_genbatch(run_args(manifest), env=env, cwd=tmp_path)
        wait_until(lambda: slow_sim.stats.submissions == 2, what="the first run to submit")

        second = genbatch(run_args(manifest), env=env, cwd=tmp_path)

        assert second.returncode == 4, second.stderr
        assert f"another genbatch process (pid {first.pid} on " in second.stderr
        assert "--ledger PATH" in second.stderr
        assert len(second.stderr.strip().splitlines()) == 1
        assert kill(first, signal.SIGINT)[0] == 130


def test_a_rehearsal_interrupted_with_jobs_in_flight_resumes_them_to_done(tmp_path: Path) -> None:
    # `genbatch run --simulate` starts a new simulator each time: the next one takes on the
    # requests the ledger holds in flight, on the same port, instead of saying they are gone.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNCOMFY_", "GENBATCH_"))}
    env["GENBATCH_LEDGER"] = str(tmp_path / "ledger.simulated.db")  # the rehearsal's ledger
    manifest = kling_manifest(tmp_path, 12)
    args = ["run", str(manifest), "--simulate", "-c", "4"]
    process = start_genbatch(args, env=env, cwd=tmp_path)
    wait_until(
        lambda: sum(status(env, tmp_path)["counts"][s] for s in ("queued", "running")) > 0,
        what="jobs in flight",
    )
    code, _, interrupted = kill(process, signal.SIGINT)
    assert code == 130, interrupted
    in_flight = status(env, tmp_path)["counts"]
    assert in_flight["done"] < 12

    resumed = genbatch(args, env=env, cwd=tmp_path)

    assert resumed.returncode == 0, resumed.stderr
    counts = status(env, tmp_path)["counts"]
    assert (counts["done"], counts["expired"]) == (12, 0)
    assert len(output_files(tmp_path / "out" / "simulated")) == 12


def test_a_rehearsal_is_kept_apart_and_the_real_run_after_it_submits_every_job(
    tmp_path: Path, sim: Simulator
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNCOMFY_", "GENBATCH_"))}
    manifest = kling_manifest(tmp_path, 3)
    rehearsed = genbatch(["run", str(manifest), "--simulate"], env=env, cwd=tmp_path)
    assert rehearsed.returncode == 0, rehearsed.stderr
    assert "a rehearsal, kept apart from real runs" in rehearsed.stderr

    real_api = {**env, "RUNCOMFY_API_BASE": sim.base_url, "RUNCOMFY_TOKEN": sim.token}
    real = genbatch(run_args(manifest), env=real_api, cwd=tmp_path)

    # The ledger found beside the manifest is not the rehearsal's: the real run does not take
    # its placeholder files for generations, and submits its three jobs.
    assert real.returncode == 0, real.stderr
    assert sim.stats.submissions == 3
    assert len(output_files(tmp_path / "out")) == 3  # the real files; the rehearsal's apart
    assert len(output_files(tmp_path / "out" / "simulated")) == 3


def test_a_job_resubmitted_after_a_lost_answer_still_counts_its_first_attempt_in_the_budget(
    tmp_path: Path, sim: Simulator
) -> None:
    env = cli_env(sim, tmp_path / "ledger.db")
    manifest = kling_manifest(tmp_path, 2)
    sim.inject(route="submit", fault="lost_answer", count=1)  # created, billed, answer lost
    first = genbatch(run_args(manifest), env=env, cwd=tmp_path)
    assert first.returncode == 1 and status(env, tmp_path)["counts"]["unknown"] == 1
    spent = float(re.findall(r"estimated spend \$([\d.]+)", first.stderr)[0])  # both jobs

    resubmit = run_args(manifest, "--resubmit-unknown", "--budget", str(spent))
    stopped = genbatch(resubmit, env=env, cwd=tmp_path)

    # The lost submit may be billed: sending the job again would pass the budget.
    assert stopped.returncode == 5, stopped.stderr
    assert "budget reached" in stopped.stderr
    assert sim.stats.submissions == 2
    assert f"estimated spend ${spent:,.2f}" in stopped.stderr
    again = genbatch(run_args(manifest, "--budget", str(spent * 1.5 + 0.01)), env=env, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert sim.stats.submissions == 3  # paid twice, as asked, within the budget raised
