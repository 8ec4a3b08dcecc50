"""The ``robnas`` command line: one Typer app (:mod:`robnas.cli.app`), one thin module per verb.

Importing this package registers every verb on ``app``; see :mod:`robnas.cli.app` for the exit
statuses and the signal handling.
"""

from __future__ import annotations

from robnas.cli import (  # each module adds its verb(s) to ``app`` on import
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
from robnas.cli.app import app, console, friendly, install_signal_handlers


def main() -> None:
    """The ``robnas`` console script: the app, with the signal handling of a command-line process."""
    install_signal_handlers()
    app()


__all__ = ["app", "console", "friendly", "main"]
