"""Search objectives: what a search strategy maximises, with the cost of every evaluation.

An :class:`Objective` maps an architecture to one float, HIGHER is better, and records what
each evaluation cost: wall seconds (``time.perf_counter``), CPU seconds of this process
(``time.process_time``), GPU seconds (the synchronised wall time of evaluations run on a CUDA
device; 0 on CPU) and, for values read from a precomputed table, the seconds the table says
the value took to compute (``reported``; NaN when the table has none). Results are cached per
canonical architecture (isomorphic NAS-Bench-201 cells are evaluated once).

Objectives are made from a spec string by :func:`make` (kinds live in :data:`OBJECTIVES`):

* ``croze``: a registered proxy (:mod:`robnas.proxies`), computed on a proxy batch, or read
  from a precomputed scores table when the context has one;
* ``croze+synflow+nwot``: a rank ensemble, the mean over members of the architecture's
  percentile rank (0..1) within a fixed reference pool: the architectures of the scores table
  when there is one, else ``reference_size`` architectures sampled with the context's seed
  (scored once; their cost is the objective's ``setup_cost``). A fixed pool keeps an
  architecture's value the same whenever it is evaluated, which ranks within a growing search
  history would not;
* ``bench:fgsm@8``: a lookup in the benchmark ``context.benchmark`` (``NAME:PATH`` or the
  robustness dataset folder), for simulated search, by the benchmark's target names (the same
  names, with the same values, as ``robnas correlate``). The NAS-Bench-201 robustness dataset
  (Jung et al., ICLR 2023, standard training): ``clean``, ``ATTACK@EPS`` (eps in 1/255),
  ``hrs_ATTACK@EPS``, ``CORRUPTION@SEVERITY``, ``CORRUPTION`` (mean over severities),
  ``cc_GROUP`` (mean accuracy over a corruption group) or ``cc_mean`` (mean accuracy over the
  15 corruptions x 5 severities). NAS-RobBench-201 (``nas-robbench-201:DIR``, Wu et al., ICLR
  2024, after PGD adversarial training): ``clean``, ``fgsm@3``, ``pgd@3``, ``fgsm@8``, ``pgd@8``,
  ``aa@8``;
* ``nb201:SPLIT@EPOCHS`` or ``nb201:DATASET/SPLIT@EPOCHS``: a NAS-Bench-201 accuracy (percent)
  looked up in the table of ``context.nb201`` (a CSV, a NATS-Bench folder or a ``.pth``, see
  :mod:`robnas.benchmarks.nb201`): SPLIT ``valid`` or ``test``, EPOCHS ``12`` or ``200`` (the
  benchmark's two training schedules), DATASET ``cifar10-valid``, ``cifar10``, ``cifar100`` or
  ``ImageNet16-120`` (default: the context's dataset; ``valid`` of ``cifar10`` is read from
  ``cifar10-valid``, the only CIFAR-10 training with a held-out validation set). HNAS's own
  BO target is ``nb201:valid@12`` = ``nb201:cifar10-valid/valid@12``; ``nb201:test@200`` is the
  200-epoch CIFAR-10 test accuracy that NAS-Bench-201 papers report;
* ``train:RECIPE``: short training with a :mod:`robnas.train` recipe, validation accuracy;
* ``oneshot:TARGET``: accuracy (``clean``, ``fgsm@8``, ``pgd@8``) of the architecture with
  weights inherited from the trained supernet ``context.supernet``, BN recalibrated;
  ``oneshot-finetune:TARGET`` after a short PGD-AT fine-tuning (RobNets' score, see
  :mod:`robnas.oneshot.robnets.objective`);
* ``predict:MODEL``: the target predicted by a few-shot predictor file (``robnas predict fit``,
  :mod:`robnas.predict`) from the candidate's proxy values (computed, or read from the scores
  table, as proxy objectives) and its architecture encoding;
* ``-SPEC``: the negation of SPEC, to minimise (``-params``, ``-ntk_condnum``).
"""

from __future__ import annotations

import csv
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from robnas.cost import Cost, Timer
from robnas.errors import ConfigError, DataError, InvalidArchitecture, ProxyError
from robnas.registry import Registry
from robnas.spaces.base import SearchSpace
from robnas.targets import split_specs


@dataclass
class Evaluation:
    """One objective value (NaN on failure, with the reason) and its cost."""

    value: float
    cost: Cost = field(default_factory=Cost)
    error: str = ""


