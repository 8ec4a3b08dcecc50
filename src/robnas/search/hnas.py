"""HNAS search: the hybrid training-free criterion, boosted by Bayesian optimisation.

Shu, Dai, Wu and Low, "Unifying and Boosting Gradient-Based Training-Free Neural Architecture
Search", NeurIPS 2022. Over a pool of architectures with ``M`` (NTK trace norm by default) and
``kappa`` (NTK condition number) computed once each, an architecture's criterion is

    S(A; mu, nu) = mu * |M(A)^2 - nu^2| + kappa(A) / M(A),   nu = t * scale, mu = 10^c.

Each objective query picks the not-yet-selected pool architecture with the smallest ``S`` for
the current ``(t, c)`` and asks the objective (short training or a benchmark lookup; the
reference's NAS-Bench-201 objective is the 12-epoch CIFAR-10 validation accuracy,
``nb201:valid@12`` with an ``ObjectiveContext(nb201=TABLE)``) for its value; a Gaussian-process BO over ``(t, c)`` (Optuna's ``GPSampler``, log expected
improvement) learns which trade-off gives good architectures. The first ``probes`` queries
use ``t = linspace(0, 1, probes)`` at the middle ``c``, as the reference does. Defaults are the
NAS-Bench-201 settings (scale 5e3, c in [-4, 0]); the reference uses scale 1e2 and c in
[-4, 1] in the DARTS space.

Differences from the reference: the pool is drawn once (``pool_size`` distinct architectures)
instead of growing by 2,000 random indices per query; the BO library is Optuna's GP rather than
``bayes_opt`` (whose old API the reference pins). The pool's proxy cost is recorded as setup
cost of the run.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from robnas.errors import ConfigError
from robnas.objectives import Cost
from robnas.search.base import SearchContext, SearchExhausted, Strategy, register

PAPER = "Shu et al., Unifying and Boosting Gradient-Based Training-Free NAS, NeurIPS 2022"


def criterion(m: np.ndarray, kappa: np.ndarray, t: float, c: float, scale: float) -> np.ndarray:
    """HNAS's ``S`` for every pool member (lower is better); invalid metrics give +inf."""
    m = np.asarray(m, dtype=float)
    kappa = np.asarray(kappa, dtype=float)
    nu = t * scale
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        s = 10.0**c * np.abs(m * m - nu * nu) + kappa / m
    s[~np.isfinite(s) | ~(m > 0)] = np.inf
    return s


def draw_pool(ctx: SearchContext, size: int) -> list[Any]:
    """``size`` distinct architectures (canonical forms) drawn with the run's rng."""
    members = getattr(ctx.space, "members", None)
    if members is not None and len(members) <= size:
        return [ctx.space.parse(m) for m in members]
    pool: dict[str, Any] = {}
    misses = 0
    while len(pool) < size and misses <= ctx.max_repeats:
        arch = ctx.space.sample(ctx.rng)
        key = ctx.key(arch)
        if key in pool:
            misses += 1
            continue
        pool[key] = ctx.space.parse(key)
    return list(pool.values())


@register("hnas", paper=PAPER)
@dataclass
class HNASSearch(Strategy):
    """HNAS: BO over (t, c) of the hybrid criterion; one objective query per BO step."""

    metric: str = "ntk_trace"
    condition: str = "ntk_condnum"
    pool_size: int = 1000
    probes: int = 5
    scale: float = 5e3
    c_low: float = -4.0
    c_high: float = 0.0

    def check(self) -> None:
        if self.pool_size < 1 or self.probes < 1:
            raise ConfigError(f"hnas: pool_size and probes must be >= 1, got {self.pool_size}, {self.probes}")
        if not (self.c_low < self.c_high) or not (self.scale > 0):
            raise ConfigError(
                f"hnas: need c_low < c_high and scale > 0, got {self.c_low}, {self.c_high}, {self.scale}"
            )

    def run(self, ctx: SearchContext) -> None:
        import optuna
        from optuna.distributions import FloatDistribution
        from optuna.trial import TrialState

        pool = draw_pool(ctx, self.pool_size)
        m_objective, k_objective = ctx.proxy(self.metric), ctx.proxy(self.condition)
        cost = Cost()
        m_values, k_values = [], []
        for m_ev, k_ev in ctx.measure_many([m_objective, k_objective], pool):
            cost = cost + m_ev.cost + k_ev.cost
            m_values.append(m_ev.value)
            k_values.append(k_ev.value)
        ctx.add_setup_cost(f"hnas pool ({len(pool)} x {self.metric}, {self.condition})", cost)
        m, kappa = np.array(m_values), np.array(k_values)
        if not np.any(np.isfinite(m) & (m > 0) & np.isfinite(kappa)):
            raise ConfigError(f"hnas: {self.metric} / {self.condition} failed on the whole pool")

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            sampler = optuna.samplers.GPSampler(
                seed=ctx.seed, n_startup_trials=self.probes, deterministic_objective=True
            )
        study = optuna.create_study(direction="maximize", sampler=sampler)
        mid = (self.c_low + self.c_high) / 2
        for t in np.linspace(0.0, 1.0, self.probes):
            study.enqueue_trial({"t": float(t), "c": mid})
        space = {"t": FloatDistribution(0.0, 1.0), "c": FloatDistribution(self.c_low, self.c_high)}
        selected = np.zeros(len(pool), dtype=bool)
        while True:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                trial = study.ask(space)
            t, c = trial.params["t"], trial.params["c"]
            s = criterion(m, kappa, t, c, self.scale)
            s[selected] = np.inf
            if not np.isfinite(s).any():
                study.tell(trial, state=TrialState.FAIL)
                raise SearchExhausted(f"every usable architecture of the {len(pool)}-pool was selected")
            pick = int(np.argmin(s))
            selected[pick] = True
            value = ctx.evaluate(pool[pick], {"t": t, "c": c, "S": float(s[pick])})
            if math.isfinite(value):
                study.tell(trial, value)
            else:
                study.tell(trial, state=TrialState.FAIL)
