"""robnas: robust neural architecture search.

Robust zero-cost proxies (CRoZe), robust cell spaces and published robust models
(RobNets, Wsr-NAS), gradient-based training-free search (HNAS), attacks, common
corruptions, tabular benchmarks, search strategies and training recipes.

Submodules load on first use (``robnas.attacks``, ``robnas.zoo``, ...), so ``import robnas``
stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

from robnas.errors import RobnasError

__version__ = "0.1.0"

_SUBMODULES = (
    "attacks", "benchmarks", "correlate", "corruptions", "data", "demo", "evaluate", "holdout", "objectives",
    "oneshot", "predict", "proxies", "report", "scoring", "search", "spaces", "store", "train", "zoo",
)


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"robnas.{name}")
    raise AttributeError(f"module 'robnas' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_SUBMODULES])


__all__ = ["RobnasError", "__version__", *_SUBMODULES]