class Memo(Protocol):
    """A persistent ``(objective key, canonical arch) -> Evaluation`` cache (see robnas.search.history)."""

    def get(self, key: str, arch: str) -> Evaluation | None: ...

    def put(self, key: str, arch: str, evaluation: Evaluation) -> None: ...


class Objective(ABC):
    """An architecture -> float map to maximise, cached per canonical architecture.

    ``key`` names the objective and everything its values depend on (data, seed, table), so a
    persistent memo never mixes values of different settings.
    """

    def __init__(self, space: SearchSpace, key: str) -> None:
        self.space = space
        self.key = key
        self.memo: Memo | None = None
        self.setup_cost = Cost()
        self._cache: dict[str, Evaluation] = {}

    def __repr__(self) -> str:
        return f"<objective {self.key}>"

    @property
    def uses_cuda(self) -> bool:
        return False

    @property
    def local(self) -> bool:
        """A lookup (table, benchmark): computed where it is asked, never sent to a worker."""
        return False

    def attach(self, memo: Memo | None) -> None:
        """Use ``memo`` as a persistent cache (values survive the process)."""
        self.memo = memo

    def prepare(self) -> None:
        """Compute what every evaluation shares (the proxy batch, a reference pool) before the
        objective is sent to workers, so that they receive it instead of computing it again."""
        return None

    def __getstate__(self) -> dict[str, Any]:
        # a copy sent to a worker computes; only the process that owns the memo stores
        state = dict(self.__dict__)
        state["memo"] = None
        state["_cache"] = {}
        return state

    def evaluate(self, arch: Any) -> float:
        """The value of ``arch`` (an architecture or its text); higher is better, NaN on failure."""
        return self.measure(arch).value

    def canonical(self, arch: Any, canonical: bool = False) -> str:
        """The canonical text of ``arch`` (an architecture or its text); ``canonical=True``:
        ``arch`` already is one (a search's key), taken as it is."""
        return arch if canonical and isinstance(arch, str) else self.space.canonical_string(arch)

    def cached(self, arch: Any, canonical: bool = False) -> Evaluation | None:
        """The known evaluation of ``arch`` (this process's cache, then the memo), else None."""
        text = self.canonical(arch, canonical)
        hit = self._cache.get(text)
        if hit is None and self.memo is not None:
            hit = self.memo.get(self.key, text)
            if hit is not None:
                self._cache[text] = hit
        return hit

    def remember(self, arch: Any, evaluation: Evaluation, canonical: bool = False) -> None:
        """Keep ``evaluation`` of ``arch`` (computed elsewhere, e.g. by a worker) in the cache and memo."""
        text = self.canonical(arch, canonical)
        self._cache[text] = evaluation
        if self.memo is not None:
            self.memo.put(self.key, text, evaluation)

    def measure(self, arch: Any, canonical: bool = False) -> Evaluation:
        """The value of ``arch`` with its cost; a cached value keeps the cost of its first evaluation.
        The architecture is made canonical here, once (``canonical=True``: it already is)."""
        text = self.canonical(arch, canonical)
        hit = self.cached(text, canonical=True)
        if hit is not None:
            return hit
        error, reported = "", math.nan
        with Timer(self.uses_cuda) as timer:
            try:
                value, reported = self._compute(self.space.parse(text))
                value = float(value)
                if not math.isfinite(value):
                    error = error or f"{self.key} gave a non-finite value ({value})"
            except (DataError, InvalidArchitecture, ProxyError) as exc:
                value, error = math.nan, f"{type(exc).__name__}: {exc}"
        if not math.isfinite(value):
            value = math.nan
        cost = timer.cost
        cost.reported = reported
        evaluation = Evaluation(value, cost, error)
        self.remember(text, evaluation, canonical=True)
        return evaluation

    @abstractmethod
    def _compute(self, arch: Any) -> tuple[float, float]:
        """``(value, reported seconds or NaN)`` of a canonical architecture; may raise DataError."""


# ---------------------------------------------------------------------------------------
# precomputed proxy scores


