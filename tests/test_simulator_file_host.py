"""Output files from a second host name, as RunComfy serves them from a CDN (issue 13, path 4).

With ``file_host`` the simulator runs a second server on its own port, addressed by another
name that resolves to loopback (``localhost`` beside the API's ``127.0.0.1``), and output URLs
name it; with ``redirect_files`` they name the API's host, which answers 307 to the file host.
So a downloader's host policy is exercised for real: an output host the manifest does not
allow is refused, and ``allowed_hosts`` lets it through.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from hashlib import sha256
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from genbatch.simulator import Simulator

from support import (
    cli_env,
    genbatch,
    kill,
    kling_manifest,
    output_files,
    run_args,
    sha256_of,
    start_genbatch,
    status,
)

MakeSimulator = Callable[..., Simulator]

KLING = "kling/kling-2-6/pro/text-to-video"
FAST = 0.0005


def output_url(sim: Simulator) -> tuple[str, str]:
    """Submit one clip over HTTP and wait for it: (its request id, its output URL)."""
    with httpx.Client(base_url=sim.base_url, headers=sim.headers, timeout=10) as client:
        request_id = client.post(f"/v1/models/{KLING}", json={"prompt": "a fox"}).json()[
            "request_id"
        ]
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            result = client.get(f"/v1/requests/{request_id}/result").json()
            if result["status"] == "succeeded":
                return request_id, str(result["output"]["video"])
            time.sleep(0.01)
    raise AssertionError("never finished")


def served_sha256(sim: Simulator, request_id: str) -> str:
    return sim.records[request_id].outputs[0].sha256


# -- the simulator itself, over real HTTP ---------------------------------------------------


def test_output_urls_name_the_file_host_which_serves_the_bytes(
    make_simulator: MakeSimulator,
) -> None:
    sim = make_simulator(file_host="localhost")

    request_id, url = output_url(sim)
    answer = httpx.get(url, timeout=10)

    parts = urlsplit(url)
    assert parts.hostname == "localhost" and parts.port == sim.file_port != sim.port
    assert sim.files_url == f"http://localhost:{sim.file_port}"
    assert answer.status_code == 200
    assert sha256(answer.content).hexdigest() == served_sha256(sim, request_id)
    assert sim.records[request_id].outputs[0].url == url
    assert sim.stats.calls["file"] == 1


def test_the_file_host_serves_files_only(make_simulator: MakeSimulator) -> None:
    sim = make_simulator(file_host="localhost")

    answer = httpx.post(f"{sim.files_url}/v1/models/{KLING}", json={"prompt": "x"}, timeout=10)

    assert answer.status_code == 404
    assert sim.stats.submissions == 0


def test_the_apis_file_urls_can_redirect_to_the_file_host_as_a_cdn_front_does(
    make_simulator: MakeSimulator,
) -> None:
    sim = make_simulator(file_host="localhost", redirect_files=True)

    request_id, url = output_url(sim)
    first_hop = httpx.get(url, timeout=10)
    followed = httpx.get(url, timeout=10, follow_redirects=True)

    assert urlsplit(url).hostname == "127.0.0.1"
    assert first_hop.status_code == 307
    assert first_hop.headers["location"] == f"{sim.files_url}{urlsplit(url).path}"
    assert followed.status_code == 200
    assert urlsplit(str(followed.url)).hostname == "localhost"
    assert sha256(followed.content).hexdigest() == served_sha256(sim, request_id)
    assert sim.stats.file_redirects == 2


def test_a_redirect_without_a_file_host_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="redirect_files needs a file_host"):
        Simulator(redirect_files=True)


def test_genbatch_simulate_serves_files_from_the_host_named_by_file_host(tmp_path: Path) -> None:
    process = start_genbatch(
        ["simulate", "--port", "0", "--file-host", "localhost", "--redirect-files"],
        env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1"},
        cwd=tmp_path,
    )
    try:
        assert process.stdout is not None
        announced = [process.stdout.readline() for _ in range(3)]
    finally:
        code, rest, _ = kill(process, signal.SIGTERM)

    assert announced[0].startswith("genbatch simulator listening on http://127.0.0.1:")
    assert announced[1].startswith("output files served from http://localhost:")
    assert announced[1].rstrip().endswith("(the API's file URLs redirect there)")
    assert code == 0 and '"file_redirects": 0' in rest


# -- genbatch run against it ------------------------------------------------------------------


@pytest.mark.parametrize("redirect", [False, True], ids=["direct", "redirected"])
def test_allowed_hosts_lets_a_run_fetch_outputs_from_the_file_host(
    tmp_path: Path, make_simulator: MakeSimulator, redirect: bool
) -> None:
    sim = make_simulator(
        time_scale=FAST, capacity=8, file_host="localhost", redirect_files=redirect
    )
    manifest = kling_manifest(tmp_path, 3, extra="allowed_hosts: [localhost]\n")
    env = cli_env(sim, tmp_path / "ledger.db")

    done = genbatch(run_args(manifest), env=env, cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    files = output_files(tmp_path / "out")
    served = {out.sha256 for info in sim.records.list() for out in info.outputs}
    assert {sha256_of(f) for f in files} == served and len(files) == 3
    assert sim.stats.files_served == 3
    assert sim.stats.file_redirects == (3 if redirect else 0)
    assert sim.stats.file_requests_with_token == 0


@pytest.mark.parametrize("redirect", [False, True], ids=["direct", "redirected"])
def test_an_output_host_not_allowed_is_not_fetched_and_the_job_is_not_done(
    tmp_path: Path, make_simulator: MakeSimulator, redirect: bool
) -> None:
    sim = make_simulator(
        time_scale=FAST, capacity=8, file_host="localhost", redirect_files=redirect
    )
    manifest = kling_manifest(tmp_path, 2)
    env = cli_env(sim, tmp_path / "ledger.db")

    done = genbatch(run_args(manifest), env=env, cwd=tmp_path)

    assert done.returncode == 1, done.stderr
    assert "not allowed" in done.stderr
    assert status(env, tmp_path)["counts"]["done"] == 0
    assert not (tmp_path / "out").exists() or output_files(tmp_path / "out") == []
    assert sim.stats.calls["file"] == 0  # the file host was never asked
    assert sim.stats.submissions == 2


def test_allowing_the_host_afterwards_fetches_the_refused_outputs_without_paying_again(
    tmp_path: Path, make_simulator: MakeSimulator
) -> None:
    sim = make_simulator(time_scale=FAST, capacity=8, file_host="localhost")
    manifest = kling_manifest(tmp_path, 2)
    env = cli_env(sim, tmp_path / "ledger.db")
    refused = genbatch(run_args(manifest), env=env, cwd=tmp_path)
    assert refused.returncode == 1, refused.stderr
    assert status(env, tmp_path)["counts"]["fetching"] == 2  # paid, kept: not failed
    retried = genbatch(
        ["retry", str(manifest), "--failed", "--poll-interval", "0.01"], env=env, cwd=tmp_path
    )
    assert retried.returncode == 1, retried.stderr
    assert sim.stats.submissions == 2  # a succeeded generation is never sent again

    manifest.write_text(manifest.read_text() + "allowed_hosts: [localhost]\n")
    again = genbatch(run_args(manifest), env=env, cwd=tmp_path)

    assert again.returncode == 0, again.stderr
    assert sim.stats.submissions == 2
    assert len(output_files(tmp_path / "out")) == 2


@pytest.mark.parametrize("pattern", [".localhost", '"*.localhost"'], ids=["dot", "star"])
def test_allowed_hosts_takes_a_domain_with_its_subdomains_in_either_form(
    tmp_path: Path, make_simulator: MakeSimulator, pattern: str
) -> None:
    sim = make_simulator(time_scale=FAST, capacity=8, file_host="localhost")
    manifest = kling_manifest(tmp_path, 2, extra=f"allowed_hosts: [{pattern}]\n")
    env = cli_env(sim, tmp_path / "ledger.db")

    done = genbatch(run_args(manifest), env=env, cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    files = output_files(tmp_path / "out")
    served = {out.sha256 for info in sim.records.list() for out in info.outputs}
    assert {sha256_of(f) for f in files} == served and len(files) == 2


@pytest.mark.parametrize(
    "pattern", ['".sub.localhost"', '"*.sub.localhost"', '"files.localhost"'], ids=str
)
def test_allowed_hosts_patterns_never_match_a_parent_or_a_sibling(
    tmp_path: Path, make_simulator: MakeSimulator, pattern: str
) -> None:
    sim = make_simulator(time_scale=FAST, capacity=8, file_host="localhost")
    manifest = kling_manifest(tmp_path, 1, extra=f"allowed_hosts: [{pattern}]\n")
    env = cli_env(sim, tmp_path / "ledger.db")

    done = genbatch(run_args(manifest), env=env, cwd=tmp_path)

    assert done.returncode == 1, done.stderr
    assert "not allowed" in done.stderr
    assert sim.stats.calls["file"] == 0


@pytest.mark.parametrize("pattern", ['"*"', '"*localhost"', '"**.localhost"', '"*.*.localhost"'])
def test_allowed_hosts_refuses_other_wildcards(tmp_path: Path, pattern: str) -> None:
    manifest = kling_manifest(tmp_path, 1, extra=f"allowed_hosts: [{pattern}]\n")

    done = genbatch(["plan", str(manifest)], env=dict(os.environ), cwd=tmp_path)

    assert done.returncode == 2
    assert "allowed_hosts" in done.stderr and "is not a host name" in done.stderr
