"""Map work over items serially or in a process pool, yielding results as they finish.

Results are yielded one by one so the caller can store each as soon as it exists; a run
killed mid-way keeps everything already yielded.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Any, TypeVar

import torch

from robnas.runtime import keep_freed_memory

T = TypeVar("T")
R = TypeVar("R")


def _init_worker(threads: int, initializer: Callable[..., None] | None, initargs: tuple) -> None:
    keep_freed_memory()  # spawned workers do not inherit the parent's malloc settings
    torch.set_num_threads(threads)
    if initializer is not None:
        initializer(*initargs)


def map_unordered(
    fn: Callable[[T], R],
    items: Iterable[T],
    workers: int = 1,
    initializer: Callable[..., None] | None = None,
    initargs: tuple[Any, ...] = (),
) -> Iterator[R]:
    """``fn(item)`` for every item, serially (``workers <= 1``) or in ``workers`` processes.

    Worker processes get ``max(1, cpu_count // workers)`` torch threads each. At most
    ``2 * workers`` items are in flight, so memory does not grow with the item count.
    """
    items = iter(items)
    if workers <= 1:
        if initializer is not None:
            initializer(*initargs)
        for item in items:
            yield fn(item)
        return
    threads = max(1, (os.cpu_count() or 1) // workers)
    with ProcessPoolExecutor(
        workers, initializer=_init_worker, initargs=(threads, initializer, initargs)
    ) as pool:
        pending = set()
        for item in items:
            pending.add(pool.submit(fn, item))
            if len(pending) >= 2 * workers:
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for f in finished:
                    yield f.result()
        for f in pending:
            yield f.result()
