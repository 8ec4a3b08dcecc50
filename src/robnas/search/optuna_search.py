"""Optuna samplers (TPE, NSGA-II) over a space's categorical choices, single or multi-objective.

TPE: Bergstra et al., NeurIPS 2011 (Optuna's ``TPESampler``, multi-objective MOTPE when
several objectives are given); NSGA-II: Deb et al., IEEE TEC 2002 (``NSGAIISampler``).

The study lives in Optuna's own storage (an RDB URL such as ``sqlite:///study.db``, opened with
``load_if_exists=True``), so a run resumes from the study and several machines can search one
study through a shared database: the budget is the number of distinct architectures among the
study's completed trials, over all machines. By default the study is stored in the run's
SQLite file, named after the run.

Encoding: a space's :meth:`~robnas.spaces.base.SearchSpace.categorical_choices`, one Optuna
categorical parameter per named decision variable, decoded by ``from_choices``: NAS-Bench-201
``edge0..edge5``; DARTS an unordered input pair and two operations per step; darts-croze the
14 operations and the concat of each cell; RobNet the 14 edge codes of each sampled cell.

Proposals that are not evaluated: a decoded architecture outside a restricted space (a scores
table), or over the space's parameter cap (``max_params_m``, e.g. darts-croze's 6 M), is told
to the study as a failed trial with the reason in its ``rejected`` user attribute. It costs no
budget and no objective evaluation, and the samplers ignore failed trials. After
``max_rejected`` such proposals in a row the search stops as exhausted.

>>> from robnas.objectives import ObjectiveContext
>>> from robnas.search import run_search
>>> tiny = ObjectiveContext(model={"C": 4, "layers": 5})
>>> result = run_search("robnet", "optuna", "params,-l2_norm", 3, context=tiny,
...                     options={"sampler": "nsga2", "population_size": 2})
>>> result.status, result.evaluated, len(result.history[0].all_values())
('done', 3, 2)
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

from robnas.errors import ConfigError, InvalidArchitecture
from robnas.search.base import BudgetExhausted, SearchContext, SearchExhausted, Strategy, register
from robnas.spaces.base import SearchSpace

SAMPLERS = ("tpe", "nsga2")


def categorical_distributions(space: SearchSpace) -> dict[str, Any]:
    """Optuna's ``{name: CategoricalDistribution}`` of the space's categorical choices."""
    from optuna.distributions import CategoricalDistribution

    return {name: CategoricalDistribution(list(values)) for name, values in space.categorical_choices()}


def decode_proposal(
    space: SearchSpace, params: dict[str, Any], within_cap: dict[str, bool]
) -> tuple[Any, str]:
    """``(arch, "")`` for a proposal to evaluate, else ``(arch or None, reason)``.

    ``within_cap`` memoises the parameter-cap check by canonical text (samplers often repeat).
    """
    try:
        arch = space.from_choices(params)
    except InvalidArchitecture as exc:
        return None, str(exc)
    cap = getattr(space, "max_params_m", None)
    if cap is not None:
        key = space.canonical_string(arch)
        if key not in within_cap:
            within_cap[key] = bool(space.within_cap(arch))  # type: ignore[attr-defined]
        if not within_cap[key]:
            return arch, f"over the {cap:g} M parameter cap of {space.name}"
    return arch, ""


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
    max_rejected: int = 500

    def check(self) -> None:
        if self.sampler not in SAMPLERS:
            raise ConfigError(f"optuna sampler must be one of {SAMPLERS}, got {self.sampler!r}")
        if self.population_size < 2 or self.n_startup_trials < 0:
            raise ConfigError("optuna: population_size must be >= 2 and n_startup_trials >= 0")
        if self.max_rejected < 1:
            raise ConfigError(f"optuna: max_rejected must be >= 1, got {self.max_rejected}")

    def _sampler(self, seed: int) -> Any:
        import optuna

        if self.sampler == "tpe":
            return optuna.samplers.TPESampler(seed=seed, n_startup_trials=self.n_startup_trials)
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=self.population_size)

    def run(self, ctx: SearchContext) -> None:
        import optuna
        from optuna.trial import TrialState

        distributions = categorical_distributions(ctx.space)
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
        within_cap: dict[str, bool] = {}
        rejected = 0
        while True:
            done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if len({t.user_attrs.get("arch") for t in done}) >= ctx.budget:
                raise BudgetExhausted
            trial = study.ask(distributions)
            arch, reason = decode_proposal(ctx.space, trial.params, within_cap)
            if reason:
                trial.set_user_attr("rejected", reason)
                study.tell(trial, state=TrialState.FAIL)
                rejected += 1
                if rejected >= self.max_rejected:
                    raise SearchExhausted(
                        f"{rejected} proposals in a row were not evaluated (last: {reason})"
                    )
                continue
            rejected = 0
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
