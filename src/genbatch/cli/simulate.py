"""``genbatch simulate``: run the bundled RunComfy Model API simulator as a server."""

from __future__ import annotations

from genbatch.cli import app


@app.command()
def simulate() -> None:
    """Placeholder: the simulator helper replaces this module."""
    raise SystemExit("not yet implemented")