class ScoreTable:
    """Precomputed proxy values from a CSV, keyed by canonical architecture.

    Two layouts are read: long (``arch,proxy,value[,seconds]``, as ``robnas score --csv``
    writes) and wide (an ``arch``, ``arch_str`` or ``net_str`` column plus one numeric column
    per proxy, as NAS-Bench-Suite-Zero's tables; a ``<proxy>_s`` column gives its seconds). Isomorphic architectures share a canonical
    key: an architecture's own row is used when present, otherwise the mean over the
    isomorphic rows present (and the mean of their seconds).
    """

    def __init__(self, path: str | Path, space: SearchSpace) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise DataError(
                f"{self.path}: scores table not found (expected a CSV arch,proxy,value[,seconds])"
            )
        self.space = space
        exact: dict[tuple[str, str], tuple[float, float]] = {}
        try:
            with self.path.open(newline="") as fh:
                reader = csv.DictReader(fh)
                columns = reader.fieldnames or []
                if {"arch", "proxy", "value"} <= set(columns):
                    for row in reader:
                        exact[(row["arch"].strip(), row["proxy"].strip())] = (
                            _number(row["value"]),
                            _number(row.get("seconds", "")),
                        )
                else:
                    arch_col = next((c for c in ("arch", "arch_str", "net_str") if c in columns), None)
                    if arch_col is None:
                        raise DataError(
                            f"{self.path}: no arch column; expected columns arch,proxy,value[,seconds] "
                            "or an arch/arch_str/net_str column plus one column per proxy"
                        )
                    rows = list(reader)
                    numeric = [c for c in columns if c != arch_col and _numeric_column(rows, c)]
                    timed = {c for c in numeric if c + "_s" in numeric}
                    proxies = [c for c in numeric if not (c.endswith("_s") and c[:-2] in timed)]
                    for row in rows:
                        for c in proxies:
                            seconds = _number(row[c + "_s"]) if c in timed else math.nan
                            exact[(row[arch_col].strip(), c)] = (_number(row[c]), seconds)
        except (UnicodeDecodeError, csv.Error) as exc:
            raise DataError(f"{self.path}: unreadable CSV ({exc})") from None
        if not exact:
            raise DataError(f"{self.path}: no scores in the table")
        self.proxies: list[str] = sorted({p for _, p in exact})
        own: dict[tuple[str, str], tuple[float, float]] = {}
        groups: dict[tuple[str, str], list[tuple[float, float]]] = {}
        bad = 0
        keys: dict[str, tuple[str, bool] | None] = {}
        for (text, proxy), vs in exact.items():
            if text not in keys:
                try:
                    arch = space.parse(text)
                    canon = space.format(space.canonical(arch))
                    keys[text] = (canon, space.format(arch) == canon)
                except InvalidArchitecture:
                    keys[text] = None
                    bad += 1
            found = keys[text]
            if found is None:
                continue
            key, is_own = found
            if is_own:
                own[(key, proxy)] = vs
            groups.setdefault((key, proxy), []).append(vs)
        if not groups:
            raise DataError(f"{self.path}: no valid {space.name} architecture strings ({bad} invalid)")
        self._values: dict[tuple[str, str], tuple[float, float]] = {}
        for k, items in groups.items():
            if k in own:
                self._values[k] = own[k]
            else:
                vals = np.array([v for v, _ in items], dtype=float)
                secs = np.array([s for _, s in items], dtype=float)
                finite = vals[np.isfinite(vals)]
                self._values[k] = (
                    float(finite.mean()) if finite.size else math.nan,
                    float(np.nanmean(secs)) if np.isfinite(secs).any() else math.nan,
                )
        self.archs: list[str] = sorted({a for a, _ in self._values})
        #: whether the table reports the seconds each value took
        self.has_seconds = any(math.isfinite(sec) for _, sec in self._values.values())

    def __contains__(self, proxy: object) -> bool:
        return proxy in self.proxies

    def lookup(self, arch: str, proxy: str) -> tuple[float, float]:
        """``(value, seconds)`` of a canonical architecture string; DataError when absent."""
        found = self._values.get((arch, proxy))
        if found is None:
            raise DataError(f"{arch} has no {proxy} value in {self.path}")
        return found

    def values(self, proxy: str) -> dict[str, float]:
        """Every canonical architecture's value of ``proxy``."""
        return {a: v for (a, p), (v, _) in self._values.items() if p == proxy}


def _number(text: str | None) -> float:
    try:
        return float(text) if text not in (None, "") else math.nan
    except ValueError:
        return math.nan


def _numeric_column(rows: list[dict[str, str]], column: str) -> bool:
    for row in rows[:20]:
        text = row.get(column, "")
        if text in ("", None):
            continue
        try:
            float(text)
        except ValueError:
            return False
    return True


# ---------------------------------------------------------------------------------------
# the context objectives are made in


