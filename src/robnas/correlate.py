"""Rank agreement between proxy scores and a target benchmark.

The benchmark is any :class:`~robnas.benchmarks.base.TargetBenchmark` (``robnas.benchmarks.from_spec``
opens ``NAME:PATH``): the robustness dataset of Jung et al. (ICLR 2023, standard training;
``robustness:DIR`` or a bare ``DIR``), NAS-RobBench-201 (Wu et al., ICLR 2024, adversarial training;
``nas-robbench-201:DIR``, targets ``clean``, ``fgsm@3``, ``pgd@3``, ``fgsm@8``, ``pgd@8``,
``aa@8``), or another registered reader; each answers its own target names. For the robustness
dataset, targets are the per-architecture values of :mod:`robnas.benchmarks.robustness` (its
:func:`~robnas.benchmarks.robustness.parse_target` grammar, the same names as the ``bench:``
search objectives): ``clean``, ``fgsm@8`` (attack at eps in 1/255), ``hrs_fgsm@8``, ``fog@3``,
``fog`` (severity mean), ``cc_weather`` (mean accuracy over a corruption group), ``cc_mean``
(mean accuracy over the 15 corruptions x 5 severities). A proxy's statistic against a target
is computed against that one value per architecture.

Averaged statistics (correlate only; not targets, since no single accuracy stands behind them):

* ``croze_weather`` (snow, fog, frost), ``croze_noise`` (gaussian, shot, impulse noise),
  ``croze_blur`` (defocus, glass, motion, zoom blur), ``croze_digital`` (contrast, brightness,
  jpeg_compression): as CRoZe's ``corr.py`` computes them, the statistic against every
  severity of every corruption of the group (``fog@1`` ... ``frost@5``), averaged over the 5
  severities and then over the group's corruptions;
* ``croze_mean15``: the statistic against each corruption's severity mean (``fog``, ...),
  averaged over the 15 corruptions.

TARGETS.md's ``cc_weather`` ... ``cc_digital`` and ``cc_mean15`` columns are these statistics
(``croze_<group>``, ``croze_mean15``); ``cc_mean15`` is still read as ``croze_mean15``. Older
target spellings (``cc_fog``, ``cc_fog@3``, ``cc_avg_acc``) are read as their new names
(``fog``, ``fog@3``, ``cc_mean``); results always carry the canonical names.

Statistics, per proxy and target: Spearman rho (Pearson of average ranks, equal to
``scipy.stats.spearmanr``), a percentile-bootstrap 95% interval of rho, Kendall tau-b
(``scipy.stats.kendalltau``) and the top-10% and top-1% precision: the fraction of the
architectures in the proxy's top 10% (average rank above 0.9 n; 0.99 n for 1%) that are also in
the target's top 10% (1%). Averaged
targets average each statistic in the same way as rho. Proxies that rank inversely to accuracy
are reported as measured (negative rho), never flipped.

Bootstrap: ``B`` resamples of the architectures with replacement (seeded, the same resamples for
every proxy of equal ``n``). ``bootstrap_method="fixed-ranks"`` (default) keeps each
architecture's rank from the full sample and computes the Pearson correlation of those ranks on
every resample, as matrix products (fast: all targets at once); ``"rerank"`` ranks every
resample anew (the textbook bootstrap of Spearman's rho; slow, for few targets). For n in the
thousands the two intervals agree to about 0.003; for n below a few hundred ``rerank`` is wider.

Populations (the ``population`` column). NaN or infinite proxy values are dropped first; then

* ``classes``: per proxy, the first row (in score order) of each benchmark row (isomorphism class)
  is kept, each counted once;
* ``strings``: the same rows, each counted as often as the search-space members it stands for
  (:meth:`~robnas.benchmarks.base.TargetBenchmark.weights`; on NAS-Bench-201 the number of its
  strings in the class, what a uniform sampler over strings and CRoZe's paper see). Every statistic
  is that of the sample in which each class is repeated its weight times; the bootstrap resamples
  classes and re-ranks every resample (``bootstrap_method`` does not apply); ``n`` counts classes;
* ``rows``: every row of the scores, duplicates included, like CRoZe's ``corr.py``
  (``unique=False``).
"""

from __future__ import annotations

import math
import sqlite3
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from robnas.benchmarks.base import TargetBenchmark
from robnas.benchmarks.robustness import (
    CC_GROUPS,
    CORRUPTIONS,
    SEVERITIES,
    RobustnessDataset,
    Target,
    format_eps,
    parse_target,
)
from robnas.errors import ConfigError, DataError, UnknownName

try:  # scipy's merge-sort discordant-pair counter (the core of scipy.stats.kendalltau)
    from scipy.stats._stats import _kendall_dis
except ImportError:  # pragma: no cover - depends on the scipy build
    _kendall_dis = None

#: The columns of ``correlations.csv``.
COLUMNS: tuple[str, ...] = (
    "proxy",
    "target",
    "population",
    "n",
    "spearman",
    "spearman_lo",
    "spearman_hi",
    "kendall",
    "top10_precision",
    "top1_precision",
)
#: The statistics of :data:`COLUMNS` (what :func:`markdown_table` can show).
METRICS: tuple[str, ...] = COLUMNS[3:]
#: The populations a correlation can be computed over (see the module docstring).
POPULATIONS: tuple[str, ...] = ("classes", "strings", "rows")

