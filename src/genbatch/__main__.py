"""``python -m genbatch``: the same as the ``genbatch`` command."""

from genbatch.cli import main

main()
