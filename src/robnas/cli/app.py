"""The ``robnas`` Typer app and what every verb shares: error handling, signals, common help texts.

Every verb parses its options and calls the public Python API, which it imports inside the
command: importing this package loads no torch, pandas or scipy, so ``robnas --help`` is quick.
A failure ends in one line on stderr and an exit status:

* 2: a :class:`RobnasError` (bad input, a missing file, an unknown name) or a usage error;
* 1: an internal error (any other exception), printed as ``internal error: TYPE: message``
  with a hint; ``robnas --debug ...`` or ``ROBNAS_DEBUG=1`` prints its traceback too;
* 130 / 143: stopped by SIGINT (Ctrl-C) / SIGTERM.

Stopping: the first SIGINT or SIGTERM starts an orderly shutdown (the verb's cleanup runs:
finished results are already committed, worker processes are killed, stores are closed, a
search records its ``interrupted`` status), so rerunning the same command resumes. Later
signals never interrupt that shutdown; they kill any worker process at once. A process
group signalled twice (``kill -- -PGID`` under ``timeout``, a batch scheduler, a double
Ctrl-C) therefore exits within seconds. A signal that comes more than
:data:`robnas.stopping.FORCE_AFTER_SECONDS` after the first (a shutdown that seems stuck) ends
the process at once; every result committed to a store so far is kept. A signal at any other
moment (during the imports, before the verb starts, during worker start-up) stops the command
too (:mod:`robnas.stopping`).
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import signal
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from robnas import stopping
from robnas.errors import ConfigError, RobnasError, mask_secrets
from robnas.stopping import Stopped
from robnas.store import removed_if_refused

app = typer.Typer(
    name="robnas",
    help="Robust neural architecture search: proxies, spaces, benchmarks, attacks, training, search.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    epilog="Exit status: 0 done; 1 internal error (--debug shows the traceback); 2 bad input or "
    "options; 130 / 143 stopped by SIGINT / SIGTERM (finished results are kept: rerun to resume).",
)
console = Console(stderr=True)

#: Exit status of an internal error (an exception that is not a RobnasError).
INTERNAL_ERROR_STATUS = 1
#: Exit status of a RobnasError.
USER_ERROR_STATUS = 2
#: Values of ``ROBNAS_DEBUG`` that turn tracebacks on.
_TRUE = {"1", "true", "yes", "on"}

#: What the stop line says to do to continue, unless the verb says otherwise (:func:`resume_hint`).
RESUME_HINT = "rerun the same command to resume"

_state: dict[str, Any] = {"debug": False, "resume": RESUME_HINT, "secret_urls": []}

# click's exception for usage errors (typer vendors click in recent versions)
_ClickException = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")


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
    debug: bool = typer.Option(
        False,
        "--debug",
        help="Print the traceback of an error (also ROBNAS_DEBUG=1).",
    ),
) -> None:
    """Robust neural architecture search: proxies, spaces, benchmarks, attacks, training, search."""
    from robnas.runtime import keep_freed_memory

    _state["resume"] = RESUME_HINT
    _state["secret_urls"] = []
    _state["debug"] = debug or os.environ.get("ROBNAS_DEBUG", "").strip().lower() in _TRUE
    keep_freed_memory()


def _one_line(text: str, limit: int = 500) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def hide_secrets(url: str | None) -> None:
    """Never print the password or secret query values of ``url`` (a database URL option)."""
    if url:
        _state["secret_urls"].append(url)


def _shown(text: str) -> str:
    return mask_secrets(text, *_state["secret_urls"])


def resume_hint(text: str) -> None:
    """What the stop line tells the user to do to continue (default: rerun the same command)."""
    _state["resume"] = text


def _stopped_line(name: str) -> None:
    console.print(
        f"[yellow]stopped[/yellow] ({name}); finished results are saved, {_state['resume']}",
        highlight=False,
        soft_wrap=True,
    )


def friendly(fn: Callable[..., Any]) -> Callable[..., Any]:
    """End a verb's failure in one line and an exit status (see the module docstring)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            out = kwargs.get("out")
            created = removed_if_refused(out) if isinstance(out, (str, Path)) else contextlib.nullcontext()
            with stopping.verb(), created:  # a refused command leaves no empty run store behind
                if "seed" in kwargs:  # every verb's --seed: one rule, before any work
                    from robnas.seeding import check_seed

                    check_seed(kwargs["seed"], "--seed")
                return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort, _ClickException):
            raise
        except (KeyboardInterrupt, Stopped) as exc:
            _stopped(signal.SIGINT if isinstance(exc, KeyboardInterrupt) else exc.signum)
        except Exception as exc:
            if (
                stopping.state["signum"] is not None
            ):  # an error the stop caused on its way out is not the news
                _stopped(stopping.state["signum"])
            if _state["debug"]:
                traceback.print_exc()
            if isinstance(exc, RobnasError) or _environment_error(exc):
                text = str(exc) if isinstance(exc, RobnasError) else _environment_error(exc)
                console.print(f"[red]error:[/red] {escape(_shown(text))}", highlight=False, soft_wrap=True)
                raise typer.Exit(USER_ERROR_STATUS) from None
            what = type(exc).__name__ + (f": {_one_line(_shown(str(exc)))}" if str(exc).strip() else "")
            console.print(
                f"[red]internal error:[/red] {escape(what)}; "
                "rerun with --debug or ROBNAS_DEBUG=1 for the traceback",
                highlight=False,
                soft_wrap=True,
            )
            raise typer.Exit(INTERNAL_ERROR_STATUS) from None

    return wrapper