#: The averaged statistics: name -> what they average (see the module docstring).
STATISTICS: dict[str, str] = {
    **{
        f"croze_{group}": f"CRoZe's {group} group: mean over {', '.join(members)} x 5 severities of the "
        "statistic against each severity"
        for group, members in CC_GROUPS.items()
    },
    "croze_mean15": "mean over the 15 corruptions of the statistic against each corruption's severity mean",
}
#: Older names of averaged statistics, read as their new names.
STATISTIC_ALIASES: dict[str, str] = {"cc_mean15": "croze_mean15"}

#: The targets of the first table of TARGETS.md, in its order (its cc_* columns are croze_* here).
HEADLINE_TARGETS: tuple[str, ...] = (
    "clean",
    "fgsm@1",
    "fgsm@8",
    "pgd@1",
    "pgd@8",
    "apgd@1",
    "apgd@8",
    "square@1",
    "square@8",
    "fgsm@4",
    "hrs_fgsm@8",
    "croze_weather",
    "croze_noise",
    "croze_blur",
    "croze_digital",
    "croze_mean15",
)

ARCH_COLUMNS: tuple[str, ...] = ("arch", "arch_str", "net_str")


# ------------------------------------------------------------------------------------ targets
@dataclass
class TargetSet:
    """Target columns and how the asked names average them.

    ``values`` is ``(n_networks, m)`` (rows = ``RobustnessDataset.keys``), one column per target
    of ``columns``; the statistic of name ``t`` is ``sum_j weights[j, t] * statistic(column j)``
    (a target is one column of weight 1, an averaged statistic several).
    """

    names: list[str]
    values: np.ndarray
    weights: np.ndarray
    columns: list[str] = field(default_factory=list)

    def accuracy(self, name: str) -> np.ndarray:
        """One value per network for ``name``: the weighted mean of its columns (for plots)."""
        t = self.names.index(canonical_name(name))
        return self.values @ self.weights[:, t]


def canonical_name(name: str, benchmark: TargetBenchmark | None = None) -> str:
    """The name results carry for ``name`` (a target or an averaged statistic); UnknownName if neither.

    Without ``benchmark`` (or with the robustness dataset) the robustness dataset's grammar applies;
    another benchmark spells its own targets (:meth:`~robnas.benchmarks.base.TargetBenchmark.canonical_target`).
    """
    if benchmark is not None and not isinstance(benchmark, RobustnessDataset):
        return benchmark.canonical_target(name)
    text = name.strip()
    text = STATISTIC_ALIASES.get(text, text)
    if text in STATISTICS:
        return text
    if text.startswith("croze_"):
        raise UnknownName(f"unknown averaged statistic {text!r} (known: {', '.join(STATISTICS)})")
    try:
        return parse_target(text).name
    except UnknownName as exc:
        raise UnknownName(f"{exc}; or an averaged statistic: {', '.join(STATISTICS)}") from None


def target_names(rob: TargetBenchmark, dataset: str = "cifar10", severities: bool = False) -> list[str]:
    """Every target and averaged statistic available for ``dataset`` (``severities`` adds ``CORRUPTION@S``,
    averaged statistics are the robustness dataset's)."""
    if not isinstance(rob, RobustnessDataset):
        return rob.target_names(dataset)
    names = rob.target_names(dataset, severities=severities)
    present = set(names)
    names += [f"croze_{g}" for g, members in CC_GROUPS.items() if all(m in present for m in members)]
    if all(c in present for c in CORRUPTIONS):
        names.append("croze_mean15")
    return names


def _resolve(name: str) -> tuple[str, list[tuple[Target, float]]]:
    """``name`` -> (canonical name, [(target column, weight)])."""
    canonical = canonical_name(name)
    if canonical == "croze_mean15":
        return canonical, [(Target("corruption", corruption=c), 1.0 / len(CORRUPTIONS)) for c in CORRUPTIONS]
    if canonical in STATISTICS:
        members = CC_GROUPS[canonical[len("croze_") :]]
        w = 1.0 / (len(members) * len(SEVERITIES))
        return canonical, [
            (Target("corruption", corruption=c, severity=s), w) for c in members for s in SEVERITIES
        ]
    return canonical, [(parse_target(canonical), 1.0)]


