"""``bench:TARGET``: a target of a robustness benchmark, looked up (simulated search); see
:mod:`robnas.objectives`.
"""

from __future__ import annotations

import math
from typing import Any

from robnas.errors import ConfigError, DataError
from robnas.objectives.base import OBJECTIVES, Memo, Objective, ObjectiveContext
from robnas.spaces.base import SearchSpace


def robustness_target(rob: Any, arch: str | int, dataset: str, target: str) -> float:
    """The value (a fraction) of target ``target`` for ``arch`` in the robustness dataset ``rob``.

    ``target`` follows :func:`robnas.benchmarks.robustness.parse_target` (``clean``, ``fgsm@8``,
    ``hrs_fgsm@8``, ``fog@3``, ``fog``, ``cc_weather``, ``cc_mean``, ...), the names ``robnas
    correlate`` uses for the same values.
    """
    return float(rob.target(arch, dataset, target))


class BenchmarkObjective(Objective):
    """A target of the NAS-Bench-201 robustness dataset, looked up (no training, no proxy)."""

    def __init__(self, target: str, space: SearchSpace, context: ObjectiveContext) -> None:
        if space.name != "nb201":
            raise ConfigError(f"benchmark objectives need the nb201 space, not {space.name!r}")
        self.target = target.strip()
        self.dataset = context.dataset
        self.rob = context.robustness()
        if self.dataset not in self.rob.datasets():
            raise DataError(
                f"{self.rob.root}: no {self.dataset!r} folder (has: {', '.join(self.rob.datasets())})"
            )
        from robnas.benchmarks.robustness import parse_target

        parsed = parse_target(self.target)  # fail now, not mid-search, on an unknown target
        self.target = parsed.name
        self.values = self.rob.target_values(self.dataset, parsed)  # and on a missing epsilon or file
        super().__init__(space, f"bench:{self.target}|{self.dataset}")
        self._by_canonical: dict[str, str] | None = None

    @property
    def local(self) -> bool:
        return True

    def attach(self, memo: Memo | None) -> None:
        self.memo = None  # a lookup is cheaper than a persistent cache

    def _listed(self, text: str) -> str:
        """A string of the dataset isomorphic to ``text`` (excerpts may not list the canonical form)."""
        if self._by_canonical is None:
            self._by_canonical = {}
            for listed in self.rob.arch_strings:
                self._by_canonical.setdefault(self.space.canonical_string(listed), listed)
        found = self._by_canonical.get(self.space.canonical_string(text))
        if found is None:
            raise DataError(f"{text} (or an isomorphic cell) is not in {self.rob.root / 'meta.json'}")
        return found

    def _compute(self, arch: Any) -> tuple[float, float]:
        text = self.space.format(arch)
        try:
            row = self.rob.rows([text])[0]
        except DataError:
            row = self.rob.rows([self._listed(text)])[0]
        return float(self.values[row]), math.nan


OBJECTIVES.register("bench", BenchmarkObjective)

__all__ = ["BenchmarkObjective", "robustness_target"]
