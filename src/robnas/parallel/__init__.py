"""Map work over items serially, in worker processes or on a Ray cluster, yielding results as they finish.

Two backends behind one seam (:func:`open_executor`, :data:`BACKENDS`): ``process``, the pool
below, and ``ray`` (:mod:`robnas.parallel.ray`, imported only when chosen). The caller (the
driver) stays the only writer of its stores; workers only compute.

Results are yielded one by one so the caller can store each as soon as it exists; a run
killed mid-way keeps everything already yielded.

The worker pool is small and owned entirely by this module, so that stopping is simple and
never hangs, however many signals arrive:

* workers ignore SIGINT and SIGTERM: a Ctrl-C, ``kill -- -PGID``, ``timeout`` or a batch
  scheduler signals the whole process group, and only the parent decides what happens;
* workers die with their parent (``PR_SET_PDEATHSIG`` on Linux, and end of file on their
  pipe everywhere), so none is left behind, even after ``kill -9`` of the parent;
* when the consumer stops early (an exception, a signal turned into one, ``close()`` of the
  generator), the generator kills its workers at once (SIGKILL: they hold nothing but the
  item in progress, which a rerun computes again) and reaps them; it never waits on a
  worker's cooperation. :func:`kill_workers` does the same from a signal handler.
"""

from __future__ import annotations

import atexit
import contextlib
import multiprocessing
import os
import signal
import traceback
from collections.abc import Callable, Iterable, Iterator
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any, TypeVar

from robnas.errors import ConfigError
from robnas.parallel.base import Executor, RemoteTraceback, WorkerDied
from robnas.registry import Registry
from robnas.runtime import die_with_parent, keep_freed_memory

T = TypeVar("T")
R = TypeVar("R")

#: The signals a group delivers to every process in it; workers ignore them.
_GROUP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
#: Seconds a worker gets to exit after the last item before it is killed.
_JOIN_SECONDS = 5.0

#: Workers alive in this process (every pool's), for :func:`kill_workers`.
_LIVE: dict[int, BaseProcess] = {}
#: This process's ends of the workers' pipes; a forked worker closes its copies, so that a
#: worker sees end of file as soon as the parent is gone.
_PARENT_ENDS: set[Connection] = set()


def kill_workers() -> int:
    """Kill (SIGKILL) every live worker process of this process; returns how many were signalled.

    Safe to call from a signal handler: the pools notice the death and reap the workers.
    """
    count = 0
    for proc in list(_LIVE.values()):
        with contextlib.suppress(OSError, ValueError, AttributeError):
            if proc.pid is not None:
                os.kill(proc.pid, signal.SIGKILL)
                count += 1
    return count


# Runs before multiprocessing's own exit handler (registered earlier), which would join
# workers that ignore its SIGTERM.
atexit.register(kill_workers)


def _worker_main(
    conn: Connection,
    fn: Callable[[Any], Any],
    threads: int,
    initializer: Callable[..., None] | None,
    initargs: tuple[Any, ...],
    parent: int,
) -> None:
    """A worker: answer ``(index, item)`` messages with ``(index, ok, result_or_error)`` until ``None``."""
    for sig in _GROUP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    _set_mask(signal.SIG_UNBLOCK, _GROUP_SIGNALS)  # blocked by the parent around start()
    die_with_parent(parent)
    for other in list(_PARENT_ENDS):  # inherited through fork
        with contextlib.suppress(OSError):
            other.close()
    _PARENT_ENDS.clear()
    keep_freed_memory()  # a spawned worker does not inherit the parent's malloc settings
    try:
        import torch

        torch.set_num_threads(threads)
        if initializer is not None:
            initializer(*initargs)
    except BaseException as exc:
        _send_error(conn, None, exc)
        return
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):  # the parent is gone
            return
        if message is None:
            return
        index, item = message
        try:
            result = fn(item)
        except BaseException as exc:
            _send_error(conn, index, exc)
            continue
        try:
            conn.send((index, True, result))
        except (BrokenPipeError, EOFError):
            return
        except Exception as exc:  # the result does not pickle
            _send_error(conn, index, exc)


def _send_error(conn: Connection, index: int | None, exc: BaseException) -> None:
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    try:
        conn.send((index, False, (exc, text)))
    except (BrokenPipeError, EOFError):
        return
    except Exception:  # the exception does not pickle: send its description
        with contextlib.suppress(BrokenPipeError, EOFError):
            conn.send((index, False, (RuntimeError(f"{type(exc).__name__}: {exc}"), text)))