def build_targets(
    rob: TargetBenchmark, dataset: str = "cifar10", names: Sequence[str] | None = None
) -> TargetSet:
    """The target columns and weights of ``names`` (default: :func:`target_names`), by canonical name."""
    asked = list(target_names(rob, dataset) if names is None else names)
    if not asked:
        raise ConfigError("no targets selected")
    if not isinstance(rob, RobustnessDataset):
        canonical = [rob.canonical_target(n) for n in asked]
        repeated = sorted({c for c in canonical if canonical.count(c) > 1})
        if repeated:
            raise ConfigError(f"targets repeat a name: {', '.join(repeated)}")
        values = np.column_stack([rob.target_values(dataset, c) for c in canonical])
        return TargetSet(names=canonical, values=values, weights=np.eye(len(canonical)), columns=canonical)
    if not (rob.root / dataset).is_dir():
        raise DataError(
            f"{rob.root / dataset}: no such dataset folder (present: {', '.join(rob.datasets()) or 'none'})"
        )
    resolved = [_resolve(n) for n in asked]
    names = [canonical for canonical, _ in resolved]
    if len(set(names)) != len(names):
        repeated = sorted(
            {f"{a} ({c})" for a, (c, _) in zip(asked, resolved, strict=True) if names.count(c) > 1}
        )
        raise ConfigError(f"targets repeat a name: {', '.join(repeated)}")
    columns: dict[Target, int] = {}
    for _, parts in resolved:
        for target, _ in parts:
            columns.setdefault(target, len(columns))
    weights = np.zeros((len(columns), len(names)))
    for t, (_, parts) in enumerate(resolved):
        for target, w in parts:
            weights[columns[target], t] += w
    values = np.column_stack([rob.target_values(dataset, target) for target in columns])
    return TargetSet(names=names, values=values, weights=weights, columns=[t.name for t in columns])


# ------------------------------------------------------------------------------------- scores
def load_scores(path: str | Path) -> pd.DataFrame:
    """Proxy scores as a long table ``arch, proxy, value`` (score order kept).

    Reads a SQLite run store (table ``results``), a long CSV with columns ``arch,proxy,value``,
    or a wide CSV with an architecture column (``arch``, ``arch_str`` or ``net_str``) and one
    numeric column per proxy (e.g. NAS-Bench-Suite-Zero's published values).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: scores file not found; expected a CSV (arch,proxy,value) or a run store")
    with path.open("rb") as fh:
        head = fh.read(16)
    if head == b"SQLite format 3\x00":
        try:
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
                present = {row[1] for row in db.execute("PRAGMA table_info(results)")}
                columns = ["arch", "proxy", "value", *(c for c in SETTING_COLUMNS if c in present)]
                rows = db.execute(f"SELECT {', '.join(columns)} FROM results").fetchall()
        except sqlite3.DatabaseError as exc:
            raise DataError(f"{path}: not a robnas run store with a 'results' table ({exc})") from None
        table = pd.DataFrame(rows, columns=columns)
        _refuse_mixed_settings(table, path)
        return _clean_scores(table[["arch", "proxy", "value"]], path)
    try:
        table = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a readable CSV ({exc}); expected columns arch,proxy,value") from None
    if {"arch", "proxy", "value"} <= set(table.columns):
        _refuse_mixed_settings(table, path)  # an exported store keeps its seed and batch columns
        return _clean_scores(table[["arch", "proxy", "value"]], path)
    arch_col = next((c for c in ARCH_COLUMNS if c in table.columns), None)
    if arch_col is None:
        raise DataError(
            f"{path}: columns {list(table.columns)[:8]} have neither arch,proxy,value (long form) nor an "
            f"architecture column {'/'.join(ARCH_COLUMNS)} with one column per proxy (wide form)"
        )
    proxies = [c for c in table.columns if c != arch_col and pd.api.types.is_numeric_dtype(table[c])]
    if not proxies:
        raise DataError(f"{path}: wide CSV without numeric proxy columns beside {arch_col!r}")
    long = table[[arch_col, *proxies]].melt(id_vars=arch_col, var_name="proxy", value_name="value")
    return _clean_scores(long.rename(columns={arch_col: "arch"}), path)


#: What a run store keys a value by, beside its architecture and proxy.
SETTING_COLUMNS = ("seed", "batch_size", "data")


def _refuse_mixed_settings(table: pd.DataFrame, path: Path) -> None:
    """A run store keys values by seed, batch size and data tag too; one (arch, proxy) under two
    of those settings is ambiguous, so reading it is refused rather than one value picked."""
    keys = [c for c in SETTING_COLUMNS if c in table.columns]
    if not keys or table.empty:
        return
    settings = table.groupby(["arch", "proxy"])[keys].nunique().max(axis=1)
    if settings.max() > 1:
        arch, proxy = settings.idxmax()
        found = table[(table["arch"] == arch) & (table["proxy"] == proxy)]
        listed = "; ".join(
            ", ".join(f"{k} {'-' if getattr(r, k) == '' else getattr(r, k)}" for k in keys) for r in found.itertuples()
        )
        raise DataError(
            f"{path}: {proxy} of {arch} is stored under {len(found)} settings ({listed}); a store read as "
            "scores must hold one setting per value: score each setting into its own store (--out)"
        )


def _clean_scores(table: pd.DataFrame, origin: Any) -> pd.DataFrame:
    table = table.reset_index(drop=True)
    values = pd.to_numeric(table["value"], errors="coerce")
    bad = values.isna() & table["value"].notna()
    bad &= ~table["value"].astype(str).str.strip().str.lower().isin(["", "nan", "none", "null"])
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(f"{origin}: value {table['value'].iloc[i]!r} of row {i + 1} is not a number")
    return pd.DataFrame(
        {
            "arch": table["arch"].astype(str),
            "proxy": table["proxy"].astype(str),
            "value": values.astype(float),
        }
    )


def as_scores(scores: Any) -> pd.DataFrame:
    """A long ``arch, proxy, value`` table from a DataFrame, (arch, proxy, value) rows, dicts or a path."""
    if isinstance(scores, (str, Path)):
        return load_scores(scores)
    if isinstance(scores, pd.DataFrame):
        missing = {"arch", "proxy", "value"} - set(scores.columns)
        if missing:
            raise DataError(f"scores lack the columns {sorted(missing)} (need arch, proxy, value)")
        return _clean_scores(scores[["arch", "proxy", "value"]], "scores")
    rows = list(scores)
    if rows and isinstance(rows[0], dict):
        return as_scores(pd.DataFrame(rows))
    return as_scores(pd.DataFrame(rows, columns=["arch", "proxy", "value"]))


def add_ensembles(scores: pd.DataFrame, ensembles: Iterable[str]) -> pd.DataFrame:
    """Append mean-rank ensembles: ``"a+b+c"`` scores each architecture by the mean of its ranks
    under ``a``, ``b`` and ``c`` (average ranks, over the architectures where all are finite; the
    first finite value of each (arch, proxy) is used). Members are not flipped."""
    ensembles = [e for e in ensembles if e]
    if not ensembles:
        return scores
    finite = scores[np.isfinite(scores["value"].to_numpy())]
    finite = finite.drop_duplicates(["arch", "proxy"])
    known = list(dict.fromkeys(scores["proxy"]))
    extra = []
    for spec in ensembles:
        members = [m.strip() for m in spec.split("+")]
        if len(members) < 2 or not all(members):
            raise ConfigError(f"ensemble {spec!r} should name two or more proxies joined by '+'")
        for m in members:
            if m not in known:
                raise UnknownName(
                    f"ensemble {spec!r}: no proxy {m!r} in the scores (known: {', '.join(known)})"
                )
        wide = finite[finite["proxy"].isin(members)].pivot(index="arch", columns="proxy", values="value")
        order = pd.unique(finite.loc[finite["proxy"].isin(members), "arch"])
        wide = wide.reindex(order).dropna()
        ranks = stats.rankdata(wide[members].to_numpy(), axis=0)
        extra.append(
            pd.DataFrame({"arch": wide.index, "proxy": "+".join(members), "value": ranks.mean(axis=1)})
        )
    return pd.concat([scores, *extra], ignore_index=True)


@dataclass
class ProxyRows:
    """One proxy's selected architectures: values and rows of the robustness table."""

    values: np.ndarray
    rows: np.ndarray
    archs: list[str]
    dropped: int


