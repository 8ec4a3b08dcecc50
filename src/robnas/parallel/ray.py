"""The Ray backend: each item is one Ray task on a cluster (Ray 2.x, https://docs.ray.io).

* The shared state (``fn``, the initializer and its arguments: the proxy batch, the search
  objectives with their data) goes to Ray's object store once (``ray.put``); each worker
  process fetches and initialises it once, on its first task, and keeps it for the next ones.
* Every task asks for one CPU (``num_cpus=1``); at most ``workers`` tasks are in flight, and
  their results come back as each finishes (``ray.wait``), so the caller commits each at once.
* A task for a GPU device also asks for one GPU (:func:`gpus_per_task`): Ray then places it on
  a node with a free GPU and sets its ``CUDA_VISIBLE_DEVICES`` to that GPU (a task that asks
  for none sees no GPU at all, whatever its node holds). More tasks than GPUs queue.
* A task whose worker or node dies is run again by Ray (``max_retries``, :data:`MAX_RETRIES`);
  its result still arrives once, so the caller never sees a duplicate. Exceptions raised by
  ``fn`` are not retried: they are raised again in the driver, as with worker processes.

Addresses: none starts a local Ray with ``workers`` CPUs (never an existing cluster);
``auto`` joins the cluster ``ray start`` runs on this machine; ``HOST:PORT`` a head's GCS
(``ray start --head --port PORT``); ``ray://HOST:PORT`` goes through Ray Client (port 10001).
An address that cannot be reached fails within :data:`CONNECT_SECONDS` with one line (Ray's
own ``ray.init`` waits minutes for a missing head).
"""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
import threading
from collections.abc import Iterable, Iterator
from typing import Any

from robnas.errors import ConfigError
from robnas.parallel.base import Executor, RemoteTraceback, WorkerDied

#: Times Ray runs a task again after its worker process or node died.
MAX_RETRIES = 3
#: Seconds of one wait for results (the driver checks for signals between waits).
WAIT_SECONDS = 0.2
#: Seconds allowed to reach a cluster's address before giving up.
CONNECT_SECONDS = 3.0
#: What to do when Ray is missing.
INSTALL_HINT = "the ray backend needs Ray: install robnas[ray] (pip install 'robnas[ray]')"

#: Worker side: the key of the shared state this worker process holds (one at a time).
_WORKER: dict[str, Any] = {"key": None, "fn": None}


def import_ray() -> Any:
    """The ``ray`` module, or :class:`ConfigError` naming the extra to install."""
    try:
        import ray
    except ImportError:
        raise ConfigError(INSTALL_HINT) from None
    return ray


def _host_port(address: str) -> tuple[str, int] | None:
    """``(host, port)`` of ``HOST:PORT`` or ``ray://HOST:PORT``; None when there is no port."""
    text = address.removeprefix("ray://")
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        return None
    return host.strip("[]") or "127.0.0.1", int(port)


def _resolve_auto(ray: Any) -> str:
    """The GCS address ``auto`` means on this machine (RAY_ADDRESS, else the running ``ray start``)."""
    try:
        from ray._private.services import canonicalize_bootstrap_address_or_die
    except ImportError:  # a Ray without this helper: leave the lookup to ray.init
        return "auto"
    try:
        return canonicalize_bootstrap_address_or_die("auto")
    except ConnectionError:
        raise ConfigError(
            "--address auto: no Ray cluster runs on this machine; start one with `ray start --head` "
            "(workers: `ray start --address HEAD:6379`), or leave out --address for a local Ray"
        ) from None


def check_reachable(address: str, seconds: float = CONNECT_SECONDS) -> None:
    """Raise :class:`ConfigError` unless a TCP connection to ``address`` opens within ``seconds``."""
    found = _host_port(address)
    if found is None:
        raise ConfigError(
            f"--address {address!r}: expected auto, HOST:PORT (the head's `ray start --head --port`) "
            "or ray://HOST:PORT (Ray Client, port 10001)"
        )
    try:
        with socket.create_connection(found, timeout=seconds) as conn:
            speaks_grpc = _answers_http2(conn)
    except OSError as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        raise ConfigError(
            f"Ray cluster at {address} is unreachable ({reason} within {seconds:g} s); start its head "
            "with `ray start --head` there, or check --address and the firewall"
        ) from None
    if not speaks_grpc:
        raise ConfigError(
            f"--address {address}: something answers there, but not a Ray cluster (no gRPC); give the head's "
            "GCS port (`ray start --head --port`, default 6379) or ray://HOST:10001 for Ray Client"
        )


#: HTTP/2's client preface and an empty SETTINGS frame: a gRPC server (Ray's GCS and Ray
#: Client are gRPC) answers with a SETTINGS frame of its own.
_HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])


def _answers_http2(conn: socket.socket) -> bool:
    """Whether the server on ``conn`` speaks HTTP/2 (its first frame is SETTINGS)."""
    conn.sendall(_HTTP2_PREFACE)
    head = b""
    try:
        while len(head) < 9:
            chunk = conn.recv(9 - len(head))
            if not chunk:
                break
            head += chunk
    except TimeoutError:
        return False
    return len(head) == 9 and head[3] == 4


