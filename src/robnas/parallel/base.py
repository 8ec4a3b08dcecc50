"""What every parallel backend shares: the :class:`Executor` interface and the worker errors."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from robnas.errors import RobnasError


class WorkerDied(RobnasError):
    """A worker process ended without answering (killed, out of memory, crashed)."""


class RemoteTraceback(Exception):
    """The traceback of an exception raised in a worker, as text (the ``__cause__`` of the re-raise)."""

    def __str__(self) -> str:
        return "\n" + str(self.args[0]) if self.args else ""


class Executor(ABC):
    """Workers that live across calls: ``map_unordered`` may be called many times (search rounds).

    ``fn(item)`` runs on a worker after ``initializer(*initargs)`` has run there once; the
    shared state ``initargs`` travels to each worker once, never with every item.
    """

    def __init__(
        self,
        fn: Callable[[Any], Any],
        workers: int,
        initializer: Callable[..., None] | None = None,
        initargs: tuple[Any, ...] = (),
        address: str | None = None,
        device: str = "cpu",
    ) -> None:
        self.fn = fn
        self.workers = workers
        self.initializer = initializer
        self.initargs = initargs
        self.address = address
        self.device = device
        self.start()

    @abstractmethod
    def start(self) -> None:
        """Set up the backend's state (called once by the constructor)."""

    @abstractmethod
    def map_unordered(self, items: Iterable[Any]) -> Iterator[Any]:
        """``fn(item)`` of every item as each finishes, at most ``workers`` at a time. An
        exception of ``fn`` is raised again here (the worker's traceback as its cause); closing
        the generator early stops the items in flight."""

    @abstractmethod
    def close(self) -> None:
        """Release the workers (after the last item)."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
