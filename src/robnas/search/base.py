"""The search runner: strategies, the budgeted evaluator they query, resumable runs.

A strategy is a dataclass of its options with a ``run(ctx)`` method that proposes
architectures and asks ``ctx.evaluate(arch)`` for their values. The budget counts distinct
architectures (canonical forms) sent to the objective; re-asking a known architecture returns
its stored value for free. When the budget is spent, ``evaluate`` raises
:class:`BudgetExhausted`, which ends the run.

Batches: a strategy with independent candidates (a random sample, an evolution round, a
population) asks ``ctx.evaluate_many(archs)``; the new ones are computed together on the run's
parallel backend (``process`` or ``ray``, ``workers`` at a time; serially by default), each
value is kept in the memo as it arrives, and the history records them in proposal order, with
the budget and repeat rules of one-by-one evaluation, so a batch gives the same history as
the loop it replaces. ``ctx.measure_many(objectives, archs)`` is the same seam for values a
strategy uses outside the history (HNAS's pool).

Resuming: every query is stored the moment it is answered. A strategy draws all its
randomness from ``ctx.rng`` (seeded by the run's seed), so running it again replays the same
proposals; the known ones are answered from the history without cost or a new step, and the
search continues where it stopped. Re-running with a larger budget extends the run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import time
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from robnas import objectives as objective_lib
from robnas.errors import ConfigError, RobnasError, mask_secrets
from robnas.objectives import Cost, Evaluation, Objective, ObjectiveContext
from robnas.parallel import Executor, check_backend, open_executor
from robnas.registry import Registry
from robnas.search.history import HistoryRow, HistoryStore
from robnas.spaces.base import SearchSpace
from robnas.store import ExclusiveUse


class BudgetExhausted(Exception):
    """Raised by the evaluator when the run has used its whole budget."""


class SearchExhausted(Exception):
    """Raised when a strategy cannot propose a new architecture (space or pool used up)."""


class Strategy(ABC):
    """A search strategy; subclasses are dataclasses whose fields are the options."""

    name: ClassVar[str] = ""
    multi_objective: ClassVar[bool] = False

    @abstractmethod
    def run(self, ctx: SearchContext) -> None:
        """Propose architectures and query ``ctx.evaluate`` until done or out of budget."""

    def prepare(
        self, objective: str | Sequence[str], context: ObjectiveContext, out: str | Path
    ) -> str | Sequence[str]:
        """The objective spec to search with, once the strategy has set what its objective
        needs in ``context`` (called before the objectives are made; default: unchanged)."""
        return objective


STRATEGIES: Registry[type[Strategy]] = Registry("search strategy")


def register(name: str, **meta: Any):
    """Class decorator registering a strategy under ``name``."""

    def wrap(cls: type[Strategy]) -> type[Strategy]:
        cls.name = name
        STRATEGIES.register(name, cls, **meta)
        return cls

    return wrap


def make_strategy(name: str, options: dict[str, Any] | None = None) -> Strategy:
    """The strategy ``name`` with ``options``; unknown or ill-typed options raise ConfigError."""
    cls = STRATEGIES.get(name)
    options = dict(options or {})
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(options) - set(fields))
    if unknown:
        raise ConfigError(
            f"strategy {name!r} has no option {', '.join(unknown)} (options: {', '.join(fields) or 'none'})"
        )
    for key, value in list(options.items()):
        default = fields[key].default
        if isinstance(value, str) and not isinstance(default, str) and default is not dataclasses.MISSING:
            options[key] = _coerce(name, key, value, default)
    strategy = cls(**options)
    check = getattr(strategy, "check", None)
    if check is not None:
        check()
    return strategy


def _coerce(strategy: str, key: str, text: str, default: Any) -> Any:
    try:
        if isinstance(default, bool):
            if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(text)
            return text.lower() in ("true", "1", "yes")
        if isinstance(default, int):
            return int(text)
        if isinstance(default, float):
            return float(text)
    except ValueError:
        raise ConfigError(
            f"strategy {strategy!r} option {key}={text!r}: expected {type(default).__name__}"
        ) from None
    return text


def _score(value: float) -> float:
    """NaN (a failed evaluation) ranks below every real value."""
    return -math.inf if math.isnan(value) else value


#: Worker side: the objectives a worker computes (None for local lookups).
_HELD: list[Objective | None] = []


def _hold_objectives(objectives: list[Objective | None]) -> None:
    for o in objectives:
        if o is not None:
            o.attach(None)  # a worker never writes the memo: the driver stores what it returns
    _HELD[:] = objectives


def _measure_remote(item: tuple[str, tuple[int, ...]]) -> tuple[str, list[tuple[int, Evaluation]]]:
    key, todo = item
    results = []
    for i in todo:
        objective = _HELD[i]
        assert objective is not None
        results.append((i, objective.measure(key, canonical=True)))
    return key, results


class SearchContext:
    """What a strategy sees: the space, a seeded rng, and the budgeted evaluator."""

    def __init__(
        self,
        space: SearchSpace,
        objectives: list[Objective],
        rng: np.random.Generator,
        seed: int,
        budget: int,
        store: HistoryStore,
        run: str,
        proxy_context: ObjectiveContext,
        max_repeats: int = 2000,
        out: str | Path = ":memory:",
        on_row: Callable[[HistoryRow], None] | None = None,
        backend: str = "process",
        workers: int = 1,
        address: str | None = None,
    ) -> None:
        self.space = space
        self.objectives = objectives
        self.rng = rng
        self.seed = seed
        self.budget = budget
        self.store = store
        self.run = run
        self.proxy_context = proxy_context
        self.max_repeats = max_repeats
        self.out = str(out)
        self.rows: list[HistoryRow] = store.history(run)
        self.known: dict[str, HistoryRow] = {r.arch: r for r in self.rows}
        self.setup: dict[str, Cost] = {}
        self.on_row = on_row
        self.backend = backend
        self.workers = workers
        self.address = address
        self._repeats = 0
        self._executor: tuple[list[Objective], Executor] | None = None

    @property
    def used(self) -> int:
        """Distinct architectures evaluated so far (over all sessions of the run)."""
        return len(self.rows)

    @property
    def remaining(self) -> int:
        return max(0, self.budget - self.used)

    def key(self, arch: Any) -> str:
        return self.space.canonical_string(arch)

    def evaluate(self, arch: Any, info: dict[str, Any] | None = None) -> float:
        """The (first) objective's value of ``arch``; higher is better, NaN for a failure."""
        return self.evaluate_many([arch], info)[0]

    def evaluate_all(self, arch: Any, info: dict[str, Any] | None = None) -> tuple[float, ...]:
        """Every objective's value of ``arch``; a new architecture costs one unit of budget."""
        return self._evaluate_batch([arch], info)[0]

    def evaluate_many(
        self, archs: Sequence[Any], info: dict[str, Any] | Sequence[dict[str, Any]] | None = None
    ) -> list[float]:
        """The (first) objective's values of independent candidates, evaluated together.

        Equivalent to ``[ctx.evaluate(a, info) for a in archs]``: the same history rows in the
        same order, the same budget (:class:`BudgetExhausted` once the new architectures
        proposed before it are recorded) and repeat rules. ``info`` is one dict for all or one
        per architecture.
        """
        return [values[0] for values in self._evaluate_batch(archs, info)]

    def _evaluate_batch(
        self, archs: Sequence[Any], info: dict[str, Any] | Sequence[dict[str, Any]] | None
    ) -> list[tuple[float, ...]]:
        archs = list(archs)
        if info is None or isinstance(info, dict):
            infos = [dict(info or {}) for _ in archs]
        else:
            infos = [dict(i) for i in info]
            if len(infos) != len(archs):
                raise ValueError(f"{len(infos)} info dicts for {len(archs)} architectures")
        answered: list[str] = []
        new: dict[str, dict[str, Any]] = {}
        stop: Exception | None = None
        for arch, arch_info in zip(archs, infos, strict=True):
            key = self.key(arch)
            if key in self.known or key in new:
                self._repeats += 1
                if self._repeats > self.max_repeats:
                    stop = SearchExhausted(f"{self.max_repeats} proposals in a row were already evaluated")
                    break
            else:
                if self.used + len(new) >= self.budget:
                    stop = BudgetExhausted()
                    break
                self._repeats = 0
                new[key] = arch_info
            answered.append(key)
        order = list(new)
        arrived: dict[str, list[Evaluation]] = {}
        for key, evaluations in self.iter_measure(self.objectives, order):
            arrived[key] = evaluations
            while order and order[0] in arrived:
                first = order.pop(0)
                self._record(first, arrived.pop(first), new[first])
        if stop is not None:
            raise stop
        return [self.known[key].all_values() for key in answered]

    def _record(self, key: str, evaluations: list[Evaluation], info: dict[str, Any]) -> None:
        cost = Cost()
        for ev in evaluations:
            cost = cost + ev.cost
        error = "; ".join(ev.error for ev in evaluations if ev.error)
        row = HistoryRow(
            self.used + 1,
            key,
            evaluations[0].value,
            cost,
            error,
            tuple(ev.value for ev in evaluations[1:]),
            info,
        )
        self.store.add(self.run, row)
        self.rows.append(row)
        self.known[key] = row
        if self.on_row is not None:
            self.on_row(row)

    @property
    def parallel(self) -> bool:
        """Whether new evaluations go to workers (any backend but a single local process)."""
        return not (self.backend == "process" and self.workers <= 1)

    def measure_many(self, objectives: Sequence[Objective], archs: Sequence[Any]) -> list[list[Evaluation]]:
        """``[[o.measure(a) for o in objectives] for a in archs]``, computed on the run's backend."""
        found = dict(self.iter_measure(objectives, archs))
        return [found[self.key(a)] for a in archs]

    def iter_measure(
        self, objectives: Sequence[Objective], archs: Sequence[Any]
    ) -> Iterator[tuple[str, list[Evaluation]]]:
        """``(canonical key, evaluations)`` of each distinct architecture as it is known: in order
        when serial, as workers finish otherwise. Each value computed by a worker is kept in its
        objective's memo (committed) the moment it arrives, so an interrupted batch loses none."""
        keys = list(dict.fromkeys(self.key(a) for a in archs))
        if not self.parallel:
            for key in keys:
                yield key, [o.measure(key, canonical=True) for o in objectives]
            return
        work = []
        for key in keys:
            todo = tuple(
                i for i, o in enumerate(objectives) if not o.local and o.cached(key, canonical=True) is None
            )
            if todo:
                work.append((key, todo))
            else:
                yield key, [o.measure(key, canonical=True) for o in objectives]
        if not work:
            return
        executor = self._open_executor(objectives)
        with contextlib.closing(executor.map_unordered(work)) as results:
            for key, evaluations in results:
                for i, ev in evaluations:
                    objectives[i].remember(key, ev, canonical=True)
                yield key, [o.measure(key, canonical=True) for o in objectives]

    def _open_executor(self, objectives: Sequence[Objective]) -> Executor:
        """The workers holding ``objectives`` (kept across batches; one set of workers at a time)."""
        if self._executor is not None:
            held, executor = self._executor
            if len(held) == len(objectives) and all(a is b for a, b in zip(held, objectives, strict=True)):
                return executor
            self.close()
        for o in objectives:
            o.prepare()
        shipped = [None if o.local else o for o in objectives]
        executor = open_executor(
            self.backend,
            _measure_remote,
            self.workers,
            _hold_objectives,
            (shipped,),
            address=self.address,
            device=self.proxy_context.device,
        )
        self._executor = (list(objectives), executor)
        return executor

    def close(self) -> None:
        """Release the workers."""
        if self._executor is not None:
            self._executor[1].close()
            self._executor = None

    def proxy(self, name: str) -> Objective:
        """A proxy objective in the run's proxy context, sharing the run store's memo (HNAS pools)."""
        objective = objective_lib.make(name, self.space, self.proxy_context)
        objective.attach(self.store)
        return objective

    def add_setup_cost(self, label: str, cost: Cost) -> None:
        """Cost a strategy spent outside the objective (e.g. scoring a candidate pool)."""
        self.setup[label] = self.setup.get(label, Cost()) + cost


