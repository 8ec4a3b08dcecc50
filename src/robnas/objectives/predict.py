"""``predict:MODEL``: a search objective that scores a candidate with a fitted predictor.

The candidate's proxy values come through the normal scoring path, one
:class:`~robnas.objectives.proxy.ProxyObjective` per proxy of the predictor (read from the context's
scores table when it has one, else computed on the context's proxy batch, seeded as ``robnas
score``); the predictor turns them and the architecture into the predicted target. No benchmark
accuracy is read. Higher is better (the predicted target is an accuracy).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from robnas.errors import ConfigError, DataError, ProxyError
from robnas.fingerprint import file_digest
from robnas.objectives.base import OBJECTIVES, Memo, Objective, ObjectiveContext
from robnas.objectives.proxy import ProxyObjective, proxies_needing_data
from robnas.predict.model import load
from robnas.spaces.base import SearchSpace


class PredictObjective(Objective):
    """The predicted target of a fitted predictor file (see the module docstring)."""

    def __init__(self, path: str, space: SearchSpace, context: ObjectiveContext) -> None:
        if not path.strip():
            raise ConfigError("predict: needs a predictor file, e.g. predict:model.json (robnas predict fit)")
        self.path = Path(path.strip())
        self.predictor = load(self.path)
        if self.predictor.space != space.name:
            raise ConfigError(
                f"predictor {self.path} was fitted on space {self.predictor.space!r}, the search is on {space.name!r}"
            )
        self.members = [ProxyObjective(p, space, context) for p in self.predictor.proxies]
        digest = file_digest(self.path)[:12]
        inputs = ";".join(m.key for m in self.members)
        super().__init__(space, f"predict:{self.path.name}|sha={digest}|{inputs}")

    @property
    def uses_cuda(self) -> bool:
        return any(m.uses_cuda for m in self.members)

    def attach(self, memo: Memo | None) -> None:
        self.memo = memo
        for m in self.members:
            m.attach(memo)

    def _compute(self, arch: Any) -> tuple[float, float]:
        values, seconds = [], []
        for member in self.members:
            ev = member.measure(arch)
            if ev.error:
                raise ProxyError(f"predictor input {member.name}: {ev.error}")
            values.append(ev.value)
            seconds.append(ev.cost.reported)
        prediction = self.predictor.predict(self.space, [arch], np.array([values]))[0]
        reported = float(np.sum(seconds)) if all(math.isfinite(s) for s in seconds) else math.nan
        return float(prediction), reported


def _needs_data(arg: str, has_scores: bool) -> list[str]:
    """The proxies of the predictor ``arg`` that look at images (a bad file fails in the objective)."""
    if not arg.strip():
        return []
    try:
        names = load(arg.strip()).proxies
    except DataError:
        return []
    return proxies_needing_data(names, has_scores)


OBJECTIVES.register(
    "predict", PredictObjective, paper="few-shot predictor of robnas.predict (LightGBM)", needs_data=_needs_data
)

__all__ = ["PredictObjective"]