def _set_mask(how: int, signals: Iterable[int]) -> set[int]:
    """``pthread_sigmask`` where the platform has it (not on Windows); returns the old mask."""
    if not hasattr(signal, "pthread_sigmask"):
        return set()
    return set(signal.pthread_sigmask(how, signals))


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "closed its pipe"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = " (out of memory? try fewer --workers)" if -code == signal.SIGKILL else ""
        return f"was killed by {name}{hint}"
    return f"exited with status {code}"


class _Pool:
    """``workers`` processes, each with its own pipe; one item in flight per worker."""

    def __init__(
        self,
        fn: Callable[[Any], Any],
        workers: int,
        threads: int,
        initializer: Callable[..., None] | None,
        initargs: tuple[Any, ...],
    ) -> None:
        self.conns: dict[Connection, BaseProcess] = {}
        self.busy: dict[Connection, int] = {}
        ctx = multiprocessing.get_context()
        # a group signal arriving between fork and the worker's own SIG_IGN must not kill it
        old_mask = _set_mask(signal.SIG_BLOCK, _GROUP_SIGNALS)
        try:
            for _ in range(workers):
                parent_end, child_end = ctx.Pipe()
                proc = ctx.Process(
                    target=_worker_main,
                    args=(child_end, fn, threads, initializer, initargs, os.getpid()),
                    daemon=True,
                    name="robnas-worker",
                )
                proc.start()
                child_end.close()
                self.conns[parent_end] = proc
                _PARENT_ENDS.add(parent_end)
                _LIVE[id(proc)] = proc
        finally:
            _set_mask(signal.SIG_SETMASK, old_mask)

    def idle(self) -> list[Connection]:
        return [c for c in self.conns if c not in self.busy]

    def submit(self, conn: Connection, index: int, item: Any) -> None:
        try:
            conn.send((index, item))
        except (BrokenPipeError, EOFError, ConnectionResetError):
            self._died(conn)
        self.busy[conn] = index

    def _died(self, conn: Connection) -> None:
        """Raise the error a dead worker left in its pipe (a failed initializer), else WorkerDied."""
        with contextlib.suppress(EOFError, OSError):
            if conn.poll():
                _, ok, payload = conn.recv()
                if not ok:
                    exc, text = payload
                    raise exc from RemoteTraceback(text)
        proc = self.conns[conn]
        proc.join(1.0)
        raise WorkerDied(f"worker process {proc.pid} {_describe_exit(proc.exitcode)}")

    def results(self) -> Iterator[tuple[int, Any]]:
        """``(index, result)`` of the items in flight as they finish (at least one per call)."""
        by_sentinel = {self.conns[c].sentinel: c for c in self.busy}
        ready = wait([*self.busy, *by_sentinel])
        answered = {c for c in ready if isinstance(c, Connection)}
        for conn in answered:
            try:
                index, ok, payload = conn.recv()
            except (EOFError, OSError):
                self._died(conn)
            del self.busy[conn]
            if not ok:
                exc, text = payload
                raise exc from RemoteTraceback(text)
            if index is None:  # an initializer's answer is always an error
                continue
            yield index, payload
        for sentinel in ready:
            if not isinstance(sentinel, Connection) and by_sentinel[sentinel] not in answered:
                conn = by_sentinel[sentinel]
                if not conn.poll():
                    self._died(conn)

    def close(self, graceful: bool) -> None:
        """Stop every worker: ask them (after the last item) or kill them (on early stop)."""
        procs = list(self.conns.values())
        if graceful:
            for conn in self.conns:
                with contextlib.suppress(OSError, EOFError):
                    conn.send(None)
            for proc in procs:
                proc.join(_JOIN_SECONDS)
        for proc in procs:
            if proc.exitcode is None:
                with contextlib.suppress(OSError, ValueError):
                    proc.kill()
        for proc in procs:
            with contextlib.suppress(OSError, ValueError, AssertionError):
                proc.join(_JOIN_SECONDS)
            _LIVE.pop(id(proc), None)
        for conn in self.conns:
            _PARENT_ENDS.discard(conn)
            conn.close()


ExecutorFactory = Callable[..., Executor]
#: Parallel backends by name: ``process`` (this machine's worker processes) and ``ray``.
BACKENDS: Registry[ExecutorFactory] = Registry("parallel backend")


