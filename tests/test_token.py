"""The API token: $RUNCOMFY_TOKEN, else the official runcomfy CLI's token.json; never printed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from genbatch.batch import resolve_connection, token_file
from genbatch.errors import UsageError
from genbatch.simulator import Simulator

from support import cli_env, genbatch, kling_manifest


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """HOME in a temporary directory, with no token and no config directory set."""
    for name in ("RUNCOMFY_TOKEN", "RUNCOMFY_CONFIG_DIR", "XDG_CONFIG_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def write_token(directory: Path, token: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "token.json"
    path.write_text(json.dumps({"access_token": token, "token_type": "Bearer"}), encoding="utf-8")
    return path


def test_the_token_file_is_found_in_the_config_dir_then_xdg_then_home(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_token(home / ".config" / "runcomfy", "from-home")
    assert resolve_connection(None).token == "from-home"

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    write_token(tmp_path / "xdg" / "runcomfy", "from-xdg")
    assert resolve_connection(None).token == "from-xdg"

    monkeypatch.setenv("RUNCOMFY_CONFIG_DIR", str(tmp_path / "conf"))
    write_token(tmp_path / "conf", "from-config-dir")
    assert resolve_connection(None).token == "from-config-dir"
    assert token_file() == tmp_path / "conf" / "token.json"

    monkeypatch.setenv("RUNCOMFY_TOKEN", "from-env")
    assert resolve_connection(None).token == "from-env"


def test_no_token_anywhere_says_where_one_can_come_from(home: Path) -> None:
    with pytest.raises(UsageError) as caught:
        resolve_connection(None)

    assert "RUNCOMFY_TOKEN" in str(caught.value)
    assert str(home / ".config" / "runcomfy" / "token.json") in str(caught.value)


@pytest.mark.parametrize(
    "content",
    [
        '{"access_token": ',
        '["secret-in-a-list"]',
        '{"access_token": ""}',
        '{"refresh": "secret-value"}',
    ],
)
def test_an_unusable_token_file_is_named_and_its_content_never_shown(
    home: Path, content: str
) -> None:
    path = home / ".config" / "runcomfy" / "token.json"
    path.parent.mkdir(parents=True)
    path.write_text(content, encoding="utf-8")

    with pytest.raises(UsageError) as caught:
        resolve_connection(None)

    assert str(path) in str(caught.value)
    assert "secret" not in str(caught.value)


def test_a_run_authenticates_with_the_token_file_and_never_prints_it(tmp_path: Path) -> None:
    with Simulator(time_scale=0.0005, token="tok-from-file-1234") as sim:
        env = cli_env(sim, tmp_path / "ledger.db", RUNCOMFY_CONFIG_DIR=str(tmp_path / "conf"))
        del env["RUNCOMFY_TOKEN"]
        write_token(tmp_path / "conf", sim.token)

        done = genbatch(
            ["run", str(kling_manifest(tmp_path, 1)), "--poll-interval", "0.01"],
            env=env,
            cwd=tmp_path,
        )

    assert done.returncode == 0, done.stderr
    assert sim.stats.submissions == 1
    assert sim.token not in done.stdout + done.stderr
    assert sim.token not in (tmp_path / "out" / "metadata.jsonl").read_text(encoding="utf-8")


def test_a_refused_token_from_the_token_file_names_the_file(tmp_path: Path) -> None:
    with Simulator(time_scale=0.0005) as sim:
        env = cli_env(sim, tmp_path / "ledger.db", RUNCOMFY_CONFIG_DIR=str(tmp_path / "conf"))
        del env["RUNCOMFY_TOKEN"]
        path = write_token(tmp_path / "conf", "an-expired-token-77")

        done = genbatch(["run", str(kling_manifest(tmp_path, 1))], env=env, cwd=tmp_path)

    assert done.returncode == 3, done.stderr
    assert f"genbatch: the refused token came from {path}" in done.stderr
    assert "an-expired-token-77" not in done.stdout + done.stderr


def test_an_api_base_with_credentials_is_refused_in_one_line_that_never_quotes_them(
    tmp_path: Path,
) -> None:
    with Simulator(time_scale=0.0005) as sim:
        with_password = sim.base_url.replace("://", "://someone:pass-s3cret-99@")
        env = cli_env(sim, tmp_path / "ledger.db")
        manifest = kling_manifest(tmp_path, 1)

        by_option = genbatch(
            ["run", str(manifest), "--api-base", with_password], env=env, cwd=tmp_path
        )
        by_env = genbatch(
            ["run", str(manifest)], env={**env, "RUNCOMFY_API_BASE": with_password}, cwd=tmp_path
        )

    for done in (by_option, by_env):
        assert done.returncode == 2, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert "password" in done.stderr
        assert "pass-s3cret-99" not in done.stdout + done.stderr
        assert "someone" not in done.stdout + done.stderr
    assert sim.stats.calls["submit"] == 0
