"""A 4xx page answered to ONE job's submit, every time: a web firewall refusing that job's
content, or a proxy's body-size limit. The page is the gateway's, but its refusal is about the
job, not the API's availability: sending it again gets the same page."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from genbatch.simulator import Simulator, SimulatorConfig

from support import cli_env, genbatch, kling_manifest, run_args, status

Refusal = Callable[[bytes], tuple[int, str] | None]


def _page(status_code: int, reason: str) -> str:
    return f"<html><head><title>{status_code} {reason}</title></head><body>{reason}</body></html>"


def waf(body: bytes) -> tuple[int, str] | None:
    """A web firewall's rule that matches one job's prompt."""
    return (403, _page(403, "Forbidden")) if b"<script>" in body else None


def body_limit(body: bytes) -> tuple[int, str] | None:
    """nginx's client_max_body_size in front of the API."""
    return (413, _page(413, "Request Entity Too Large")) if len(body) > 2000 else None


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(SimulatorConfig(time_scale=0.0005, capacity=8, seed=7)) as simulator:
        yield simulator


def gateway(upstream: str, refuse: Refusal) -> tuple[ThreadingHTTPServer, str]:
    """A reverse proxy on loopback that forwards to ``upstream`` unless ``refuse`` answers."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _forward(self, method: str) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            refused = refuse(body) if method == "POST" else None
            if refused is not None:
                code, page = refused
                self._answer(code, page.encode(), "text/html")
                return
            headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
            answer = httpx.request(method, upstream + self.path, content=body, headers=headers)
            self._answer(answer.status_code, answer.content, answer.headers.get("content-type", ""))

        def _answer(self, code: int, body: bytes, content_type: str) -> None:
            self.send_response(code)
            self.send_header("content-type", content_type)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            self._forward("GET")

        def do_POST(self) -> None:
            self._forward("POST")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


@pytest.mark.parametrize(
    ("refuse", "first_prompt"),
    [(waf, "a cat <script>alert(1)</script>"), (body_limit, "a cat " + "very " * 500)],
)
def test_a_page_answered_to_one_jobs_submit_every_time_fails_that_job_not_the_run(
    tmp_path: Path, sim: Simulator, refuse: Refusal, first_prompt: str
) -> None:
    server, base = gateway(sim.base_url, refuse)
    try:
        manifest = kling_manifest(tmp_path, 3)
        text = manifest.read_text().replace("clip number 0", first_prompt)
        manifest.write_text(text)
        env = cli_env(sim, tmp_path / "ledger.db", RUNCOMFY_API_BASE=base)

        done = genbatch(run_args(manifest, "-c", "1", "--max-failures", "3"), env=env, cwd=tmp_path)
    finally:
        server.shutdown()
        server.server_close()

    counts = status(env, tmp_path)["counts"]
    # The job the gateway refuses fails (as before this change), with a `retry --failed`
    # to suggest; the others are done. Not: exit 7, "the API could not be reached", and the
    # other jobs never sent because the refused one, first in order, is claimed again and again.
    assert (counts["done"], counts["failed"]) == (2, 1), done.stderr
    assert done.returncode == 1, done.stderr
    assert "could not be reached" not in done.stderr
