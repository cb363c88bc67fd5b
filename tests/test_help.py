"""Every command explains itself with an example, and shell completion is available."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from genbatch.cli import _register_commands, app

_register_commands()
COMMANDS = sorted(
    command.name or command.callback.__name__  # type: ignore[union-attr]
    for command in app.registered_commands
)
GENBATCH = Path(sys.executable).with_name("genbatch")


def genbatch(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "genbatch", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1", **env},
    )


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_an_example(command: str) -> None:
    done = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "200"})

    assert done.exit_code == 0, done.output
    assert "Example" in done.output, f"genbatch {command} --help has no example"


@pytest.mark.parametrize("command", COMMANDS)
def test_help_shows_no_type_placeholders_for_flags_and_keeps_its_brackets(command: str) -> None:
    done = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "200"})

    assert "<bool>" not in done.output
    assert not re.search(r"\w [;,]", done.output)  # no "[...]" eaten as markup before them


def test_the_run_commands_list_their_environment_variables_and_every_exit_code() -> None:
    for command in ("run", "resume", "retry"):
        output = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "200"}).output
        output = " ".join(output.split())  # as read, whatever the wrapping
        assert "[default: the manifest's, else 4]" in output
        for name in ("RUNCOMFY_TOKEN", "RUNCOMFY_API_BASE", "GENBATCH_LEDGER", "NO_COLOR"):
            assert name in output, (command, name)
        assert "5 budget reached" in output and "7 the API gave no answer" in output
    status = CliRunner().invoke(app, ["status", "--help"], env={"COLUMNS": "200"}).output
    assert "Environment: GENBATCH_LEDGER" in status


def test_the_new_commands_are_registered() -> None:
    assert {"export", "gallery", "show", "runs"} <= set(COMMANDS)


def test_bash_completion_completes_command_names() -> None:
    if not GENBATCH.exists():
        pytest.skip("the genbatch console script is not installed beside this Python")
    done = subprocess.run(
        [str(GENBATCH)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={
            **os.environ,
            "_GENBATCH_COMPLETE": "complete_bash",
            "COMP_WORDS": "genbatch gal",
            "COMP_CWORD": "1",
        },
    )

    assert done.stdout.split() == ["gallery"]
    assert "--install-completion" in genbatch("--help").stdout


HEAVY_MODULES = (
    "sqlalchemy",
    "sqlmodel",
    "httpx",
    "anyio",
    "rich",
    "jsonschema",
    "yaml",
    "pyarrow",
    "starlette",
    "genbatch.manifest",
    "genbatch.ledger",
)
"""What the commands load when they run, never while the command line is read: each start
(every TAB of shell completion) would pay for them (issue 16: --version in 0.12 s, not 0.6)."""


@pytest.mark.parametrize("args", [["--version"], ["run", "--help"], ["export", "--help"]])
def test_reading_the_command_line_loads_none_of_the_heavy_machinery(args: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "genbatch", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 0, done.stderr[-2000:]
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines()}
    assert (
        sorted(m for m in imported if m.split(".")[0] in HEAVY_MODULES or m in HEAVY_MODULES) == []
    )


def test_a_command_loads_with_the_cyclic_collector_paused_and_gets_it_back() -> None:
    import gc
    import time

    from genbatch import launch

    launch._pause_collector()
    try:
        paused = not gc.isenabled()
        deadline = time.monotonic() + launch.COLLECTOR_PAUSE_SECONDS + 5
        while not gc.isenabled() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert paused
        assert gc.isenabled()  # a command that lives longer than its start-up collects again
        assert gc.get_freeze_count() > 0  # what the start-up loaded is left out of collections
    finally:
        gc.enable()
        gc.unfreeze()