def open_executor(
    backend: str,
    fn: Callable[[Any], Any],
    workers: int = 1,
    initializer: Callable[..., None] | None = None,
    initargs: tuple[Any, ...] = (),
    address: str | None = None,
    device: str = "cpu",
) -> Executor:
    """The executor of ``backend`` (``process`` or ``ray``) running ``fn`` on ``workers`` workers.

    ``address`` is the Ray cluster to join (``auto``, ``HOST:PORT``, ``ray://HOST:PORT``);
    without it the ``ray`` backend starts a local Ray with ``workers`` CPUs. ``device`` is where
    ``fn`` computes (``cpu``, ``cuda``, ``cuda:N``, ``auto``): a Ray task for a GPU device reserves
    one GPU (see :mod:`robnas.parallel.ray`); worker processes share this machine's GPUs. Values
    never depend on the backend: the same item gives the same result anywhere.
    """
    check_backend(backend, workers, address)
    return BACKENDS.get(backend)(fn, workers, initializer, initargs, address=address, device=device)


def connect_backend(backend: str, workers: int, address: str | None = None) -> None:
    """Check the options and join the backend's cluster now (Ray), so that a bad address or a
    missing extra fails in seconds, before any work starts."""
    check_backend(backend, workers, address)
    connect = BACKENDS.meta(backend).get("connect")
    if connect is not None:
        connect(address, workers)


def _ray_connect(address: str | None, workers: int) -> None:
    from robnas.parallel.ray import connect

    connect(address, workers)


def check_backend(backend: str, workers: int, address: str | None = None) -> None:
    """Raise :class:`ConfigError` (or UnknownName) for a bad backend, worker count or address."""
    BACKENDS.get(backend)
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"workers must be an integer >= 1, got {workers!r}")
    if address and not BACKENDS.meta(backend).get("address"):
        raise ConfigError(f"--address {address!r} applies to --backend ray, not {backend!r}")


@BACKENDS.register("process", address=False)
class ProcessExecutor(Executor):
    """``fn`` in this process (``workers == 1``) or in ``workers`` worker processes.

    Worker processes get ``max(1, cpu_count // workers)`` torch threads each and one item at
    a time, so memory does not grow with the item count. The pool lives until :meth:`close`
    (killed at once when a consumer stops a map early).
    """

    def start(self) -> None:
        self._pool: _Pool | None = None
        self._initialized = False

    def map_unordered(self, items: Iterable[Any]) -> Iterator[Any]:
        items = iter(items)
        if self.workers <= 1:
            if not self._initialized and self.initializer is not None:
                self.initializer(*self.initargs)
            self._initialized = True
            for item in items:
                yield self.fn(item)
            return
        if self._pool is None:
            threads = max(1, (os.cpu_count() or 1) // self.workers)
            self._pool = _Pool(self.fn, self.workers, threads, self.initializer, self.initargs)
        pool = self._pool
        finished = False
        try:
            index = 0
            exhausted = False
            while True:
                while not exhausted and pool.idle():
                    try:
                        item = next(items)
                    except StopIteration:
                        exhausted = True
                        break
                    pool.submit(pool.idle()[0], index, item)
                    index += 1
                if not pool.busy:
                    break
                for _, result in pool.results():
                    yield result
            finished = True
        finally:
            if not finished:  # stopped early: kill the workers at once
                pool.close(graceful=False)
                self._pool = None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close(graceful=True)
            self._pool = None


@BACKENDS.register("ray", address=True, connect=_ray_connect)
def _ray_executor(
    fn: Callable[[Any], Any],
    workers: int,
    initializer: Callable[..., None] | None = None,
    initargs: tuple[Any, ...] = (),
    address: str | None = None,
    device: str = "cpu",
) -> Executor:
    from robnas.parallel.ray import RayExecutor  # Ray is an optional extra, imported on use

    return RayExecutor(fn, workers, initializer, initargs, address=address, device=device)


def map_unordered(
    fn: Callable[[T], R],
    items: Iterable[T],
    workers: int = 1,
    initializer: Callable[..., None] | None = None,
    initargs: tuple[Any, ...] = (),
) -> Iterator[R]:
    """``fn(item)`` for every item, serially (``workers <= 1``) or in ``workers`` processes.

    A one-off :class:`ProcessExecutor`. A consumer that may stop early should close the
    generator (``contextlib.closing``), which kills the workers at once.
    """
    executor = ProcessExecutor(fn, workers, initializer, initargs)
    try:
        yield from executor.map_unordered(items)
    finally:
        executor.close()
