"""The one query interface of robnas's target benchmarks: one value per evaluated network.

Every reader whose values ``robnas correlate`` ranks proxies against and ``bench:`` objectives
look up (the robustness dataset of Jung et al., NAS-RobBench-201, Tiny-RobustBench) answers
:class:`TargetBenchmark`. Its rows are the evaluated networks (``keys``); an architecture maps
to its row through :meth:`~TargetBenchmark.rows` (isomorphic copies share a row where the
benchmark evaluated one network per isomorphism class); :meth:`~TargetBenchmark.weights` says how
many members of the search space each row stands for (NAS-Bench-201: the number of its 15,625
strings in the class; 1 where every listed architecture was trained on its own), which gives the
two populations of a correlation: each row once, or rows weighted by their members.

Target names follow the one target grammar (``clean``, ``ATTACK@EPS`` with EPS in 1/255, ...);
each benchmark answers the names its files hold (:meth:`~TargetBenchmark.target_names`) and
writes every accepted spelling in one canonical form (:meth:`~TargetBenchmark.canonical_target`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from robnas.errors import DataError


@runtime_checkable
class TargetBenchmark(Protocol):
    """What ``robnas correlate`` and ``bench:`` objectives need of a benchmark."""

    #: The search space of its architectures (``robnas.spaces`` name: ``nb201``, ``darts``).
    space: str

    @property
    def keys(self) -> list[str]:
        """The evaluated networks, in row order (ids as text)."""
        ...

    def datasets(self) -> list[str]:
        """The datasets it has values for."""
        ...

    def target_names(self, dataset: str) -> list[str]:
        """Every canonical target name it can answer for ``dataset``."""
        ...

    def canonical_target(self, name: str) -> str:
        """The canonical spelling of target ``name``; :class:`~robnas.errors.UnknownName` if it has none."""
        ...

    def target_values(self, dataset: str, target: str) -> np.ndarray:
        """The value of ``target`` for every row of :attr:`keys` (fractions, float64, shape ``(len(keys),)``)."""
        ...

    def rows(self, archs: Sequence[str | int]) -> np.ndarray:
        """The row of each architecture (its text, or an integer index where the benchmark has
        indices); :class:`~robnas.errors.DataError` for one it does not list."""
        ...

    def weights(self) -> np.ndarray:
        """How many members of the search space each row stands for (float64, ``(len(keys),)``)."""
        ...


def nb201_index(arch: str | int, strings: Sequence[str], string_index: dict[str, int], source: object) -> int:
    """The NAS-Bench-201 index of ``arch`` (an index, or a string in any spacing) in a table of
    ``strings`` (``string_index``: string -> index) read from ``source``; DataError for one it does
    not list, InvalidArchitecture for a malformed string."""
    if isinstance(arch, (int, np.integer)):
        if not 0 <= int(arch) < len(strings):
            raise DataError(f"NAS-Bench-201 index {arch} is outside 0..{len(strings) - 1} of {source}")
        return int(arch)
    found = string_index.get(arch)
    if found is not None:
        return found
    from robnas import spaces

    space = spaces.get("nb201")
    text = space.format(space.parse(arch))
    found = string_index.get(text)
    if found is None:
        raise DataError(f"architecture {text} is not listed in {source}")
    return found


__all__ = ["TargetBenchmark", "nb201_index"]