@dataclass
class ObjectiveContext:
    """What objectives may need: proxy data, a scores table, a benchmark, training settings.

    ``data`` is a :func:`robnas.data.load` spec (``PATH.npz``, ``cifar10:ROOT``,
    ``synthetic[:N]``) loaded on first use; ``scores`` a precomputed table (CSV path) that
    proxy objectives read instead of computing; ``benchmark`` the benchmark of ``bench:``
    objectives, ``NAME:PATH`` (``nas-robbench-201:DIR``) or the robustness dataset folder;
    ``nb201`` a NAS-Bench-201 table for ``nb201:`` objectives; ``model`` the network build
    options of the space (e.g. ``{"C": 16, "layers": 8}`` for a
    DARTS network smaller than the default ``C=36``, 20 cells), used by proxy and training
    objectives alike. ``supernet`` is a trained supernet checkpoint for ``oneshot:`` objectives,
    ``oneshot`` their options (see :mod:`robnas.oneshot.robnets.objective`).
    """

    data: str = "synthetic"
    batch_size: int = 64
    seed: int = 0
    device: str = "cpu"
    batch_mode: str = "random"
    scores: str | None = None
    benchmark: str | None = None
    nb201: str | None = None
    dataset: str = "cifar10"
    reference_size: int = 64
    train: dict[str, Any] = field(default_factory=dict)
    model: dict[str, Any] = field(default_factory=dict)
    supernet: str | None = None
    oneshot: dict[str, Any] = field(default_factory=dict)
    _cache: dict[str, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    def shared(self, key: str, make: Callable[[], Any]) -> Any:
        """What ``make()`` returns, made once per context and kept under ``key`` (a supernet, a
        table): what every objective of this context shares. A copy sent to a worker keeps it,
        except the benchmark tables (only local lookups read them)."""
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    def forget(self, key: str) -> None:
        """Drop what :meth:`shared` keeps under ``key`` (the next call makes it again)."""
        self._cache.pop(key, None)

    def build(self, space: SearchSpace, arch: Any, num_classes: int) -> Any:
        """The untrained network of ``arch`` with this context's build options."""
        try:
            return space.build(arch, num_classes=num_classes, **self.model)
        except (TypeError, ConfigError) as exc:  # an option this space's build does not take
            raise ConfigError(f"network build options {self.model} for space {space.name!r}: {exc}") from None

    def __getstate__(self) -> dict[str, Any]:
        # copies sent to workers leave the benchmark tables behind: only local lookups read them
        state = dict(self.__dict__)
        state["_cache"] = {k: v for k, v in self._cache.items() if k not in ("robustness", "nb201")}
        return state

    def model_tag(self) -> str:
        """``|model=C=16,layers=8`` for non-default build options, else empty (keys stay stable)."""
        if not self.model:
            return ""
        return "|model=" + ",".join(f"{k}={v}" for k, v in sorted(self.model.items()))

    def data_id(self) -> str:
        """``--data`` as part of an objective's key: the spec and its images' fingerprint."""
        return f"{self.data}#{self.images().digest()}"

    def table(self, space: SearchSpace) -> ScoreTable | None:
        if self.scores is None:
            return None
        if "table" not in self._cache:
            self._cache["table"] = ScoreTable(self.scores, space)
        return self._cache["table"]

    def images(self) -> Any:
        if "images" not in self._cache:
            from robnas import data as data_lib

            self._cache["images"] = data_lib.load(self.data, "train")
        return self._cache["images"]

    def batch(self) -> tuple[Any, Any, str]:
        """The proxy batch (drawn once from ``seed``) and a tag naming the data it came from."""
        if "batch" not in self._cache:
            from robnas.data import proxy_batch

            images = self.images()
            x, y = proxy_batch(images, self.batch_size, seed=self.seed, mode=self.batch_mode)
            tag = f"{images.name}:{len(images)}:{images.digest()}:{self.batch_mode}:bs{self.batch_size}:seed{self.seed}"
            self._cache["batch"] = (x, y, tag, images.num_classes)
        x, y, tag, _ = self._cache["batch"]
        return x, y, tag

    def robustness(self) -> Any:
        """The target benchmark of ``benchmark`` (opened once): ``NAME:PATH`` or a robustness dataset folder."""
        if "robustness" not in self._cache:
            if self.benchmark is None:
                raise ConfigError(
                    "benchmark objectives need a benchmark: --benchmark NAME:PATH (nas-robbench-201:DIR) "
                    "or the robustness dataset folder"
                )
            from robnas import benchmarks

            bench = benchmarks.from_spec(self.benchmark)
            if isinstance(bench, benchmarks.RobustnessDataset) and not (bench.root / "meta.json").is_file():
                raise DataError(
                    f"{bench.root}: no meta.json; --benchmark must be the robustness dataset folder "
                    "(https://github.com/steffen-jung/robustness-dataset) or NAME:PATH with NAME one of "
                    f"{', '.join(benchmarks.target_benchmarks())}"
                )
            self._cache["robustness"] = bench
        return self._cache["robustness"]

    def nb201_table(self) -> Any:
        """The NAS-Bench-201 table of ``nb201`` (opened once)."""
        if "nb201" not in self._cache:
            if self.nb201 is None:
                raise ConfigError(
                    "nb201: objectives need a NAS-Bench-201 table (a CSV such as nb201_merged_by_index.csv, "
                    "a NATS-Bench topology folder or a NAS-Bench-201 .pth)"
                )
            from robnas import benchmarks

            self._cache["nb201"] = benchmarks.open("nb201", self.nb201)
        return self._cache["nb201"]


ObjectiveFactory = Callable[[str, SearchSpace, ObjectiveContext], Objective]
OBJECTIVES: Registry[ObjectiveFactory] = Registry("objective")


def parse_spec(spec: str) -> tuple[str, str]:
    """``(kind, argument)`` of one objective spec without its ``-``: ``bench:fgsm@8`` ->
    ``("bench", "fgsm@8")``, ``croze`` -> ``("proxy", "croze")``, ``a+b`` -> ``("ensemble", "a+b")``."""
    kind, sep, arg = spec.strip().partition(":")
    if sep:
        return kind, arg
    if kind in OBJECTIVES:
        return kind, ""
    return ("ensemble" if "+" in kind else "proxy"), kind


def make(spec: str, space: SearchSpace, context: ObjectiveContext | None = None) -> Objective:
    """The objective written as ``spec`` (see the module docstring for the forms)."""
    context = context or ObjectiveContext()
    spec = spec.strip()
    if not spec:
        raise ConfigError("empty objective; give a proxy name, a+b+c, bench:TARGET or train:RECIPE")
    if spec.startswith("-"):
        return Negated(make(spec[1:], space, context))
    kind, arg = parse_spec(spec)
    return OBJECTIVES.get(kind)(arg, space, context)


def split(specs: str | Sequence[str]) -> list[str]:
    """The specs of a comma-separated list (``croze,-params``, ``oneshot:pgd@8:steps=20,params``)."""
    if isinstance(specs, str):
        return split_specs(specs)
    return [s.strip() for s in specs if s.strip()]


def needs_data(specs: str | Sequence[str], has_scores: bool = False) -> list[str]:
    """The parts of ``specs`` whose values depend on the images of the context's ``data``
    (each kind says which, through its ``needs_data(argument, has_scores)`` registration;
    ``has_scores``: proxy values are read from a scores table). Unknown names are left to
    :func:`make`, whose error has suggestions."""
    out: list[str] = []
    for spec in split(specs):
        kind, arg = parse_spec(spec.lstrip("-"))
        if kind not in OBJECTIVES:
            continue
        rule = OBJECTIVES.meta(kind).get("needs_data")
        if rule is not None:
            out += rule(arg, has_scores)
    return list(dict.fromkeys(out))


def make_many(
    specs: str | Sequence[str], space: SearchSpace, context: ObjectiveContext | None = None
) -> list[Objective]:
    """Objectives from a comma-separated list (``croze,-params``) or a sequence of specs."""
    specs = split(specs)
    if not specs:
        raise ConfigError("no objective given")
    return [make(s, space, context) for s in specs]


class Negated(Objective):
    """``-inner``: maximising it minimises ``inner``."""

    def __init__(self, inner: Objective) -> None:
        super().__init__(inner.space, "-" + inner.key)
        self.inner = inner
        self.setup_cost = inner.setup_cost

    @property
    def uses_cuda(self) -> bool:
        return self.inner.uses_cuda

    @property
    def local(self) -> bool:
        return self.inner.local

    def attach(self, memo: Memo | None) -> None:
        self.memo = memo
        self.inner.attach(memo)

    def prepare(self) -> None:
        self.inner.prepare()

    def _compute(self, arch: Any) -> tuple[float, float]:
        ev = self.inner.measure(arch)
        if ev.error:
            raise ProxyError(ev.error)
        return -ev.value, ev.cost.reported


__all__ = [
    "OBJECTIVES",
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