@dataclass
class SearchResult:
    """A finished (or budget-limited) search: its history, its best architectures, its cost."""

    run: str
    space: str
    strategy: str
    objectives: list[str]
    seed: int
    budget: int
    status: str
    history: list[HistoryRow]
    session: Cost
    total: Cost
    setup: dict[str, Cost] = field(default_factory=dict)

    @property
    def evaluated(self) -> int:
        return len(self.history)

    @property
    def evaluation_cost(self) -> Cost:
        cost = Cost()
        for row in self.history:
            cost = cost + row.cost
        return cost

    def require_values(self) -> None:
        """Raise RobnasError (naming the most frequent reason) when no evaluation gave a value:
        there is nothing to rank, and a NaN winner must not go on to training."""
        if not self.history or any(math.isfinite(r.value) for r in self.history):
            return
        reasons = Counter(r.error or "a non-finite value" for r in self.history)
        reason, count = reasons.most_common(1)[0]
        raise RobnasError(
            f"run {self.run}: every one of its {len(self.history)} evaluations failed, nothing to rank "
            f"({count} x {reason})"
        )

    def best(self, k: int = 1) -> list[HistoryRow]:
        """The ``k`` rows with the highest (first) objective value; ties go to the earlier step."""
        return sorted(self.history, key=lambda r: (-_score(r.value), r.step))[:k]

    def leaders(self, k: int = 10) -> list[HistoryRow]:
        """The rows to report: the Pareto front with several objectives, else the ``k`` best."""
        return self.pareto() if len(self.objectives) > 1 else self.best(k)

    def cost_summary(self) -> dict[str, Any]:
        """The cost as JSON: the objective's evaluations, each setup part, all sessions together."""
        return {
            "evaluations": dataclasses.asdict(self.evaluation_cost),
            "setup": {k: dataclasses.asdict(v) for k, v in self.setup.items()},
            "sessions": dataclasses.asdict(self.total),
        }

    def summary(self, top: int = 10) -> dict[str, Any]:
        """The run as JSON: its settings, status, :meth:`leaders` (NaN as None) and cost."""
        return {
            "strategy": self.strategy,
            "objectives": self.objectives,
            "seed": self.seed,
            "budget": self.budget,
            "evaluated": self.evaluated,
            "status": self.status,
            "best": [
                {"arch": r.arch, "values": [None if math.isnan(v) else v for v in r.all_values()], "step": r.step}
                for r in self.leaders(top)
            ],
            "cost": self.cost_summary(),
        }

    def pareto(self) -> list[HistoryRow]:
        """The non-dominated rows over all objectives (all maximised)."""
        rows = [r for r in self.history if all(math.isfinite(v) for v in r.all_values())]
        front = []
        for r in rows:
            a = np.array(r.all_values())
            dominated = any(
                np.all(np.array(o.all_values()) >= a) and np.any(np.array(o.all_values()) > a) for o in rows
            )
            if not dominated:
                front.append(r)
        return sorted(front, key=lambda r: -r.value)


