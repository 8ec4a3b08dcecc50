"""Search objectives: what a search strategy maximises, with the cost of every evaluation.

:mod:`robnas.objectives.base` holds what every objective shares (:class:`Objective`, the
:class:`ObjectiveContext` it is made in, the result types :class:`Cost`, :class:`Evaluation`,
:class:`Memo`, :class:`Timer`, and :func:`make`, which reads the spec forms listed there). Each
kind is a plug-in module that registers its factories in :data:`OBJECTIVES` when it is first
used; the base imports none of them:

========================  =========================================  ==============================
spec                      what                                       module
========================  =========================================  ==============================
``croze``, ``a+b+c``      a proxy, a rank ensemble of proxies        :mod:`robnas.objectives.proxy`
``bench:TARGET``          a robustness benchmark lookup              :mod:`robnas.objectives.bench`
``nb201:SPLIT@EPOCHS``    a NAS-Bench-201 accuracy                   :mod:`robnas.objectives.nb201`
``train:RECIPE``          short training                             :mod:`robnas.objectives.train`
``oneshot:TARGET``        inherited supernet weights (RobNets)       :mod:`robnas.objectives.oneshot`
``predict:MODEL``         a few-shot predictor                       :mod:`robnas.objectives.predict`
========================  =========================================  ==============================
"""

from __future__ import annotations

from robnas.objectives.base import (
    OBJECTIVES,
    Cost,
    Evaluation,
    Memo,
    Negated,
    Objective,
    ObjectiveContext,
    ScoreTable,
    Timer,
    make,
    make_many,
    needs_data,
    parse_spec,
    split,
)

#: Objective kinds and the module that registers each, imported on first use.
PLUGINS: dict[str, str] = {
    "proxy": "robnas.objectives.proxy",
    "ensemble": "robnas.objectives.proxy",
    "bench": "robnas.objectives.bench",
    "nb201": "robnas.objectives.nb201",
    "train": "robnas.objectives.train",
    "predict": "robnas.objectives.predict",
    "oneshot": "robnas.objectives.oneshot",
    "oneshot-finetune": "robnas.objectives.oneshot",
}
for _kind, _module in PLUGINS.items():
    OBJECTIVES.defer(_kind, _module)

__all__ = [
    "OBJECTIVES",
    "PLUGINS",
    "Cost",
    "Evaluation",
    "Memo",
    "Negated",
    "Objective",
    "ObjectiveContext",
    "ScoreTable",
    "Timer",
    "make",
    "make_many",
    "needs_data",
    "parse_spec",
    "split",
]
