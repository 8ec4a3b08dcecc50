"""The ``robnas`` command line: one Typer app, one thin module per verb.

Every verb parses its options and calls the public Python API; a :class:`RobnasError`
is printed as one line and ends the command with exit status 2.
"""

from __future__ import annotations

import functools
import signal
import threading
from collections.abc import Callable
from typing import Any

import typer
from rich.console import Console

from robnas.errors import RobnasError

app = typer.Typer(
    name="robnas",
    help="Robust neural architecture search: proxies, spaces, benchmarks, attacks, training, search.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console(stderr=True)


def _version(value: bool) -> None:
    if value:
        from robnas import __version__

        typer.echo(f"robnas {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
) -> None:
    """Robust neural architecture search: proxies, spaces, benchmarks, attacks, training, search."""
    from robnas.runtime import keep_freed_memory

    keep_freed_memory()
    if threading.current_thread() is threading.main_thread():  # signal handlers live there only
        signal.signal(signal.SIGTERM, _exit_on_sigterm)


def _exit_on_sigterm(signum: int, _frame: object) -> None:
    """``kill`` (SIGTERM, as from a batch scheduler) ends the command like Ctrl-C: the
    verbs' cleanup runs (a search records its session cost and ``interrupted`` status)."""
    raise SystemExit(128 + signum)


def friendly(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn a RobnasError into one red line on stderr and exit status 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except RobnasError as exc:
            console.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None

    return wrapper


def _register_commands() -> None:
    # each module adds its verb(s) to ``app`` on import
    from robnas.cli import (
        correlate,  # noqa: F401
        demo,  # noqa: F401
        evaluate,  # noqa: F401
        pipeline,  # noqa: F401
        score,  # noqa: F401
        search,  # noqa: F401
        train,  # noqa: F401
        zoo,  # noqa: F401
    )


_register_commands()


def main() -> None:
    app()