#: Errors of the machine's files that the user can fix: permissions, a full disk, a path that
#: is a file where a folder is needed (or the reverse), a read-only file system.
_ENVIRONMENT_ERRNOS = {
    errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.EEXIST, errno.ENOTDIR,
    errno.EISDIR, errno.ENAMETOOLONG,
}  # fmt: skip
_SQLITE_ENVIRONMENT = ("disk is full", "readonly database", "unable to open database file", "disk I/O error")


def _environment_error(exc: BaseException) -> str:
    """One line for an error of the machine's files (exit 2), else the empty string."""
    if isinstance(exc, OSError) and exc.errno in _ENVIRONMENT_ERRNOS:
        where = exc.filename if exc.filename is not None else "a file"
        if exc.errno in (errno.EEXIST, errno.ENOTDIR):
            return f"{where}: a file is in the way where a folder is needed; choose another path"
        return f"cannot write {where}: {exc.strerror or exc}"
    if type(exc).__name__ == "OperationalError" and any(s in str(exc) for s in _SQLITE_ENVIRONMENT):
        return f"cannot write the SQLite store: {exc}"
    return ""


def _stopped(signum: int) -> NoReturn:
    """The stop reached the verb: say so once and exit with 128 + the signal number."""
    stopping.state["acknowledged"] = True
    _stopped_line(signal.Signals(signum).name)
    raise typer.Exit(128 + signum) from None


DATA_HELP = (
    "Proxy data: PATH.npz (x_train uint8 NHWC, y_train), cifar10:ROOT, cifar100:ROOT, svhn:ROOT, "
    "imagenet16-120:ROOT, imagefolder:DIR (DIR/train/<class>/*.png|jpg), or synthetic[:N] (random images, for tests). Required by proxies that "
    "look at the images (croze, snip, grasp, nwot, ...); data-free ones (params, flops, synflow, zen) "
    "need none."
)
IMAGE_SIZE_HELP = (
    "Resize the images of --data imagefolder:DIR to N x N pixels (default: their own size, when all agree)."
)
WORKERS_HELP = "Worker processes (--backend process) or Ray tasks in flight (--backend ray)."
BACKEND_HELP = "process (worker processes of this machine) | ray (Ray tasks, one CPU each; robnas\\[ray])."
ADDRESS_HELP = (
    "Ray cluster for --backend ray: auto (the `ray start` cluster of this machine), HOST:PORT (the head's "
    "GCS) or ray://HOST:PORT (Ray Client). Default: start a local Ray with --workers CPUs."
)


def progress_bar() -> Progress:
    """A progress display on stderr that is gone when it ends: per task its description, a bar,
    done/total and the time elapsed."""
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    return Progress(*columns, console=console, transient=True)


def proxy_data(data: str | None, needing: list[str]) -> str:
    """The ``--data`` spec to use when ``needing`` (names) depend on the images.

    Absent ``--data`` is an error when anything needs data (and ``synthetic`` otherwise, which
    no value then depends on); an explicit ``synthetic`` is accepted with a warning line.
    """
    if data is None or not data.strip():
        if needing:
            raise ConfigError(
                f"{', '.join(needing)} depend{'s' if len(needing) == 1 else ''} on the images "
                f"{'it sees' if len(needing) == 1 else 'they see'}: pass --data PATH.npz, cifar10:ROOT, "
                "cifar100:ROOT, svhn:ROOT, imagenet16-120:ROOT or imagefolder:DIR (or --data synthetic, random images, "
                "only to test)"
            )
        return "synthetic"
    if needing and data.strip().partition(":")[0] == "synthetic":
        console.print(
            f"[yellow]warning:[/yellow] --data {escape(data)}: {escape(', '.join(needing))} computed on "
            "random images, which say nothing about real data",
            highlight=False,
            soft_wrap=True,
        )
    return data


def _input_path(value: object) -> Path | None:
    """The file or folder an input option names: a path, or the ROOT of a ``kind:ROOT`` data spec."""
    text = str(value)
    if Path(text).exists():
        return Path(text)
    kind, sep, rest = text.partition(":")
    if kind == "synthetic":
        return None
    return Path(rest) if sep and rest and "/" not in kind else Path(text)


def _same(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return a.samefile(b)
    except OSError:
        pass
    return a.expanduser().resolve() == b.expanduser().resolve()


def refuse_overwriting_inputs(outputs: dict[str, Any], inputs: dict[str, Any]) -> None:
    """Refuse (ConfigError) an output option that names an input's file or folder, or another output.

    ``outputs`` / ``inputs``: option name -> path, data spec, list of them, or None."""

    def flat(options: dict[str, Any]) -> list[tuple[str, Path]]:
        out = []
        for flag, value in options.items():
            for v in value if isinstance(value, (list, tuple)) else [value]:
                path = _input_path(v) if v is not None and str(v).strip() and str(v) != ":memory:" else None
                if path is not None:
                    out.append((flag, path))
        return out

    outs, ins = flat(outputs), flat(inputs)
    for i, (flag, path) in enumerate(outs):
        for other, source in ins + outs[:i]:
            if _same(path, source):
                raise ConfigError(
                    f"{flag} {path} is also {other}: writing it would destroy "
                    f"{'the input' if (other, source) in ins else 'the other output'}; choose another path"
                )


def sized_data(data: str | None, image_size: int | None) -> str | None:
    """``--data`` with ``--image-size`` folded in (``imagefolder@N:DIR``, see
    :func:`robnas.data.imagefolder_spec`); a size with other data is a ConfigError."""
    if image_size is None or data is None:
        if image_size is not None:
            raise ConfigError("--image-size needs --data imagefolder:DIR")
        return data
    from robnas.data import imagefolder_spec

    return imagefolder_spec(data, image_size)
