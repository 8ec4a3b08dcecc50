"""The settings of one search, written once: :class:`SearchConfig`.

``robnas search`` fills one from its options, the pipeline from its ``[search]`` table
(:meth:`SearchConfig.from_mapping`, which also names the keys a table may hold); both then call
:meth:`SearchConfig.run`. Defaults live here only.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from robnas.errors import ConfigError
from robnas.objectives import ObjectiveContext

if TYPE_CHECKING:
    from robnas.search.base import SearchResult
    from robnas.search.history import HistoryRow


@dataclass
class SearchConfig:
    """What :func:`robnas.search.base.run_search` and the objectives' context need.

    ``objective``: None means the strategy's default objective (else ``croze``). ``options``:
    strategy options (text values are converted by the strategy). ``model``: network build
    options while searching. ``max_params_m``: the space's parameter cap (absent: the space's
    default; None: no cap). ``within_scores``: search only the architectures of ``scores``.
    """

    space: str = "nb201"
    strategy: str = "evolution"
    objective: str | None = None
    budget: int = 100
    seed: int = 0
    options: dict[str, Any] = field(default_factory=dict)
    data: str = "synthetic"
    batch_size: int = 64
    batch_mode: str = "random"
    device: str = "cpu"
    scores: str | None = None
    within_scores: bool = False
    benchmark: str | None = None
    dataset: str = "cifar10"
    nb201: str | None = None
    reference_size: int = 64
    train_epochs: int = 1
    train_metric: str = "clean"
    model: dict[str, Any] = field(default_factory=dict)
    max_params_m: float | str | None = "default"
    supernet: str | None = None
    workers: int = 1
    backend: str = "process"
    address: str | None = None

    @classmethod
    def keys(cls) -> set[str]:
        """The names a config table may set."""
        return {f.name for f in dataclasses.fields(cls)}

    @classmethod
    def from_mapping(cls, table: Mapping[str, Any], where: str = "[search]") -> SearchConfig:
        """A config from a mapping (a TOML table); unknown keys and ill-typed values raise one
        :class:`ConfigError` naming ``where``."""
        unknown = set(table) - cls.keys()
        if unknown:
            raise ConfigError(f"unknown keys {sorted(unknown)} in {where} (known: {sorted(cls.keys())})")
        values = dict(table)
        for key in ("budget", "seed", "batch_size", "reference_size", "train_epochs", "workers"):
            if key in values:
                values[key] = _integer(where, key, values[key])
        for key in ("options", "model"):
            if key in values and not isinstance(values[key], Mapping):
                raise ConfigError(f"{where} {key} must be a table, e.g. {{ C = 16, layers = 8 }}")
            if key in values:
                values[key] = dict(values[key])
        return cls(**values)

    def resolved_objective(self) -> str:
        """The objective spec: the given one, else the strategy's default (``croze`` where it
        names none); an unknown strategy raises :class:`robnas.errors.UnknownName`."""
        if self.objective is not None:
            return self.objective
        from robnas.search.base import STRATEGIES

        return str(STRATEGIES.meta(self.strategy).get("default_objective", "croze"))

    def needs_data(self) -> list[str]:
        """What in this search depends on the images of ``data`` (:func:`needs_data`)."""
        return needs_data(self.strategy, self.objective, has_scores=self.scores is not None)

    def context(self) -> ObjectiveContext:
        """The objectives' context of this search."""
        return ObjectiveContext(
            data=self.data,
            batch_size=self.batch_size,
            seed=self.seed,
            device=self.device,
            batch_mode=self.batch_mode,
            scores=None if self.scores is None else str(self.scores),
            benchmark=None if self.benchmark is None else str(self.benchmark),
            nb201=None if self.nb201 is None else str(self.nb201),
            dataset=self.dataset,
            reference_size=self.reference_size,
            train={"epochs": self.train_epochs, "metric": self.train_metric},
            model=dict(self.model),
            supernet=None if self.supernet is None else str(self.supernet),
        )

    def space_options(self) -> dict[str, Any]:
        """The space's construction options (the parameter cap when one is set)."""
        cap = self.max_params_m
        if isinstance(cap, str):
            if cap.lower() == "default":
                return {}
            if cap.lower() != "none":
                raise ConfigError(f"max_params_m {cap!r}: expected a number of millions, 'none' or 'default'")
            cap = None
        return {"max_params_m": cap}

    def run(
        self,
        out: str | Path = ":memory:",
        progress: Callable[[HistoryRow], None] | None = None,
        context: ObjectiveContext | None = None,
    ) -> SearchResult:
        """Run (or resume) this search into the history store ``out``."""
        from robnas.search.base import run_search
        from robnas.spaces import get as get_space

        context = context or self.context()
        candidates = None
        if self.within_scores:
            table = context.table(get_space(self.space))
            if table is None:
                raise ConfigError("within_scores (--within-scores) needs a scores table (--scores CSV)")
            candidates = table.archs
        return run_search(
            self.space,
            self.strategy,
            self.resolved_objective(),
            self.budget,
            seed=self.seed,
            out=out,
            options=dict(self.options),
            context=context,
            candidates=candidates,
            progress=progress,
            space_options=self.space_options(),
            backend=self.backend,
            workers=self.workers,
            address=self.address,
        )


def needs_data(strategy: str, objective: str | None, has_scores: bool = False) -> list[str]:
    """The parts of a search that depend on the images it is given: those of ``objective``
    (:func:`robnas.objectives.needs_data`; None: the strategy's default objective) and a strategy
    registered with ``needs_data`` (``strategy NAME``). An unknown strategy given without an
    objective raises :class:`robnas.errors.UnknownName`."""
    from robnas import objectives
    from robnas.search.base import STRATEGIES

    if objective is None:
        objective = str(STRATEGIES.meta(strategy).get("default_objective", "croze"))
    needing = objectives.needs_data(objective, has_scores)
    if strategy in STRATEGIES and STRATEGIES.meta(strategy).get("needs_data"):
        needing.append(f"strategy {strategy}")
    return needing


def _integer(where: str, key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ConfigError(f"{where} {key} must be an integer, got {value!r}")
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"{where} {key} must be an integer, got {value!r}") from None


__all__ = ["SearchConfig", "needs_data"]
