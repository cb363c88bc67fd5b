"""The ``genbatch`` command line: one module per command, each thin (parse, call, render)."""

from __future__ import annotations

import typer

from genbatch import __version__
from genbatch.errors import EXIT_INTERRUPTED

app = typer.Typer(
    name="genbatch",
    help="Run batches of generations on RunComfy's Model API from a YAML manifest.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    # Plain click help: rich markup would eat "[default: ...]" in help texts and show "<bool>"
    # for flags, and the help comes up without importing rich.
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"genbatch {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Run batches of generations on RunComfy's Model API from a YAML manifest."""


def _register_commands() -> None:
    # Each command module adds itself to ``app``; imported here so ``genbatch`` sees them all.
    from genbatch.cli import (  # noqa: F401  (they register)
        cancel,
        export,
        gallery,
        models,
        plan,
        review,
        run,
        runs,
        show,
        simulate,
        status,
    )


def main() -> None:
    """Entry point of the ``genbatch`` console script."""
    from genbatch.cli.common import fail, interrupt_on_sigterm

    interrupt_on_sigterm()
    try:
        _register_commands()
        app()
    except KeyboardInterrupt:  # before a command's own handling (it exits 130 the same way)
        raise SystemExit(fail("interrupted", EXIT_INTERRUPTED).exit_code) from None
    except SystemExit as exit_:
        if _interrupted_in_typer(exit_):
            raise SystemExit(fail("interrupted", EXIT_INTERRUPTED).exit_code) from None
        raise


def _interrupted_in_typer(exit_: SystemExit) -> bool:
    """typer turns a Ctrl-C that lands in its own code (parsing the command line, before the
    command runs) into a silent exit 130: this one gets the same line as any interruption."""
    raised = exit_.__context__
    return isinstance(raised, typer.Exit) and isinstance(raised.__cause__, KeyboardInterrupt)
