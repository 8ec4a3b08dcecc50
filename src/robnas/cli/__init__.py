"""The ``robnas`` command line: one Typer app (:mod:`robnas.cli.app`), one thin module per verb.

Importing this package registers every verb on ``app``; see :mod:`robnas.cli.app` for the exit
statuses and the signal handling.
"""

from __future__ import annotations

import signal

from robnas import stopping

if stopping.launched_as_command():
    stopping.install()  # before the imports below: a signal during them stops the command too

from robnas.cli import (
    correlate,  # noqa: F401
    demo,  # noqa: F401
    evaluate,  # noqa: F401
    export,  # noqa: F401
    pipeline,  # noqa: F401
    predict,  # noqa: F401
    score,  # noqa: F401
    search,  # noqa: F401
    supernet,  # noqa: F401
    train,  # noqa: F401
    zoo,  # noqa: F401
)
from robnas.cli.app import _stopped_line, app, console, friendly


def main() -> None:
    """The ``robnas`` console script: the app, with the signal handling of a command-line process."""
    stopping.install()
    try:
        app()
    except SystemExit:
        signum = stopping.state["signum"]
        if signum is None or stopping.state["acknowledged"]:
            raise
        stopping.state["acknowledged"] = True  # stopped outside a verb (while parsing, by --help, ...)
        _stopped_line(signal.Signals(signum).name)
        raise SystemExit(128 + signum) from None


__all__ = ["app", "console", "friendly", "main"]