def select(scores: pd.DataFrame, rob: TargetBenchmark, unique: bool = True) -> dict[str, ProxyRows]:
    """Per proxy (score order): drop non-finite values, map to benchmark rows, keep the first of
    each row (isomorphism class) when ``unique``. An architecture written as digits is an index."""
    archs = list(pd.unique(scores["arch"]))
    tokens: list[str | int] = [int(a) if a.isdigit() else a for a in archs]
    row_of = dict(zip(archs, rob.rows(tokens).tolist(), strict=True))
    out: dict[str, ProxyRows] = {}
    for proxy, group in scores.groupby("proxy", sort=False):
        values = group["value"].to_numpy(dtype=np.float64)
        finite = np.isfinite(values)
        archs = group["arch"].to_numpy()[finite]
        rows = np.fromiter((row_of[a] for a in archs), dtype=np.int64, count=len(archs))
        values = values[finite]
        if unique:
            _, first = np.unique(rows, return_index=True)
            first.sort()
            rows, values, archs = rows[first], values[first], archs[first]
        out[str(proxy)] = ProxyRows(values=values, rows=rows, archs=list(archs), dropped=int((~finite).sum()))
    return out


# --------------------------------------------------------------------------------- statistics
def _unit_centred(ranks: np.ndarray) -> np.ndarray:
    """Ranks minus their mean, scaled to unit norm per column (NaN for a constant column)."""
    centred = ranks - ranks.mean(axis=0)
    norm = np.sqrt((centred**2).sum(axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        return centred / np.where(norm > 0, norm, np.nan)


def _aggregate(stat: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weighted means of column statistics; NaN where any used column is NaN."""
    nan = np.isnan(stat)
    out = np.nan_to_num(stat) @ weights
    out[(nan.astype(float) @ (weights > 0)) > 0] = np.nan
    return out


class _Cache:
    """Target ranks per selected row set and resamples per n, shared across proxies."""

    def __init__(self, values: np.ndarray, bootstrap: int, seed: int) -> None:
        self.values = values
        self.bootstrap = bootstrap
        self.seed = seed
        self._targets: dict[bytes, dict[str, np.ndarray]] = {}
        self._resamples: dict[int, np.ndarray] = {}

    def targets(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        key = rows.tobytes()
        if key not in self._targets:
            y = self.values[rows]
            ranks, dense, ties = _ranks(y)
            z = _unit_centred(ranks)
            self._targets.clear()  # keep one row set: proxies of one run usually share it
            self._targets[key] = {"y": y, "ranks": ranks, "z": z, "dense": dense, "ties": ties}
            if self.bootstrap > 0:
                counts = self.resamples(len(rows))
                z0 = np.nan_to_num(z).astype(np.float32)
                self._targets[key]["boot_sum"] = counts @ z0
                self._targets[key]["boot_sq"] = counts @ (z0 * z0)
        return self._targets[key]

    def resamples(self, n: int) -> np.ndarray:
        """Counts ``(B, n)``: how often each of the n architectures is drawn in each resample."""
        if n not in self._resamples:
            self._resamples[n] = resample_counts(n, self.bootstrap, self.seed)
        return self._resamples[n]


def resample_counts(n: int, bootstrap: int, seed: int = 0) -> np.ndarray:
    """Bootstrap resamples of ``n`` items as counts ``(bootstrap, n)`` (float32): how often each
    item is drawn, with replacement, in each resample (seeded: equal ``n`` gives equal resamples)."""
    rng = np.random.default_rng(seed)
    counts = np.empty((bootstrap, n), dtype=np.float32)
    for b in range(bootstrap):
        counts[b] = np.bincount(rng.integers(0, n, size=n), minlength=n)
    return counts


def spearman_interval(x: np.ndarray, y: np.ndarray, bootstrap: int = 1000, seed: int = 0) -> tuple[float, float]:
    """Percentile-bootstrap 95% interval of Spearman rho of finite pairs ``x``, ``y`` (n,): each
    of ``bootstrap`` resamples of the pairs is ranked again (the small-sample estimator; the
    correlation table keeps the full-sample ranks, :func:`_boot_fixed_ranks`, for speed over
    thousands of architectures). NaN, NaN when no resample has a defined rho."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    n = len(x)
    idx = np.random.default_rng(seed).integers(0, n, size=(bootstrap, n))
    rx, ry = stats.rankdata(x[idx], axis=1), stats.rankdata(y[idx], axis=1)
    rx -= rx.mean(1, keepdims=True)
    ry -= ry.mean(1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = (rx * ry).sum(1) / np.sqrt((rx**2).sum(1) * (ry**2).sum(1))
    if not np.isfinite(rho).any():
        return math.nan, math.nan
    lo, hi = np.nanpercentile(rho, [2.5, 97.5])
    return float(lo), float(hi)


def _spearman_columns(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman rho of ``x`` (n,) with every column of ``y`` (n, m)."""
    return np.clip(_unit_centred(_ranks(x)[0]) @ _unit_centred(_ranks(y)[0]), -1.0, 1.0)


def _boot_fixed_ranks(zx: np.ndarray, target: dict[str, np.ndarray], counts: np.ndarray) -> np.ndarray:
    """Pearson correlation of full-sample ranks on each resample: ``(B, m)``.

    ``zx`` and the target's ``z`` are centred unit-norm ranks; resample sums are matrix products
    with the ``(B, n)`` resample counts (float32: values are O(1/sqrt(n)), sums are exact to ~1e-6).
    """
    n = counts.shape[1]
    zy = target["z"]
    zx32 = zx.astype(np.float32)
    mx = (counts @ zx32).astype(np.float64) / n
    vx = (counts @ (zx32 * zx32)).astype(np.float64) / n - mx**2
    my = target["boot_sum"].astype(np.float64) / n
    vy = target["boot_sq"].astype(np.float64) / n - my**2
    cxy = (counts @ (zx32[:, None] * np.nan_to_num(zy).astype(np.float32))).astype(np.float64) / n
    cxy -= mx[:, None] * my
    with np.errstate(invalid="ignore", divide="ignore"):
        r = cxy / np.sqrt(vx[:, None] * vy)
    r[:, np.isnan(zy).any(axis=0)] = np.nan
    return np.clip(r, -1.0, 1.0)


def _ranks(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Average ranks, dense ranks and tied-pair counts per column, from one sort.

    ``values`` is ``(n,)`` or ``(n, m)``; ranks start at 1 (as ``scipy.stats.rankdata``).
    """
    two_d = values.ndim == 2
    v = values if two_d else values[:, None]
    n = v.shape[0]
    order = np.argsort(v, axis=0, kind="stable")
    sorted_v = np.take_along_axis(v, order, axis=0)
    starts = np.ones(v.shape, dtype=bool)
    starts[1:] = sorted_v[1:] != sorted_v[:-1]
    position = np.arange(n)[:, None]
    run_start = np.maximum.accumulate(np.where(starts, position, 0), axis=0)
    ends = np.ones(v.shape, dtype=bool)
    ends[:-1] = starts[1:]
    run_end = np.minimum.accumulate(np.where(ends, position, n - 1)[::-1], axis=0)[::-1]
    average = np.empty(v.shape, dtype=np.float64)
    np.put_along_axis(average, order, (run_start + run_end) / 2.0 + 1.0, axis=0)
    dense = np.empty(v.shape, dtype=np.intp)
    np.put_along_axis(dense, order, np.cumsum(starts, axis=0), axis=0)
    ties = (position - run_start).sum(axis=0).astype(np.int64)
    if not two_d:
        return average[:, 0], dense[:, 0], ties
    return average, dense, ties


def _tie_pairs(sorted_keys: np.ndarray) -> np.ndarray:
    """Pairs of equal values per column of a column-wise sorted 2-D array."""
    n = sorted_keys.shape[0]
    position = np.arange(n)[:, None]
    starts = np.ones(sorted_keys.shape, dtype=bool)
    starts[1:] = sorted_keys[1:] != sorted_keys[:-1]
    run_start = np.maximum.accumulate(np.where(starts, position, 0), axis=0)
    return (position - run_start).sum(axis=0).astype(np.int64)


def _kendall_columns(x: np.ndarray, y_dense: np.ndarray, y_ties: np.ndarray) -> np.ndarray:
    """Kendall tau-b of ``x`` with every column of ``y`` (given as dense ranks and tied pairs).

    Equal to ``scipy.stats.kendalltau`` (same formula and scipy's merge-sort discordant-pair
    counter); all sorting and tie counting is done on the 2-D array at once.
    """
    n, m = y_dense.shape
    total = n * (n - 1) // 2
    _, x_dense, x_ties_array = _ranks(x)
    x_ties = int(x_ties_array[0])
    keys = x_dense[:, None].astype(np.int64) * (int(y_dense.max(initial=0)) + 1) + y_dense
    order = np.argsort(keys, axis=0, kind="stable")
    sorted_keys = np.take_along_axis(keys, order, axis=0)
    joint_ties = _tie_pairs(sorted_keys)
    xs = x_dense[order]
    ys = np.take_along_axis(y_dense, order, axis=0)
    out = np.full(m, np.nan)
    if x_ties == total:
        return out
    for j in range(m):
        if y_ties[j] == total:
            continue
        if _kendall_dis is None:  # pragma: no cover - depends on the scipy build
            out[j] = stats.kendalltau(xs[:, j], ys[:, j]).statistic
            continue
        discordant = int(_kendall_dis(np.ascontiguousarray(xs[:, j]), np.ascontiguousarray(ys[:, j])))
        con_minus_dis = total - x_ties - int(y_ties[j]) + int(joint_ties[j]) - 2 * discordant
        out[j] = con_minus_dis / math.sqrt(total - x_ties) / math.sqrt(total - int(y_ties[j]))
    return np.clip(out, -1.0, 1.0)


STAT_KEYS: tuple[str, ...] = ("spearman", "lo", "hi", "kendall", "top10", "top1")


def _top_precision(rx: np.ndarray, ry: np.ndarray, n: float, share: float, w: np.ndarray | None = None) -> np.ndarray:
    """Share of the proxy's top ``share`` (average rank above ``(1 - share) n``) also in each target's top.

    ``rx`` (k,) and ``ry`` (k, m) are (weighted) ranks; ``w`` counts each item (default 1).
    """
    weight = np.ones(len(rx)) if w is None else w
    top_x = (rx > (1.0 - share) * n).astype(np.float64) * weight
    top_y = ry > (1.0 - share) * n
    if top_x.sum() == 0:
        return np.full(ry.shape[1], np.nan)
    return (top_x @ top_y) / top_x.sum()


def _proxy_stats(
    x: np.ndarray, rows: np.ndarray, cache: _Cache, weights: np.ndarray, method: str
) -> dict[str, np.ndarray]:
    n = len(x)
    nan = np.full(weights.shape[1], np.nan)
    if n < 3:
        return dict.fromkeys(STAT_KEYS, nan)
    t = cache.targets(rows)
    rx = _ranks(x)[0]
    zx = _unit_centred(rx)
    if np.isnan(zx).any():  # a constant proxy
        return dict.fromkeys(STAT_KEYS, nan)
    rho = np.clip(zx @ t["z"], -1.0, 1.0)
    tau = _kendall_columns(x, t["dense"], t["ties"])
    top10 = _top_precision(rx, t["ranks"], n, 0.10)
    top1 = _top_precision(rx, t["ranks"], n, 0.01)
    lo = hi = nan
    if cache.bootstrap > 0:
        counts = cache.resamples(n)
        if method == "fixed-ranks":
            boot = _boot_fixed_ranks(zx, t, counts)
        elif method == "rerank":  # a resample's order does not matter: repeat each row its count
            draws = [np.repeat(np.arange(n), c.astype(np.int64)) for c in counts]
            boot = np.stack([_spearman_columns(x[i], t["y"][i]) for i in draws])
        else:
            raise ConfigError(f"bootstrap_method must be 'fixed-ranks' or 'rerank', got {method!r}")
        lo, hi = _percentile_interval(_aggregate(boot, weights))
    return {
        "spearman": _aggregate(rho, weights),
        "lo": lo,
        "hi": hi,
        "kendall": _aggregate(tau, weights),
        "top10": _aggregate(top10, weights),
        "top1": _aggregate(top1, weights),
    }


def _percentile_interval(boot: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The 2.5 and 97.5 percentiles over resamples (axis 0), ignoring NaN."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        lo, hi = np.nanpercentile(boot, [2.5, 97.5], axis=0)
    return lo, hi


# ------------------------------------------------------------------------ weighted statistics
def weighted_ranks(values: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Average ranks (from 1) of ``values`` (n,) when item i counts ``weights[i]`` times (ties
    share their mean rank); ``weights`` (n,) or (B, n) gives ranks of that shape. Unit weights
    give ``scipy.stats.rankdata``.

    >>> weighted_ranks(np.array([3.0, 1.0, 2.0]), np.array([1.0, 2.0, 1.0])).tolist()
    [4.0, 1.5, 3.0]
    """
    values = np.asarray(values, dtype=np.float64)
    w = np.ones_like(values) if weights is None else np.asarray(weights, dtype=np.float64)
    two_d = w.ndim == 2
    w = w if two_d else w[None, :]
    _, inverse = np.unique(values, return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(inverse[order]) > 0])
    group = np.add.reduceat(w[:, order], starts, axis=1)
    before = np.cumsum(group, axis=1) - group
    ranks = (before + (group + 1.0) / 2.0)[:, inverse]
    return ranks if two_d else ranks[0]


def weighted_corr(a: np.ndarray, b: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Weighted Pearson correlation along the last axis (NaN where either side is constant)."""
    sw = w.sum(axis=-1, keepdims=True)
    da = a - (w * a).sum(axis=-1, keepdims=True) / sw
    db = b - (w * b).sum(axis=-1, keepdims=True) / sw
    cov = (w * da * db).sum(axis=-1)
    denom = np.sqrt((w * da * da).sum(axis=-1) * (w * db * db).sum(axis=-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.clip(np.where(denom > 0, cov / denom, np.nan), -1.0, 1.0)


def standardised(ranks: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Rows of ``ranks`` (B, n) centred by their ``w``-weighted mean and scaled to unit weighted norm,
    so that the weighted correlation of two rows is ``sum(w * a * b)`` (NaN rows where constant)."""
    centred = ranks - np.einsum("ij,ij->i", w, ranks)[:, None] / w.sum(axis=1, keepdims=True)
    norm = np.sqrt(np.einsum("ij,ij,ij->i", w, centred, centred))
    with np.errstate(invalid="ignore", divide="ignore"):
        return centred / np.where(norm > 0, norm, np.nan)[:, None]


class _WeightedCache:
    """Target ranks (full sample and every resample) per row set, for the ``strings`` population."""

    def __init__(self, values: np.ndarray, row_weights: np.ndarray, bootstrap: int, seed: int) -> None:
        self.values = values
        self.row_weights = row_weights
        self.bootstrap = bootstrap
        self.seed = seed
        self._key = b""
        self._targets: dict[str, Any] = {}

    def targets(self, rows: np.ndarray) -> dict[str, Any]:
        if rows.tobytes() != self._key:
            w = self.row_weights[rows]
            if np.any(w < 1) or np.any(w != np.round(w)):
                raise DataError("the strings population needs whole benchmark weights >= 1")
            y = self.values[rows]
            bw = resample_counts(len(rows), self.bootstrap, self.seed).astype(np.float64) * w
            expanded = np.repeat(y, w.astype(np.int64), axis=0)
            ranks, dense, ties = _ranks(expanded)
            self._targets = {
                "w": w,
                "bw": bw,
                "ranks": [weighted_ranks(y[:, j], w) for j in range(y.shape[1])],
                "boot": [standardised(weighted_ranks(y[:, j], bw), bw) for j in range(y.shape[1])]
                if self.bootstrap
                else [],
                "expanded_ranks": ranks,
                "dense": dense,
                "ties": ties,
            }
            self._key = rows.tobytes()
        return self._targets


def _weighted_proxy_stats(
    x: np.ndarray, rows: np.ndarray, cache: _WeightedCache, weights: np.ndarray
) -> dict[str, np.ndarray]:
    """The statistics of the sample in which row i is repeated ``w_i`` times; bootstrap over rows."""
    nan = np.full(weights.shape[1], np.nan)
    if len(x) < 3 or np.all(x == x[0]):
        return dict.fromkeys(STAT_KEYS, nan)
    t = cache.targets(rows)
    w = t["w"]
    total = float(w.sum())
    rx = weighted_ranks(x, w)
    rho = np.array([float(weighted_corr(rx, ry, w)) for ry in t["ranks"]])
    x_expanded = np.repeat(x, w.astype(np.int64))
    tau = _kendall_columns(x_expanded, t["dense"], t["ties"])
    ry_all = np.column_stack(t["ranks"])
    top10 = _top_precision(rx, ry_all, total, 0.10, w)
    top1 = _top_precision(rx, ry_all, total, 0.01, w)
    lo = hi = nan
    if cache.bootstrap > 0:
        wzx = t["bw"] * standardised(weighted_ranks(x, t["bw"]), t["bw"])
        boot = np.column_stack([np.einsum("ij,ij->i", wzx, zy) for zy in t["boot"]])
        lo, hi = _percentile_interval(_aggregate(boot, weights))
    return {
        "spearman": _aggregate(rho, weights),
        "lo": lo,
        "hi": hi,
        "kendall": _aggregate(tau, weights),
        "top10": _aggregate(top10, weights),
        "top1": _aggregate(top1, weights),
    }


def correlate(
    scores: Any,
    benchmark: TargetBenchmark | str | Path,
    dataset: str = "cifar10",
    targets: Sequence[str] | None = None,
    unique: bool = True,
    ensembles: Iterable[str] = (),
    bootstrap: int = 1000,
    seed: int = 0,
    bootstrap_method: str = "fixed-ranks",
    population: str | Sequence[str] | None = None,
) -> pd.DataFrame:
    """Correlation of every proxy in ``scores`` with every target (see the module docstring).

    ``scores``: a DataFrame or rows with ``arch`` (the benchmark's architecture text, or an
    index), ``proxy``, ``value``, or a path for :func:`load_scores`. ``benchmark``: a
    :class:`~robnas.benchmarks.base.TargetBenchmark`, ``NAME:PATH`` or a robustness dataset folder.
    ``population``: one or several of :data:`POPULATIONS` (default ``classes``, or ``rows`` when
    ``unique`` is False). Returns a DataFrame with :data:`COLUMNS`, per population the proxies in
    score order (ensembles last), targets in the order asked; ``result.attrs["dropped"]`` counts
    the non-finite values dropped per proxy.
    """
    from robnas.benchmarks import from_spec

    if bootstrap < 0:
        raise ConfigError(f"bootstrap must be >= 0, got {bootstrap}")
    if bootstrap_method not in ("fixed-ranks", "rerank"):
        raise ConfigError(f"bootstrap_method must be 'fixed-ranks' or 'rerank', got {bootstrap_method!r}")
    populations = parse_populations(population if population is not None else ("classes" if unique else "rows"))
    rob = from_spec(benchmark)
    table = add_ensembles(as_scores(scores), ensembles)
    if table.empty:
        raise DataError("no proxy scores to correlate")
    target_set = build_targets(rob, dataset, targets)
    records = []
    dropped: dict[str, int] = {}
    for pop in populations:
        selected = select(table, rob, unique=pop != "rows")
        dropped = {p: c.dropped for p, c in selected.items()}
        if pop == "strings":
            wcache = _WeightedCache(target_set.values, np.asarray(rob.weights(), dtype=np.float64), bootstrap, seed)
        else:
            cache = _Cache(target_set.values, bootstrap, seed)
        for proxy, chosen in selected.items():
            if pop == "strings":
                result = _weighted_proxy_stats(chosen.values, chosen.rows, wcache, target_set.weights)
            else:
                result = _proxy_stats(chosen.values, chosen.rows, cache, target_set.weights, bootstrap_method)
            for t, name in enumerate(target_set.names):
                records.append((proxy, name, pop, len(chosen.values), *(float(result[k][t]) for k in STAT_KEYS)))
    frame = pd.DataFrame.from_records(records, columns=list(COLUMNS))
    frame.attrs["dropped"] = dropped
    return frame


def parse_populations(population: str | Sequence[str]) -> list[str]:
    """``"classes,strings"`` or a sequence -> the populations, checked against :data:`POPULATIONS`."""
    items = population.split(",") if isinstance(population, str) else list(population)
    chosen = list(dict.fromkeys(p.strip() for p in items if p.strip()))
    unknown = [p for p in chosen if p not in POPULATIONS]
    if unknown or not chosen:
        raise ConfigError(f"population must be one or more of {', '.join(POPULATIONS)}, got {population!r}")
    return chosen


# ------------------------------------------------------------------------------------- output
def markdown_table(
    result: pd.DataFrame,
    targets: Sequence[str] | None = None,
    metric: str = "spearman",
    digits: int = 3,
    population: str | None = None,
) -> str:
    """Proxies x targets of one statistic, for one population (default: the result's first), as a
    GitHub markdown table."""
    if metric not in METRICS:
        raise ConfigError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
    if "population" in result.columns and len(result):
        population = population or str(result["population"].iloc[0])
        if population not in set(result["population"]):
            raise UnknownName(f"population {population!r} is not in the result ({', '.join(pd.unique(result['population']))})")
        result = result[result["population"] == population]
    proxies = list(dict.fromkeys(result["proxy"]))
    targets = list(dict.fromkeys(result["target"])) if targets is None else list(targets)
    wide = result.pivot(index="proxy", columns="target", values=metric)
    missing = [t for t in targets if t not in wide.columns]
    if missing:
        raise UnknownName(f"targets {missing} are not in the result")

    def cell(v: float) -> str:
        return "nan" if v is None or math.isnan(v) else f"{v:.{digits}f}"

    lines = [
        "| proxy | " + " | ".join(targets) + " |",
        "|:--|" + "--:|" * len(targets),
    ]
    for p in proxies:
        lines.append(f"| {p} | " + " | ".join(cell(wide.at[p, t]) for t in targets) + " |")
    return "\n".join(lines)


def write_csv(result: pd.DataFrame, path: str | Path) -> Path:
    """``correlations.csv`` with exactly :data:`COLUMNS`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    result.loc[:, list(COLUMNS)].to_csv(path, index=False, float_format="%.6g")
    return path


__all__ = [
    "CC_GROUPS",
    "COLUMNS",
    "HEADLINE_TARGETS",
    "METRICS",
    "POPULATIONS",
    "STATISTICS",
    "STATISTIC_ALIASES",
    "ProxyRows",
    "TargetSet",
    "add_ensembles",
    "as_scores",
    "build_targets",
    "canonical_name",
    "correlate",
    "format_eps",
    "load_scores",
    "markdown_table",
    "parse_populations",
    "resample_counts",
    "select",
    "spearman_interval",
    "standardised",
    "target_names",
    "weighted_corr",
    "weighted_ranks",
    "write_csv",
]