def connect(address: str | None, workers: int) -> Any:
    """Connect this process to Ray once (later calls reuse the connection); returns ``ray``.

    ``address`` None starts a local Ray with ``workers`` CPUs.
    """
    target = "local" if address in (None, "", "local") else str(address)
    if target not in ("local", "auto"):
        check_reachable(target)  # before Ray is imported: a wrong address is told in a second
    ray = import_ray()
    if ray.is_initialized():
        return ray
    if target == "auto":
        resolved = _resolve_auto(ray)
        if resolved != "auto":
            check_reachable(resolved)
    options: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.WARNING}
    if target == "local":
        options.update(num_cpus=workers, include_dashboard=False)
    in_main = threading.current_thread() is threading.main_thread()
    sigterm = signal.getsignal(signal.SIGTERM) if in_main else None
    try:
        ray.init(address=target, **options)
    except ConnectionError as exc:
        raise ConfigError(f"cannot join the Ray cluster at {target}: {str(exc).splitlines()[0]}") from None
    except ValueError as exc:
        if "ray[client]" in str(exc):
            raise ConfigError(
                f"--address {target}: Ray Client (ray://) needs its extra packages; install robnas[ray] "
                "(pip install 'robnas[ray]', which includes ray[client])"
            ) from None
        raise
    finally:
        # ray.init replaces SIGTERM handling with sys.exit: keep the caller's own handler (the
        # command line's orderly stop); Ray's stays where there was none, so that Ray cleans up
        if callable(sigterm):
            signal.signal(signal.SIGTERM, sigterm)
    return ray


def gpus_per_task(device: str, cluster_gpus: float) -> int:
    """GPUs one task reserves to compute on ``device``: 1 for ``cuda`` (``cuda:0`` too: a task
    sees only its own GPU, as device 0, so other indices are refused), 1 for ``auto`` where the
    cluster has a GPU, else 0. ``cuda`` on a cluster without GPUs is refused."""
    if device.startswith("cuda"):
        if device not in ("cuda", "cuda:0"):
            raise ConfigError(
                f"--device {device}: a Ray task sees only the GPU Ray gives it; use --device cuda"
            )
        if cluster_gpus < 1:
            raise ConfigError(
                f"--device {device}: the Ray cluster has no GPU (a local Ray has this machine's; a cluster "
                "the GPUs its nodes declare: `ray start ... --num-gpus N`); use --device cpu or auto"
            )
        return 1
    if device == "auto":
        return 1 if cluster_gpus >= 1 else 0
    return 0


def _run(shared: list[Any], item: Any) -> Any:
    """A Ray task: initialise this worker from ``shared[0]`` (once per shared state), then ``fn(item)``."""
    import ray

    ref = shared[0]
    key = ref.hex()
    if _WORKER["key"] != key:
        import torch

        from robnas.runtime import keep_freed_memory

        keep_freed_memory()
        torch.set_num_threads(1)  # each task holds one CPU
        fn, initializer, initargs = ray.get(ref)
        if initializer is not None:
            initializer(*initargs)
        _WORKER.update(key=key, fn=fn)
    return _WORKER["fn"](item)


class RayExecutor(Executor):
    """``fn`` over items as Ray tasks (one CPU each), at most ``workers`` in flight."""

    def start(self) -> None:
        self.ray = connect(self.address, self.workers)
        self.gpus = gpus_per_task(self.device, float(self.ray.cluster_resources().get("GPU", 0)))
        self._task = self.ray.remote(_run).options(
            num_cpus=1, num_gpus=self.gpus, max_retries=MAX_RETRIES, retry_exceptions=False
        )
        self._shared: list[Any] | None = [self.ray.put((self.fn, self.initializer, self.initargs))]

    def map_unordered(self, items: Iterable[Any]) -> Iterator[Any]:
        if self._shared is None:
            raise RuntimeError("map_unordered on a closed RayExecutor")
        ray = self.ray
        items = iter(items)
        pending: dict[Any, Any] = {}
        exhausted = False
        finished = False
        try:
            while True:
                while not exhausted and len(pending) < self.workers:
                    try:
                        item = next(items)
                    except StopIteration:
                        exhausted = True
                        break
                    pending[self._task.remote(self._shared, item)] = item
                if not pending:
                    break
                # short waits: a signal's handler then runs in Python, not inside Ray's C++ wait
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=WAIT_SECONDS)
                for ref in ready:
                    del pending[ref]
                    yield self._result(ref)
            finished = True
        finally:
            if not finished:
                for ref in pending:
                    with contextlib.suppress(Exception):
                        ray.cancel(ref, force=True)

    def _result(self, ref: Any) -> Any:
        exceptions = self.ray.exceptions
        try:
            return self.ray.get(ref)
        except exceptions.RayTaskError as exc:
            cause = getattr(exc, "cause", None)
            if isinstance(cause, BaseException):
                raise cause from RemoteTraceback(str(exc))
            raise
        except exceptions.RayError as exc:  # the worker or its node died more than MAX_RETRIES times
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise WorkerDied(f"a Ray task was lost after {MAX_RETRIES} retries: {first}") from None

    def close(self) -> None:
        """Drop the shared state (the Ray connection stays for the process's next executor)."""
        self._shared = None
