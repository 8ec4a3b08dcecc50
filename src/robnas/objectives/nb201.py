"""``nb201:SPLIT@EPOCHS``: a NAS-Bench-201 accuracy, looked up; see :mod:`robnas.objectives`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from robnas import targets
from robnas.errors import ConfigError, UnknownName
from robnas.objectives.base import OBJECTIVES, Memo, Objective, ObjectiveContext
from robnas.spaces.base import SearchSpace

#: The training schedules of NAS-Bench-201 (epochs), as its ``hp`` argument.
NB201_EPOCHS: tuple[str, ...] = ("12", "200")
NB201_FORMS = (
    "nb201:SPLIT@EPOCHS or nb201:DATASET/SPLIT@EPOCHS with SPLIT valid or test, EPOCHS 12 or 200, "
    "DATASET cifar10-valid, cifar10, cifar100 or ImageNet16-120 (e.g. nb201:valid@12, nb201:test@200)"
)


def parse_nb201(spec: str, dataset: str = "cifar10") -> tuple[str, str, str]:
    """``(dataset, split, epochs)`` of an ``nb201:`` objective argument (see the module docstring)."""
    from robnas.benchmarks.nb201 import NB201_DATASETS, SPLIT_SET

    text = spec.strip()
    try:
        target = targets.parse(text, "nb201 objective").without_params("nb201")
    except UnknownName:
        raise UnknownName(f"nb201 objective {text!r}: expected {NB201_FORMS}") from None
    epochs = "" if target.level is None else targets.format_level(target.level)
    if epochs not in NB201_EPOCHS:
        raise UnknownName(f"nb201 objective {text!r}: expected {NB201_FORMS}")
    data, slash, split = target.name.rpartition("/")
    if not slash:
        data = dataset
        if split == "valid" and data == "cifar10":
            data = "cifar10-valid"
    if data not in NB201_DATASETS or split not in ("valid", "test"):
        raise UnknownName(f"nb201 objective {text!r}: expected {NB201_FORMS}")
    if (data, split) not in SPLIT_SET:
        known = ", ".join(f"{d}/{s}" for d, s in SPLIT_SET)
        raise UnknownName(f"nb201 objective {text!r}: NAS-Bench-201 has no {data}/{split} (it has: {known})")
    return data, split, epochs


class NB201Objective(Objective):
    """A NAS-Bench-201 accuracy (percent, mean over the benchmark's seeds), looked up by architecture.

    Every NAS-Bench-201 string was trained on its own, so the value is that of the canonical
    string of the architecture (isomorphic cells share it, as every objective caches per
    canonical form).
    """

    def __init__(self, spec: str, space: SearchSpace, context: ObjectiveContext) -> None:
        if space.name != "nb201":
            raise ConfigError(f"nb201 objectives need the nb201 space, not {space.name!r}")
        self.dataset, self.split, self.epochs = parse_nb201(spec, context.dataset)
        self.table = context.nb201_table()
        # fail now, not mid-search, when the table lacks this (dataset, split, epochs)
        self.table.accuracy(self.dataset, self.split, self.epochs, indices=[0])
        source = Path(str(self.table.source)).name
        super().__init__(space, f"nb201:{self.dataset}/{self.split}@{self.epochs}|{source}")

    @property
    def local(self) -> bool:
        return True

    def attach(self, memo: Memo | None) -> None:
        self.memo = None  # a lookup is cheaper than a persistent cache

    def _compute(self, arch: Any) -> tuple[float, float]:
        index = self.table.index_of(self.space.format(arch))
        values = self.table.accuracy(self.dataset, self.split, self.epochs, indices=[index])
        return float(values[0]), math.nan


OBJECTIVES.register("nb201", NB201Objective)

__all__ = ["NB201_EPOCHS", "NB201Objective", "parse_nb201"]
