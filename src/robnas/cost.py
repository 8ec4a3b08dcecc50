"""What a piece of work cost: wall, CPU and GPU seconds (:class:`Cost`), measured by :class:`Timer`.

Search records the cost of every evaluation with these (:mod:`robnas.objectives`), Wsr-NAS its
per-part seconds (:mod:`robnas.oneshot.wsr`). GPU seconds are the synchronised wall time of
work on a CUDA device (0 on CPU).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any


@dataclass
class Cost:
    """Seconds spent: wall, CPU (this process), GPU (CUDA wall), and reported by a table."""

    wall: float = 0.0
    cpu: float = 0.0
    gpu: float = 0.0
    reported: float = math.nan

    def __add__(self, other: Cost) -> Cost:
        if math.isnan(self.reported):
            reported = other.reported
        elif math.isnan(other.reported):
            reported = self.reported
        else:
            reported = self.reported + other.reported
        return Cost(self.wall + other.wall, self.cpu + other.cpu, self.gpu + other.gpu, reported)


class Timer:
    """Wall, CPU and (on CUDA) GPU seconds of a block, and of named parts.

    ``with Timer(cuda) as t: ...`` leaves the block's :class:`Cost` in ``t.cost``;
    ``with t.part("train"): ...`` adds the part's wall seconds to ``t.parts["train"]``.
    ``cuda``: False, True (the current CUDA device) or a ``torch.device`` (synchronised
    before and after, so that asynchronous kernels are counted).
    """

    def __init__(self, cuda: Any = False, parts: tuple[str, ...] = ()) -> None:
        self.device = cuda if not isinstance(cuda, bool) else None
        self.cuda = bool(cuda) if isinstance(cuda, bool) else getattr(cuda, "type", "cpu") == "cuda"
        self.parts: dict[str, float] = dict.fromkeys(parts, 0.0)
        self.cost = Cost()

    def _sync(self) -> None:
        if self.cuda:
            import torch

            torch.cuda.synchronize(self.device)

    def __enter__(self) -> Timer:
        self._sync()
        self.wall0, self.cpu0 = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self._sync()
        wall = time.perf_counter() - self.wall0
        self.cost = Cost(wall, time.process_time() - self.cpu0, wall if self.cuda else 0.0)

    @contextlib.contextmanager
    def part(self, key: str) -> Iterator[None]:
        """Add the wall seconds of the block to ``parts[key]``."""
        self._sync()
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self._sync()
            self.parts[key] = self.parts.get(key, 0.0) + time.perf_counter() - t0


__all__ = ["Cost", "Timer"]
