"""Optuna samplers (TPE, NSGA-II) over a space's categorical choices, single or multi-objective.

TPE: Bergstra et al., NeurIPS 2011 (Optuna's ``TPESampler``, multi-objective MOTPE when
several objectives are given); NSGA-II: Deb et al., IEEE TEC 2002 (``NSGAIISampler``).

The study lives in Optuna's own storage (an RDB URL such as ``sqlite:///study.db`` or
``postgresql://USER:PASSWORD@HOST/DB``, opened with ``load_if_exists=True``), so a run resumes
from the study and several processes or machines can search one study through a shared
database: the budget is the number of distinct architectures among the study's completed
trials, over all machines. By default the study is stored in the run's SQLite file, named after
the run; processes sharing a study need the same ``study_name`` (their run names differ with
their seeds).

Several processes on one study: each trial is asked from the database, so no two processes get
the same trial, and every sampler sees every process's finished trials. A process claims the
architecture of its trial (the ``arch`` user attribute) before evaluating it; an architecture
some trial of the study has already evaluated is answered with that trial's values (user
attribute ``repeat_of``, no evaluation, nothing recorded), and one that another process is
evaluating right now is told as a failed trial (``rejected``). Each process records only what it evaluated
in its own run store, so the histories of all processes together hold each of the study's
architectures once. A running trial records a heartbeat every ``HEARTBEAT_S`` seconds; the
claims of a process killed mid-evaluation expire after ``GRACE_S`` seconds (at once when the
same run resumes).

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

import contextlib
import importlib.util
import socket
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from robnas.errors import ConfigError, InvalidArchitecture, mask_secrets
from robnas.search.base import BudgetExhausted, SearchContext, SearchExhausted, Strategy, register
from robnas.spaces.base import SearchSpace

SAMPLERS = ("tpe", "nsga2")
#: Seconds between a running trial's heartbeats, and after which a silent trial is failed.
HEARTBEAT_S = 30
GRACE_S = 120
#: Seconds to wait for a database server before giving up.
CONNECT_TIMEOUT_S = 5


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


def mask_url(url: str) -> str:
    """``url`` with its password and secret query values replaced by ``***`` (for messages)."""
    return mask_secrets(url, url)


def _one_line(text: str) -> str:
    return next((ln.strip() for ln in text.splitlines() if ln.strip()), "")


def open_storage(url: str, connect_timeout: int = CONNECT_TIMEOUT_S) -> Any:
    """Optuna's ``RDBStorage`` at ``url`` (``sqlite:///FILE``, ``postgresql://USER:PASSWORD@HOST/DB``,
    ``mysql+pymysql://...``), with heartbeats so that the trials of a killed process expire.

    A database server that does not answer within ``connect_timeout`` seconds, a refused login or
    a missing driver (``psycopg2`` for PostgreSQL) raises :class:`ConfigError` naming the URL with
    its password masked.
    """
    import optuna
    import sqlalchemy

    shown = mask_url(url)
    if url.partition("://")[2].split("?", 1)[0].count("@") > 1:
        raise ConfigError(
            f"optuna storage {shown}: the user name or password holds an '@'; percent-encode it "
            "(@ as %40, / as %2F, : as %3A)"
        )
    try:
        parsed = sqlalchemy.engine.make_url(url)
    except sqlalchemy.exc.ArgumentError:
        raise ConfigError(
            f"optuna storage {shown} is not a database URL; use sqlite:///FILE or "
            "postgresql://USER:PASSWORD@HOST:PORT/DATABASE"
        ) from None
    engine_kwargs: dict[str, Any] = {"pool_pre_ping": True}
    backend = parsed.get_backend_name()
    if parsed.drivername == "postgresql":  # no driver named: psycopg (3) where installed, else psycopg2
        driver = next((m for m in ("psycopg", "psycopg2") if importlib.util.find_spec(m)), "psycopg2")
        url = parsed.set(drivername=f"postgresql+{driver}").render_as_string(hide_password=False)
    if backend in ("postgresql", "mysql") and "connect_timeout" not in parsed.query:
        engine_kwargs["connect_args"] = {"connect_timeout": int(connect_timeout)}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(
                url, engine_kwargs=engine_kwargs, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S
            )
    except sqlalchemy.exc.ArgumentError as exc:  # an unknown dialect (bogus://...) or driver
        reason = mask_secrets(_one_line(str(exc)), url)
        raise ConfigError(
            f"optuna storage {shown}: not a database SQLAlchemy knows ({reason}); use sqlite:///FILE or "
            "postgresql://USER:PASSWORD@HOST:PORT/DATABASE"
        ) from None
    except ImportError as exc:
        missing = getattr(exc.__cause__, "name", None) or str(exc.__cause__ or exc)
        hint = "pip install 'robnas[postgres]'" if missing == "psycopg2" else f"install the package {missing}"
        raise ConfigError(
            f"optuna storage {shown}: the {backend} driver ({missing}) is not installed; {hint}"
        ) from None
    except sqlalchemy.exc.OperationalError as exc:
        reason = mask_secrets(_one_line(str(exc.orig or exc)), url)
        raise ConfigError(
            f"optuna storage {shown}: cannot connect ({reason}); start the database server or fix "
            "the URL (host, port, user, password, database)"
        ) from None
    except sqlalchemy.exc.DBAPIError as exc:  # e.g. no right to create Optuna's tables
        reason = mask_secrets(_one_line(str(exc.orig or exc)), url)
        raise ConfigError(
            f"optuna storage {shown}: the database refused Optuna's tables ({reason}); give the user "
            "the right to create tables in it, or use another database"
        ) from None


class _Heartbeat:
    """Records a running trial's heartbeat every ``HEARTBEAT_S`` seconds in a thread."""

    def __init__(self, storage: Any, trial_id: int) -> None:
        self.storage, self.trial_id = storage, trial_id
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._beat, daemon=True)

    def _beat(self) -> None:
        while not self.stop.wait(HEARTBEAT_S):  # the first beat was recorded with the claim
            with contextlib.suppress(Exception):  # a missed beat is made up by the next one
                self.storage.record_heartbeat(self.trial_id)

    def __enter__(self) -> _Heartbeat:
        if self.storage is not None:
            self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.storage is not None:
            self.stop.set()
            self.thread.join()


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
        study, rdb, owner = self._open_study(ctx)
        within_cap: dict[str, bool] = {}
        rejected = repeats = 0
        while True:
            if rdb is not None:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    optuna.storages.fail_stale_trials(study)
            done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if len({t.user_attrs.get("arch") for t in done}) >= ctx.budget:
                raise BudgetExhausted
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Heartbeat of storage")
                trial = study.ask(distributions)
            arch, reason = decode_proposal(ctx.space, trial.params, within_cap)
            other = None
            if not reason:
                key = ctx.key(arch)
                trial.set_user_attr("arch", key)
                trial.set_user_attr("owner", owner)
                if rdb is not None:
                    rdb.record_heartbeat(trial._trial_id)
                other = claimed_by(study, trial.number, key)
                if other is not None and other.state == TrialState.RUNNING:
                    if key in ctx.known:  # a stale claim of this run's own: its stored values
                        other = None
                    else:
                        reason = f"being evaluated by trial {other.number}"
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
            if other is not None:  # evaluated before (by any process): its values, no evaluation
                repeats += 1
                if repeats > ctx.max_repeats:
                    raise SearchExhausted(f"{ctx.max_repeats} proposals in a row were already evaluated")
                trial.set_user_attr("repeat_of", other.number)
                if other.state == TrialState.COMPLETE:
                    study.tell(trial, list(other.values))
                else:
                    study.tell(trial, state=TrialState.FAIL)
                continue
            repeats = 0
            try:
                with _Heartbeat(rdb, trial._trial_id):
                    values = ctx.evaluate_all(arch)
            except BaseException:
                study.tell(trial, state=TrialState.FAIL)
                raise
            _tell(study, trial, values, distributions, {"arch": key, "owner": owner})

    def _open_study(self, ctx: SearchContext) -> tuple[Any, Any, str]:
        """``(study, storage, owner)``: the run's study, created or loaded (``storage`` None: in
        memory), and the owner mark of this run's trials; trials that a killed session of this
        run left running are failed."""
        import optuna
        from optuna.trial import TrialState

        url = self.storage or (None if ctx.out == ":memory:" else f"sqlite:///{ctx.out}")
        rdb = open_storage(url) if url else None
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study = optuna.create_study(
                storage=rdb,
                study_name=self.study_name or ctx.run,
                sampler=self._sampler(ctx.seed),
                directions=["maximize"] * len(ctx.objectives),
                load_if_exists=True,
            )
        out = ctx.out if ctx.out == ":memory:" else str(Path(ctx.out).resolve())
        owner = f"{ctx.run}@{socket.gethostname()}:{out}"
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if t.user_attrs.get("owner") == owner:  # left running by a killed session of this run
                study.tell(t.number, state=TrialState.FAIL)
        return study, rdb, owner