def run_key(
    space: str,
    strategy: str,
    objective_keys: Sequence[str],
    seed: int,
    options: dict[str, Any],
    candidates: Sequence[str] | None,
    space_options: dict[str, Any] | None = None,
) -> str:
    """A run's identity: everything that changes its trajectory (not its budget)."""
    ident: dict[str, Any] = {
        "space": space,
        "strategy": strategy,
        "objectives": list(objective_keys),
        "seed": seed,
        "options": {k: v for k, v in sorted(options.items()) if k not in ("storage",)},
        "candidates": hashlib.blake2b("\n".join(candidates).encode(), digest_size=8).hexdigest()
        if candidates is not None
        else None,
    }
    if space_options:
        ident["space_options"] = dict(sorted(space_options.items()))
    digest = hashlib.blake2b(
        json.dumps(ident, sort_keys=True, default=str).encode(), digest_size=6
    ).hexdigest()
    return f"{strategy}-s{seed}-{digest}"


def run_search(
    space: str | SearchSpace,
    strategy: str,
    objective: str | Sequence[str],
    budget: int,
    seed: int = 0,
    out: str | Path = ":memory:",
    options: dict[str, Any] | None = None,
    context: ObjectiveContext | None = None,
    candidates: Sequence[str] | None = None,
    progress: Callable[[HistoryRow], None] | None = None,
    space_options: dict[str, Any] | None = None,
    backend: str = "process",
    workers: int = 1,
    address: str | None = None,
) -> SearchResult:
    """Search ``space`` with ``strategy`` for architectures maximising ``objective``.

    ``objective``: a spec or comma-separated specs (see :mod:`robnas.objectives`); several are
    only accepted by multi-objective strategies. ``budget``: the number of distinct
    architectures the objective may evaluate (>= 1). ``out``: the SQLite file holding the
    history (resumed when the same run is there). ``candidates``: restrict the search to these
    architectures (e.g. those a scores table or benchmark covers). ``progress(row)`` is called
    after each new evaluation is stored (``row.step`` of ``budget``). ``space_options``: the
    space's construction options when ``space`` is a name, e.g. ``{"max_params_m": None}`` to lift
    ``darts-croze``'s 6 M parameter cap; the space's effective options are part of the run's
    identity. ``backend``, ``workers``, ``address``: where batches of new candidates are
    evaluated (:func:`robnas.parallel.open_executor`; serially in this process by default); the
    values, and so the history, are the same on every backend.
    """
    if not isinstance(budget, (int, np.integer)) or isinstance(budget, bool) or budget < 1:
        raise ConfigError(f"budget must be an integer >= 1, got {budget!r}")
    check_backend(backend, workers, address)
    plan = _plan_run(space, strategy, objective, seed, out, options, context, candidates, space_options)
    with _locked_store(out) as store:
        ctx = _open_run(plan, store, int(budget), out, progress, backend, workers, address)
        status, session = _run_strategy(plan.strategy, ctx)
        return _result(plan, ctx, status, session)


