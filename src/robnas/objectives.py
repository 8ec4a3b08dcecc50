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
  :mod:`robnas.oneshot.objective`);
* ``predict:MODEL``: the target predicted by a few-shot predictor file (``robnas predict fit``,
  :mod:`robnas.predict`) from the candidate's proxy values (computed, or read from the scores
  table, as proxy objectives) and its architecture encoding;
* ``-SPEC``: the negation of SPEC, to minimise (``-params``, ``-ntk_condnum``).
"""

from __future__ import annotations

import csv
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from robnas.errors import ConfigError, DataError, InvalidArchitecture, ProxyError, UnknownName
from robnas.fingerprint import file_digest
from robnas.registry import Registry
from robnas.spaces.base import SearchSpace


@dataclass
class Cost:
    """Seconds spent: wall, CPU (this process), GPU (CUDA wall), and reported by a table."""

    wall: float = 0.0
    cpu: float = 0.0
    gpu: float = 0.0
    reported: float = math.nan

    def __add__(self, other: Cost) -> Cost:
        if math.isnan(self.reported):
            reported = other.reported
        elif math.isnan(other.reported):
            reported = self.reported
        else:
            reported = self.reported + other.reported
        return Cost(self.wall + other.wall, self.cpu + other.cpu, self.gpu + other.gpu, reported)


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


class _Timer:
    """Wall, CPU and (on CUDA) GPU seconds of a block."""

    def __init__(self, cuda: bool) -> None:
        self.cuda = cuda

    def _sync(self) -> None:
        if self.cuda:
            import torch

            torch.cuda.synchronize()

    def __enter__(self) -> _Timer:
        self._sync()
        self.wall0, self.cpu0 = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self._sync()
        wall = time.perf_counter() - self.wall0
        self.cost = Cost(wall, time.process_time() - self.cpu0, wall if self.cuda else 0.0)


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

    def cached(self, arch: Any) -> Evaluation | None:
        """The known evaluation of ``arch`` (this process's cache, then the memo), else None."""
        text = self.space.canonical_string(arch)
        hit = self._cache.get(text)
        if hit is None and self.memo is not None:
            hit = self.memo.get(self.key, text)
            if hit is not None:
                self._cache[text] = hit
        return hit

    def remember(self, arch: Any, evaluation: Evaluation) -> None:
        """Keep ``evaluation`` of ``arch`` (computed elsewhere, e.g. by a worker) in the cache and memo."""
        text = self.space.canonical_string(arch)
        self._cache[text] = evaluation
        if self.memo is not None:
            self.memo.put(self.key, text, evaluation)

    def measure(self, arch: Any) -> Evaluation:
        """The value of ``arch`` with its cost; a cached value keeps the cost of its first evaluation."""
        text = self.space.canonical_string(arch)
        hit = self.cached(text)
        if hit is not None:
            return hit
        error, reported = "", math.nan
        with _Timer(self.uses_cuda) as timer:
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
        self.remember(text, evaluation)
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
    ``oneshot`` their options (see :mod:`robnas.oneshot.objective`).
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
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

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


def make(spec: str, space: SearchSpace, context: ObjectiveContext | None = None) -> Objective:
    """The objective written as ``spec`` (see the module docstring for the forms)."""
    context = context or ObjectiveContext()
    spec = spec.strip()
    if not spec:
        raise ConfigError("empty objective; give a proxy name, a+b+c, bench:TARGET or train:RECIPE")
    if spec.startswith("-"):
        return Negated(make(spec[1:], space, context))
    kind, sep, arg = spec.partition(":")
    if sep:
        return OBJECTIVES.get(kind)(arg, space, context)
    if spec in OBJECTIVES:
        return OBJECTIVES.get(spec)("", space, context)
    if "+" in spec:
        return OBJECTIVES.get("ensemble")(spec, space, context)
    return OBJECTIVES.get("proxy")(spec, space, context)


def make_many(
    specs: str | Sequence[str], space: SearchSpace, context: ObjectiveContext | None = None
) -> list[Objective]:
    """Objectives from a comma-separated list (``croze,-params``) or a sequence of specs."""
    if isinstance(specs, str):
        specs = [s for s in specs.split(",") if s.strip()]
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


# ---------------------------------------------------------------------------------------
# proxies


class ProxyObjective(Objective):
    """A zero-cost proxy of the untrained network, or its value in a precomputed table.

    Computed values use the seeding of :func:`robnas.scoring.score_one` (the network is
    initialised from ``stable_seed(seed, arch)``, the proxy from ``stable_seed(seed, arch,
    proxy)``), so they equal what ``robnas score`` stores for the same seed, batch and data.
    """

    def __init__(self, name: str, space: SearchSpace, context: ObjectiveContext) -> None:
        from robnas import proxies

        self.name = name
        self.context = context
        self.table = context.table(space)
        if self.table is not None:
            if name not in self.table:
                raise ConfigError(
                    f"proxy {name!r} is not in the scores table {self.table.path} "
                    f"(it has: {', '.join(self.table.proxies)})"
                )
            key = f"proxy:{name}|table={self.table.path.name}#{file_digest(self.table.path)[:16]}"
        else:
            proxies.PROXIES.get(name)  # UnknownName with suggestions
            key = (
                f"proxy:{name}|data={context.data_id()}|bs={context.batch_size}|seed={context.seed}"
                f"|mode={context.batch_mode}{context.model_tag()}"
            )
        super().__init__(space, key)

    @property
    def uses_cuda(self) -> bool:
        return self.table is None and self.context.device.startswith("cuda")

    @property
    def local(self) -> bool:
        return self.table is not None

    def attach(self, memo: Memo | None) -> None:
        # table lookups are cheaper than a persistent cache
        self.memo = memo if self.table is None else None

    def prepare(self) -> None:
        if self.table is None:
            self.context.batch()

    def _compute(self, arch: Any) -> tuple[float, float]:
        text = self.space.format(arch)
        if self.table is not None:
            return self.table.lookup(text, self.name)
        import torch

        from robnas import proxies
        from robnas.runtime import resolve_device
        from robnas.seeding import stable_seed

        x, y, _ = self.context.batch()
        device = resolve_device(self.context.device)
        num_classes = self.context._cache["batch"][3]
        torch.manual_seed(stable_seed(self.context.seed, text))
        model = self.context.build(self.space, arch, num_classes).to(device)
        torch.manual_seed(stable_seed(self.context.seed, text, self.name))
        result = proxies.run(self.name, model, x.to(device), y.to(device))
        if result.error:
            raise ProxyError(f"{self.name}: {result.error}")
        return result.value, math.nan


class EnsembleObjective(Objective):
    """Mean percentile rank (0..1) of the member proxies within a fixed reference pool."""

    def __init__(self, names: Sequence[str], space: SearchSpace, context: ObjectiveContext) -> None:
        if len(names) < 2:
            raise ConfigError(f"a rank ensemble needs at least two proxies, got {list(names)}")
        self.members = [ProxyObjective(n, space, context) for n in names]
        table = context.table(space)
        if table is not None:
            reference = list(table.archs)
            ref_tag = f"table={table.path.name}"
        else:
            if context.reference_size < 2:
                raise ConfigError(f"reference_size must be >= 2, got {context.reference_size}")
            rng = np.random.default_rng([context.seed, 0x5EED])
            reference = sorted(
                {space.canonical_string(space.sample(rng)) for _ in range(context.reference_size)}
            )
            ref_tag = f"ref={context.reference_size}|{self.members[0].key.split('|', 1)[1]}"
        super().__init__(space, f"ensemble:{'+'.join(names)}|{ref_tag}")
        self.reference = reference
        self._sorted: list[np.ndarray] | None = None

    def attach(self, memo: Memo | None) -> None:
        self.memo = memo
        for m in self.members:
            m.attach(memo)

    @property
    def local(self) -> bool:
        return all(m.local for m in self.members)

    def prepare(self) -> None:
        for m in self.members:
            m.prepare()
        self._reference_values()

    def _reference_values(self) -> list[np.ndarray]:
        """Sorted member values over the reference pool, computed once (timed as ``setup_cost``)."""
        if self._sorted is None:
            with _Timer(self.uses_cuda) as timer:
                arrays = []
                for member in self.members:
                    values = np.array([member.measure(a).value for a in self.reference], dtype=float)
                    arr = np.sort(values[np.isfinite(values)])
                    if arr.size == 0:
                        raise ConfigError(f"{member.name} failed on the whole reference pool")
                    arrays.append(arr)
            self._sorted = arrays
            self.setup_cost = timer.cost
        return self._sorted

    def measure(self, arch: Any) -> Evaluation:
        self._reference_values()
        return super().measure(arch)

    @property
    def uses_cuda(self) -> bool:
        return any(m.uses_cuda for m in self.members)

    def _compute(self, arch: Any) -> tuple[float, float]:
        reference = self._reference_values()
        ranks, seconds = [], []
        for member, ref in zip(self.members, reference, strict=True):
            ev = member.measure(arch)
            if ev.error or not math.isfinite(ev.value):
                raise ProxyError(f"member {member.name}: {ev.error or 'NaN'}")
            below = np.searchsorted(ref, ev.value, side="left")
            upto = np.searchsorted(ref, ev.value, side="right")
            ranks.append((below + 0.5 * (upto - below)) / ref.size)
            seconds.append(ev.cost.reported)
        reported = float(np.sum(seconds)) if all(math.isfinite(s) for s in seconds) else math.nan
        return float(np.mean(ranks)), reported


# ---------------------------------------------------------------------------------------
# benchmark lookups (simulated search on NAS-Bench-201)


def robustness_target(rob: Any, arch: str | int, dataset: str, target: str) -> float:
    """The value (a fraction) of target ``target`` for ``arch`` in the robustness dataset ``rob``.

    ``target`` follows :func:`robnas.benchmarks.robustness.parse_target` (``clean``, ``fgsm@8``,
    ``hrs_fgsm@8``, ``fog@3``, ``fog``, ``cc_weather``, ``cc_mean``, ...), the names ``robnas
    correlate`` uses for the same values.
    """
    return float(rob.target(arch, dataset, target))


class BenchmarkObjective(Objective):
    """A target of a benchmark, looked up (no training, no proxy): the robustness dataset (standard
    training), NAS-RobBench-201 (adversarial training) or any :class:`~robnas.benchmarks.base.TargetBenchmark`."""

    def __init__(self, target: str, space: SearchSpace, context: ObjectiveContext) -> None:
        from robnas.benchmarks import RobustnessDataset

        self.dataset = context.dataset
        self.rob = context.robustness()
        if space.name != self.rob.space:
            raise ConfigError(f"this benchmark's objectives need the {self.rob.space} space, not {space.name!r}")
        robustness = isinstance(self.rob, RobustnessDataset)
        if robustness and self.dataset not in self.rob.datasets():
            raise DataError(
                f"{self.rob.root}: no {self.dataset!r} folder (has: {', '.join(self.rob.datasets())})"
            )
        self.target = self.rob.canonical_target(target.strip())  # fail now, not mid-search, on an unknown target
        self.values = self.rob.target_values(self.dataset, self.target)  # and on a missing epsilon or file
        # values of different benchmarks never share a key
        source = "" if robustness else f"|{type(self.rob).__name__}"
        super().__init__(space, f"bench:{self.target}|{self.dataset}{source}")
        self._by_canonical: dict[str, str] | None = None

    @property
    def local(self) -> bool:
        return True

    def attach(self, memo: Memo | None) -> None:
        self.memo = None  # a lookup is cheaper than a persistent cache

    def _listed(self, text: str) -> str:
        """An architecture of the benchmark isomorphic to ``text`` (excerpts may not list the canonical form)."""
        listed_archs = getattr(self.rob, "arch_strings", None)
        if self._by_canonical is None:
            self._by_canonical = {}
            for listed in listed_archs or []:
                self._by_canonical.setdefault(self.space.canonical_string(listed), listed)
        found = self._by_canonical.get(self.space.canonical_string(text))
        if found is None:
            raise DataError(f"{text} (or an isomorphic cell) is not in {self.rob!r}")
        return found

    def _compute(self, arch: Any) -> tuple[float, float]:
        text = self.space.format(arch)
        try:
            row = self.rob.rows([text])[0]
        except DataError:
            row = self.rob.rows([self._listed(text)])[0]
        return float(self.values[row]), math.nan


#: The training schedules of NAS-Bench-201 (epochs), as its ``hp`` argument.
NB201_EPOCHS: tuple[str, ...] = ("12", "200")
NB201_FORMS = (
    "nb201:SPLIT@EPOCHS or nb201:DATASET/SPLIT@EPOCHS with SPLIT valid or test, EPOCHS 12 or 200, "
    "DATASET cifar10-valid, cifar10, cifar100 or ImageNet16-120 (e.g. nb201:valid@12, nb201:test@200)"
)


def parse_nb201(spec: str, dataset: str = "cifar10") -> tuple[str, str, str]:
    """``(dataset, split, epochs)`` of an ``nb201:`` objective argument (see the module docstring)."""
    from robnas.benchmarks.nb201 import NB201_DATASETS, SPLIT_SET

    text = spec.strip()
    head, sep, epochs = text.rpartition("@")
    if not sep or epochs not in NB201_EPOCHS:
        raise UnknownName(f"nb201 objective {text!r}: expected {NB201_FORMS}")
    data, slash, split = head.rpartition("/")
    if not slash:
        data = dataset
        if split == "valid" and data == "cifar10":
            data = "cifar10-valid"
    if data not in NB201_DATASETS or split not in ("valid", "test"):
        raise UnknownName(f"nb201 objective {text!r}: expected {NB201_FORMS}")
    if (data, split) not in SPLIT_SET:
        known = ", ".join(f"{d}/{s}" for d, s in SPLIT_SET)
        raise UnknownName(f"nb201 objective {text!r}: NAS-Bench-201 has no {data}/{split} (it has: {known})")
    return data, split, epochs


class NB201Objective(Objective):
    """A NAS-Bench-201 accuracy (percent, mean over the benchmark's seeds), looked up by architecture.

    Every NAS-Bench-201 string was trained on its own, so the value is that of the canonical
    string of the architecture (isomorphic cells share it, as every objective caches per
    canonical form).
    """

    def __init__(self, spec: str, space: SearchSpace, context: ObjectiveContext) -> None:
        if space.name != "nb201":
            raise ConfigError(f"nb201 objectives need the nb201 space, not {space.name!r}")
        self.dataset, self.split, self.epochs = parse_nb201(spec, context.dataset)
        self.table = context.nb201_table()
        # fail now, not mid-search, when the table lacks this (dataset, split, epochs)
        self.table.accuracy(self.dataset, self.split, self.epochs, indices=[0])
        source = Path(str(self.table.source)).name
        super().__init__(space, f"nb201:{self.dataset}/{self.split}@{self.epochs}|{source}")

    @property
    def local(self) -> bool:
        return True

    def attach(self, memo: Memo | None) -> None:
        self.memo = None  # a lookup is cheaper than a persistent cache

    def _compute(self, arch: Any) -> tuple[float, float]:
        index = self.table.index_of(self.space.format(arch))
        values = self.table.accuracy(self.dataset, self.split, self.epochs, indices=[index])
        return float(values[0]), math.nan


class TrainingObjective(Objective):
    """Validation accuracy after a short training with a :mod:`robnas.train` recipe.

    ``context.train`` options: ``epochs`` (default 1), ``metric`` (``clean``, or ``robust``:
    the recipe's PGD validation accuracy, adversarial recipes only), ``batch_size``,
    ``val_fraction`` (default 0.1). The network is initialised from ``stable_seed(seed, arch)``;
    the value is the last epoch's validation accuracy (fraction) on ``context.data``.
    """

    def __init__(self, recipe: str, space: SearchSpace, context: ObjectiveContext) -> None:
        from robnas import train

        self.recipe = train.get(recipe.strip())
        self.context = context
        opts = dict(context.train)
        self.epochs = int(opts.get("epochs", 1))
        self.metric = str(opts.get("metric", "clean"))
        self.batch_size = opts.get("batch_size")
        self.val_fraction = float(opts.get("val_fraction", 0.1))
        if self.epochs < 1:
            raise ConfigError(f"training objectives need epochs >= 1, got {self.epochs}")
        if self.metric not in ("clean", "robust"):
            raise ConfigError(f"training objective metric must be clean or robust, got {self.metric!r}")
        if self.metric == "robust" and not self.recipe.adversarial:
            raise ConfigError(
                f"recipe {self.recipe.name!r} is not adversarial; it has no robust validation accuracy"
            )
        super().__init__(
            space,
            f"train:{self.recipe.name}|epochs={self.epochs}|{self.metric}|data={context.data_id()}|seed={context.seed}"
            f"|bs={self.batch_size}|val={self.val_fraction}{context.model_tag()}",
        )

    @property
    def uses_cuda(self) -> bool:
        from robnas.runtime import resolve_device

        return resolve_device(self.context.device).type == "cuda"

    def prepare(self) -> None:
        self.context.images()

    def _compute(self, arch: Any) -> tuple[float, float]:
        import tempfile

        import torch

        from robnas import train
        from robnas.seeding import stable_seed

        images = self.context.images()
        text = self.space.format(arch)
        torch.manual_seed(stable_seed(self.context.seed, text))
        model = self.context.build(self.space, arch, images.num_classes)
        with tempfile.TemporaryDirectory(prefix="robnas-train-objective-") as out:
            result = train.fit(
                model,
                images,
                self.recipe,
                out,
                epochs=self.epochs,
                batch_size=self.batch_size,
                seed=self.context.seed,
                val_fraction=self.val_fraction,
                device=self.context.device,
            )
        last = result.history[-1]
        return float(last["val_clean_acc" if self.metric == "clean" else "val_robust_acc"]), math.nan


OBJECTIVES.register("proxy", lambda arg, space, ctx: ProxyObjective(arg, space, ctx), kind="proxy")
OBJECTIVES.register(
    "ensemble", lambda arg, space, ctx: EnsembleObjective([a.strip() for a in arg.split("+")], space, ctx)
)
OBJECTIVES.register("bench", lambda arg, space, ctx: BenchmarkObjective(arg, space, ctx))
OBJECTIVES.register("nb201", lambda arg, space, ctx: NB201Objective(arg, space, ctx))
OBJECTIVES.register("train", lambda arg, space, ctx: TrainingObjective(arg, space, ctx))


def _oneshot(arg: str, space: SearchSpace, ctx: ObjectiveContext) -> Objective:
    from robnas.oneshot.objective import OneShotObjective

    return OneShotObjective(arg, space, ctx)


def _oneshot_finetune(arg: str, space: SearchSpace, ctx: ObjectiveContext) -> Objective:
    from robnas.oneshot.objective import FinetuneObjective

    return FinetuneObjective(arg, space, ctx)


def _predict(arg: str, space: SearchSpace, ctx: ObjectiveContext) -> Objective:
    from robnas.predict.objective import PredictObjective

    return PredictObjective(arg, space, ctx)


OBJECTIVES.register("predict", _predict, paper="few-shot predictor of robnas.predict (LightGBM)")
OBJECTIVES.register("oneshot", _oneshot, paper="RobNets (Guo et al., CVPR 2020), inherited weights")
OBJECTIVES.register(
    "oneshot-finetune", _oneshot_finetune, paper="RobNets (Guo et al., CVPR 2020), fine-tuned candidates"
)

__all__ = [
    "OBJECTIVES",
    "BenchmarkObjective",
    "Cost",
    "EnsembleObjective",
    "Evaluation",
    "NB201Objective",
    "Negated",
    "Objective",
    "ObjectiveContext",
    "ProxyObjective",
    "ScoreTable",
    "TrainingObjective",
    "make",
    "make_many",
    "parse_nb201",
    "robustness_target",
]