def _tell(
    study: Any, trial: Any, values: tuple[float, ...], distributions: dict[str, Any], attrs: dict[str, Any]
) -> None:
    """Record ``trial``'s ``values`` in ``study`` (failed when one is NaN); when another process
    has failed the trial as stale meanwhile (heartbeats lost), as a new trial with ``attrs``."""
    import optuna
    from optuna.trial import TrialState

    ok = all(v == v for v in values)
    try:
        if not ok:
            trial.set_user_attr("failed", True)
        study.tell(trial, list(values) if ok else None, state=None if ok else TrialState.FAIL)
    except (optuna.exceptions.UpdateFinishedTrialError, ValueError):
        attrs = {**attrs, **({} if ok else {"failed": True})}
        study.add_trial(
            optuna.trial.create_trial(
                params=trial.params, distributions=distributions, user_attrs=attrs,
                values=list(values) if ok else None,
                state=TrialState.COMPLETE if ok else TrialState.FAIL,
            )
        )  # fmt: skip


def claimed_by(study: Any, number: int, key: str) -> Any:
    """Another trial of ``study`` that evaluated architecture ``key`` (finished first) or is
    evaluating it now; None when there is none."""
    from optuna.trial import TrialState

    found = None
    for t in study.get_trials(deepcopy=False):
        if t.number == number or t.user_attrs.get("arch") != key or "rejected" in t.user_attrs:
            continue
        if t.state == TrialState.COMPLETE or (t.state == TrialState.FAIL and t.user_attrs.get("failed")):
            return t
        if t.state == TrialState.RUNNING:
            found = t
    return found
