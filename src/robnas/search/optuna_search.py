"""Optuna samplers (TPE, NSGA-II) over a space's categorical choices, single or multi-objective.

TPE: Bergstra et al., NeurIPS 2011 (Optuna's ``TPESampler``, multi-objective MOTPE when
several objectives are given); NSGA-II: Deb et al., IEEE TEC 2002 (``NSGAIISampler``).

The study lives in Optuna's own storage (an RDB URL such as ``sqlite:///study.db``, opened with
``load_if_exists=True``), so a run resumes from the study and several machines can search one
study through a shared database: the budget is the number of distinct architectures among the
study's completed trials, over all machines. By default the study is stored in the run's
SQLite file, named after the run.

Encoding: NAS-Bench-201 is 6 categorical parameters ``edge0..edge5`` over its 5 operations.
Another space takes part when it offers ``categorical_choices() -> {name: [choices]}`` and
``from_choices({name: choice}) -> arch``; the DARTS and RobNet spaces do not, so this strategy
is NAS-Bench-201-only for now.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from robnas.errors import ConfigError
from robnas.search.base import BudgetExhausted, SearchContext, SearchExhausted, Strategy, register

SAMPLERS = ("tpe", "nsga2")


def categorical_encoding(space: Any) -> tuple[dict[str, tuple[str, ...]], Callable[[dict[str, Any]], Any]]:
    """``({param: choices}, decode)`` for a space; ConfigError when it has no categorical encoding."""
    if hasattr(space, "categorical_choices") and hasattr(space, "from_choices"):
        return dict(space.categorical_choices()), space.from_choices
    if space.name == "nb201":
        from robnas.spaces.nb201 import NUM_EDGES, OPERATIONS

        choices = {f"edge{i}": OPERATIONS for i in range(NUM_EDGES)}
        return choices, lambda params: tuple(params[f"edge{i}"] for i in range(NUM_EDGES))
    raise ConfigError(
        f"the optuna strategy needs a categorical encoding of the space; {space.name!r} has none "
        "(supported: nb201, or a space with categorical_choices() and from_choices())"
    )


@register("optuna", paper="Akiba et al., Optuna, KDD 2019; TPE (Bergstra 2011), NSGA-II (Deb 2002)")
@dataclass
class OptunaSearch(Strategy):
    """Optuna's TPE or NSGA-II over the categorical encoding; all objectives are maximised."""

    multi_objective = True

    sampler: str = "tpe"
    storage: str = ""
    study_name: str = ""
    population_size: int = 20
    n_startup_trials: int = 10

    def check(self) -> None:
        if self.sampler not in SAMPLERS:
            raise ConfigError(f"optuna sampler must be one of {SAMPLERS}, got {self.sampler!r}")
        if self.population_size < 2 or self.n_startup_trials < 0:
            raise ConfigError("optuna: population_size must be >= 2 and n_startup_trials >= 0")

    def _sampler(self, seed: int) -> Any:
        import optuna

        if self.sampler == "tpe":
            return optuna.samplers.TPESampler(seed=seed, n_startup_trials=self.n_startup_trials)
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=self.population_size)

    def run(self, ctx: SearchContext) -> None:
        import optuna
        from optuna.distributions import CategoricalDistribution
        from optuna.trial import TrialState

        choices, decode = categorical_encoding(getattr(ctx.space, "base", ctx.space))
        distributions = {k: CategoricalDistribution(list(v)) for k, v in choices.items()}
        storage = self.storage or (None if ctx.out == ":memory:" else f"sqlite:///{ctx.out}")
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study = optuna.create_study(
                storage=storage,
                study_name=self.study_name or ctx.run,
                sampler=self._sampler(ctx.seed),
                directions=["maximize"] * len(ctx.objectives),
                load_if_exists=True,
            )
        restricted = getattr(ctx.space, "members", None) is not None
        failures = 0
        while True:
            done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if len({t.user_attrs.get("arch") for t in done}) >= ctx.budget:
                raise BudgetExhausted
            trial = study.ask(distributions)
            arch = ctx.space.validate(decode(trial.params))
            if restricted and arch not in ctx.space:
                study.tell(trial, state=TrialState.FAIL)
                failures += 1
                if failures > ctx.max_repeats:
                    raise SearchExhausted(f"{failures} proposals fell outside the restricted space")
                continue
            try:
                values = ctx.evaluate_all(arch)
            except BaseException:
                study.tell(trial, state=TrialState.FAIL)
                raise
            trial.set_user_attr("arch", ctx.key(arch))
            if all(v == v for v in values):
                study.tell(trial, list(values))
            else:
                study.tell(trial, state=TrialState.FAIL)
