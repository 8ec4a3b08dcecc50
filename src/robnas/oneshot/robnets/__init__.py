"""RobNets (Guo et al., "When NAS Meets Robustness", CVPR 2020): the FSP filter
(:mod:`~robnas.oneshot.robnets.fsp`), candidates scored with inherited supernet weights
(:mod:`~robnas.oneshot.robnets.objective`; the ``oneshot:`` objectives of
:mod:`robnas.objectives.oneshot`) and the three analyses (:mod:`~robnas.oneshot.robnets.analysis`).
The search strategy is :class:`robnas.search.robnets.RobNetsSearch`.
"""

from __future__ import annotations

import importlib
from typing import Any


def __getattr__(name: str) -> Any:  # ``robnas.oneshot.robnets.fsp`` and the others load on first use
    if name in ("analysis", "fsp", "objective"):
        return importlib.import_module(f"robnas.oneshot.robnets.{name}")
    raise AttributeError(f"module 'robnas.oneshot.robnets' has no attribute {name!r}")
