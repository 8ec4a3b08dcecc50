"""How a ``robnas`` command stops on SIGINT / SIGTERM, at any moment (standard library only).

The first signal asks for an orderly shutdown: the command raises ``KeyboardInterrupt``
(SIGINT) or :class:`Stopped` (SIGTERM) in its main thread, its cleanup runs (finished results
are already committed, workers are killed, stores are closed), and it exits with 128 + the
signal number (130 / 143). The handler never raises where that breaks the process: inside an
import (a half-imported numpy or torch), before a verb runs, or while a stop is already being
handled. It records the stop instead, and a helper thread re-delivers it every
:data:`REDELIVER_SECONDS` until the verb's handler has received it, so a stop that was
deferred, or swallowed by code it landed in (a ``__del__``, a callback), still ends the
command. A verb that finishes with a stop pending ends as stopped too.

Later signals never interrupt the shutdown; they kill any worker process at once, and one
that comes more than :data:`FORCE_AFTER_SECONDS` after the first ends the process at once.

:func:`install` is a process-level choice made by the command line (early, before its slow
imports, see :func:`launched_as_command`); the library never installs handlers.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

#: A signal this long after the first ends the process without waiting for the shutdown.
FORCE_AFTER_SECONDS = 5.0
#: Seconds between re-deliveries of a stop that has not reached the verb's handler yet.
REDELIVER_SECONDS = 0.05

#: ``stopping``: monotonic time of the first signal; ``signum``: its number; ``acknowledged``:
#: the verb's handler has it; ``in_verb``: verbs running; ``installed``: handlers in place.
state: dict[str, Any] = {}


class Stopped(SystemExit):
    """The command was stopped by a signal (exit status 128 + the signal number)."""

    def __init__(self, signum: int) -> None:
        super().__init__(128 + signum)
        self.signum = signum


def stop_exception(signum: int) -> BaseException:
    """What a stop raises: ``KeyboardInterrupt`` for SIGINT, else :class:`Stopped`."""
    return KeyboardInterrupt() if signum == signal.SIGINT else Stopped(signum)


def _in_import(frame: Any) -> bool:
    """Whether ``frame`` runs inside the import machinery (raising there breaks the module)."""
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            return True
        frame = frame.f_back
    return False


def _propagating() -> bool:
    """Whether a stop (KeyboardInterrupt or Stopped) is being handled: a cleanup is running."""
    exc = sys.exc_info()[1]
    while exc is not None:
        if isinstance(exc, (KeyboardInterrupt, Stopped)):
            return True
        exc = exc.__context__
    return False


def _raise_if_safe(frame: Any) -> None:
    signum = state["signum"]
    if signum is None or state["acknowledged"] or not state["in_verb"]:
        return
    if _in_import(frame) or _propagating():
        return
    raise stop_exception(signum)


_requested = threading.Event()


def _redeliver(main_ident: int) -> None:
    """Once a stop is requested, re-send it to the main thread until the verb's handler has it.
    Started with the handlers, so the handler itself never starts a thread."""
    _requested.wait()
    while not state["acknowledged"]:
        time.sleep(REDELIVER_SECONDS)
        if state["acknowledged"]:
            return
        state["redelivering"] = True
        try:
            signal.pthread_kill(main_ident, state["signum"])
        except (OSError, ValueError):  # the main thread is gone
            return


def _on_signal(signum: int, frame: Any) -> None:
    """SIGINT / SIGTERM: the first starts the shutdown, later ones kill workers (or the process)."""
    if state["redelivering"]:
        state["redelivering"] = False
        _raise_if_safe(frame)
        return
    if state["stopping"] is not None:
        parallel = sys.modules.get("robnas.parallel")
        if parallel is not None:
            parallel.kill_workers()
        if time.monotonic() - state["stopping"] > FORCE_AFTER_SECONDS:
            os.write(2, b"robnas: stopping now\n")
            os._exit(128 + signum)
        return
    state["stopping"] = time.monotonic()
    state["signum"] = signum
    _requested.set()
    _raise_if_safe(frame)


def _reset() -> None:
    state.update(
        stopping=None, signum=None, acknowledged=False, redelivering=False, in_verb=0, installed=False
    )


_reset()


def install() -> None:
    """Make SIGINT and SIGTERM stop this command once, as the module docstring says (main
    thread only; a second call keeps the state of the first)."""
    if threading.current_thread() is not threading.main_thread() or state["installed"]:
        return
    state["installed"] = True
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _on_signal)
    threading.Thread(
        target=_redeliver, args=(threading.get_ident(),), name="robnas-stop", daemon=True
    ).start()


def launched_as_command() -> bool:
    """Whether this process is the ``robnas`` command (the console script or ``python -m robnas``)."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    return getattr(spec, "name", None) == "robnas.__main__" or Path(sys.argv[0]).name == "robnas"


@contextlib.contextmanager
def verb() -> Iterator[None]:
    """Run a verb: a stop that came before it starts, or that was not raised by the time it
    ends, is raised here (safe points)."""
    state["in_verb"] += 1
    try:
        if state["signum"] is not None:
            raise stop_exception(state["signum"])
        yield
        if state["signum"] is not None and not state["acknowledged"]:
            raise stop_exception(state["signum"])
    finally:
        state["in_verb"] -= 1


__all__ = [
    "FORCE_AFTER_SECONDS",
    "Stopped",
    "install",
    "launched_as_command",
    "state",
    "stop_exception",
    "verb",
]