@dataclass
class _RunPlan:
    """A run as settled before its store is opened: the strategy, the space (``searched``: the
    space or its candidate subset), the objectives and the run's identity (:func:`run_key`)."""

    name: str
    strategy: Strategy
    space: SearchSpace
    searched: SearchSpace
    objectives: list[Objective]
    context: ObjectiveContext
    seed: int
    options: dict[str, Any]
    key: str


def _plan_run(
    space: str | SearchSpace,
    strategy: str,
    objective: str | Sequence[str],
    seed: int,
    out: str | Path,
    options: dict[str, Any] | None,
    context: ObjectiveContext | None,
    candidates: Sequence[str] | None,
    space_options: dict[str, Any] | None,
) -> _RunPlan:
    """Make and check the strategy, the space and the objectives of a run, and name the run;
    every refusal (an unknown option, several objectives for a single-objective strategy)
    comes here, before any store is touched."""
    from robnas import spaces
    from robnas.search.subset import SubsetSpace

    options = dict(options or {})
    strat = make_strategy(strategy, options)
    # typed as the strategy holds them: `-o candidates=50` and a config's 50 are one run
    typed_options = {key: getattr(strat, key) for key in options}
    if space_options and not isinstance(space, str):
        raise ConfigError("space_options apply to a space given by name")
    base_space = spaces.get(space, **(space_options or {})) if isinstance(space, str) else space
    context = context or ObjectiveContext(seed=seed)
    objective = strat.prepare(objective, context, out)
    search_space: SearchSpace = base_space
    if candidates is not None:
        search_space = SubsetSpace(base_space, candidates)
    objs = objective_lib.make_many(objective, base_space, context)
    if len(objs) > 1 and not strat.multi_objective:
        raise ConfigError(
            f"strategy {strategy!r} is single-objective; got {len(objs)} objectives "
            f"(multi-objective: {', '.join(n for n in STRATEGIES if STRATEGIES.get(n).multi_objective)})"
        )
    run = run_key(
        base_space.name,
        strategy,
        [o.key for o in objs],
        seed,
        typed_options,
        list(search_space.members) if candidates is not None else None,
        base_space.options(),
    )
    return _RunPlan(strategy, strat, base_space, search_space, objs, context, seed, typed_options, run)


