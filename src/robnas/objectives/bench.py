"""``bench:TARGET``: a target of a benchmark (robustness dataset, NAS-RobBench-201, ...), looked up (simulated search); see
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
    """A target of a benchmark, looked up (no training, no proxy): the robustness dataset (standard
    training), NAS-RobBench-201 (adversarial training) or any :class:`~robnas.benchmarks.base.TargetBenchmark`."""

    def __init__(self, target: str, space: SearchSpace, context: ObjectiveContext) -> None:
        from robnas.benchmarks import RobustnessDataset

        self.dataset = context.dataset
        self.rob = context.robustness()
        if space.name != self.rob.space:
            raise ConfigError(f"this benchmark's objectives need the {self.rob.space} space, not {space.name!r}")
        robustness = isinstance(self.rob, RobustnessDataset)
        if robustness and self.dataset not in self.rob.datasets():
            raise DataError(
                f"{self.rob.root}: no {self.dataset!r} folder (has: {', '.join(self.rob.datasets())})"
            )
        self.target = self.rob.canonical_target(target.strip())  # fail now, not mid-search, on an unknown target
        self.values = self.rob.target_values(self.dataset, self.target)  # and on a missing epsilon or file
        # values of different benchmarks never share a key
        source = "" if robustness else f"|{type(self.rob).__name__}"
        super().__init__(space, f"bench:{self.target}|{self.dataset}{source}")
        self._by_canonical: dict[str, str] | None = None

    @property
    def local(self) -> bool:
        return True

    def attach(self, memo: Memo | None) -> None:
        self.memo = None  # a lookup is cheaper than a persistent cache

    def _listed(self, text: str) -> str:
        """An architecture of the benchmark isomorphic to ``text`` (excerpts may not list the canonical form)."""
        listed_archs = getattr(self.rob, "arch_strings", None)
        if self._by_canonical is None:
            self._by_canonical = {}
            for listed in listed_archs or []:
                self._by_canonical.setdefault(self.space.canonical_string(listed), listed)
        found = self._by_canonical.get(self.space.canonical_string(text))
        if found is None:
            raise DataError(f"{text} (or an isomorphic cell) is not in {self.rob!r}")
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
