"""``python -m robnas``: the same command line as ``robnas``."""

from robnas.cli import main

main()