@contextlib.contextmanager
def _locked_store(out: str | Path) -> Iterator[HistoryStore]:
    """The history store ``out`` (its folder made), held for this run alone: a second search on
    the same store is refused at once."""
    if str(out) != ":memory:":
        Path(out).parent.mkdir(parents=True, exist_ok=True)
    with contextlib.closing(ExclusiveUse(out, "search store")), contextlib.closing(HistoryStore(out)) as store:
        yield store


def _open_run(
    plan: _RunPlan,
    store: HistoryStore,
    budget: int,
    out: str | Path,
    progress: Callable[[HistoryRow], None] | None,
    backend: str,
    workers: int,
    address: str | None,
) -> SearchContext:
    """Record the run in ``store`` (or raise a resumed run's budget) and give the strategy its
    context, which holds the run's history so far: a resumed run replays it for free."""
    for o in plan.objectives:
        o.attach(store)
    recorded = {k: mask_secrets(v, v) if k == "storage" else v for k, v in plan.options.items()}
    objective = ",".join(o.key for o in plan.objectives)
    store.open_run(plan.key, plan.space.name, plan.name, objective, plan.seed, recorded, budget)
    return SearchContext(
        plan.searched,
        plan.objectives,
        np.random.default_rng(plan.seed),
        plan.seed,
        budget,
        store,
        plan.key,
        plan.context,
        out=out,
        on_row=progress,
        backend=backend,
        workers=workers,
        address=address,
    )


