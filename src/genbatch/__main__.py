"""``python -m genbatch``: the same as the ``genbatch`` command."""

from genbatch.launch import main

main()
