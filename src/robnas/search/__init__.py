"""Search strategies over a space for architectures maximising an objective.

>>> from robnas import search
>>> result = search.run_search("nb201", "random", "params", budget=3, seed=0)  # doctest: +SKIP
>>> result.best(1)[0].arch  # doctest: +SKIP

Strategies (``search.names()``): ``random``, ``topk``, ``evolution`` (CRoZe's mutation chain),
``regularized-evolution`` (Real et al. 2019), ``hnas`` (Shu et al. 2022), ``optuna`` (TPE or
NSGA-II), ``robnets`` (Guo et al. 2020: fine-tuned candidates of a trained supernet) and the
one-shot ``wsr-nas`` / ``wsr-naive`` (Cheng et al., AAAI 2023, :mod:`robnas.search.wsr`).
Objectives are described in :mod:`robnas.objectives`; runs are stored and resumed through
:mod:`robnas.search.history`.
"""

from __future__ import annotations

from robnas.search import hnas, optuna_search, robnets, strategies, wsr
from robnas.search.base import (
    STRATEGIES,
    BudgetExhausted,
    SearchContext,
    SearchExhausted,
    SearchResult,
    Strategy,
    make_strategy,
    register,
    run_search,
)
from robnas.search.history import HistoryRow, HistoryStore
from robnas.search.subset import SubsetSpace


def names(pattern: str = "*") -> list[str]:
    """Registered strategy names matching a wildcard."""
    return STRATEGIES.names(pattern)


__all__ = [
    "STRATEGIES",
    "BudgetExhausted",
    "HistoryRow",
    "HistoryStore",
    "SearchContext",
    "SearchExhausted",
    "SearchResult",
    "Strategy",
    "SubsetSpace",
    "hnas",
    "make_strategy",
    "names",
    "optuna_search",
    "register",
    "robnets",
    "run_search",
    "strategies",
    "wsr",
]