def _run_strategy(strategy: Strategy, ctx: SearchContext) -> tuple[str, Cost]:
    """Run ``strategy`` to its end and record the session (its status and cost) in the store:
    a run stopped by any exception is recorded ``interrupted``, with the time it ran."""
    timer = objective_lib.Timer(any(o.uses_cuda for o in ctx.objectives))
    try:
        with timer:
            status = _play(strategy, ctx)
        session = timer.cost
        session.gpu = max(session.gpu, sum(r.cost.gpu for r in ctx.rows))
        ctx.store.close_run(ctx.run, session, _setup_json(ctx), status)
    except BaseException:
        elapsed = Cost(time.perf_counter() - timer.wall0, time.process_time() - timer.cpu0)
        ctx.store.close_run(ctx.run, elapsed, _setup_json(ctx), "interrupted")
        raise
    return status, session


def _play(strategy: Strategy, ctx: SearchContext) -> str:
    """``strategy.run(ctx)``, ended ``done`` (it returned, or the budget is spent) or ``exhausted``
    (it found nothing new to propose); however it ends, the workers are released and the
    objectives' setup cost is noted."""
    try:
        strategy.run(ctx)
        return "done"
    except BudgetExhausted:
        return "done"
    except SearchExhausted:
        return "exhausted"
    finally:
        ctx.close()
        for o in ctx.objectives:
            if o.setup_cost.wall:
                ctx.setup[f"objective setup ({o.key})"] = o.setup_cost


def _setup_json(ctx: SearchContext) -> dict[str, Any]:
    return {k: dataclasses.asdict(v) for k, v in ctx.setup.items()}


def _result(plan: _RunPlan, ctx: SearchContext, status: str, session: Cost) -> SearchResult:
    """The run as its store now holds it, with this session's cost and the total of all sessions."""
    record = ctx.store.run_record(plan.key)
    assert record is not None
    return SearchResult(
        plan.key,
        plan.space.name,
        plan.name,
        [o.key for o in plan.objectives],
        plan.seed,
        ctx.budget,
        status,
        ctx.store.history(plan.key),
        session,
        record.session,
        dict(ctx.setup),
    )
