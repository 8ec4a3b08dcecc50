"""The honest protocol for robustness predictors on NAS-Bench-201: a fixed development / test split.

The 6,466 isomorphism classes of NAS-Bench-201 (the evaluated networks of the robustness
dataset) are split once, by a seeded permutation, into a development half and a test half.
Every design choice (which proxy, which weights, which features, which hyper-parameters) is
made on the development half; the test half is reported once, at the end.

Two populations are reported, because they rank proxies differently:

* ``classes``: each distinct network counted once (the harder, more honest test);
* ``strings``: each class weighted by how many of the 15,625 NB201 strings fall in it (what a
  uniform sampler over strings, and CRoZe's paper, see).

:func:`evaluate` reports, per proxy x target x population x half, Spearman's rho with a
percentile-bootstrap 95% interval and the partial Spearman given a control proxy (log(params)
by default: does the proxy carry information beyond size?). A weighted Spearman is the Spearman
of the sample in which each class is repeated ``weight`` times (ties share their mean rank); the
bootstrap resamples classes (the same resamples for every proxy of equal n, drawn by
:func:`robnas.correlate.resample_counts`) and ranks every resample anew.

>>> split = make_split([str(i) for i in range(10)], seed=0)
>>> len(split.dev), len(split.test), split.dev.isdisjoint(split.test)
(5, 5, True)
>>> make_split([str(i) for i in range(10)], seed=0) == split
True
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from robnas import correlate as corr
from robnas.benchmarks.robustness import RobustnessDataset, parse_target
from robnas.errors import ConfigError, DataError, UnknownName

HALVES = ("dev", "test")
POPULATIONS = ("classes", "strings")
#: The columns of :func:`evaluate`'s table.
EVAL_COLUMNS: tuple[str, ...] = (
    "proxy",
    "target",
    "population",
    "half",
    "n",
    "spearman",
    "spearman_lo",
    "spearman_hi",
    "partial",
    "partial_lo",
    "partial_hi",
)


@dataclass(frozen=True)
class Split:
    """A development / test split of isomorphism-class ids (disjoint, together all the classes)."""

    seed: int
    dev: frozenset[str]
    test: frozenset[str]

    def half(self, name: str) -> frozenset[str]:
        """The ids of half ``name`` (``"dev"`` or ``"test"``)."""
        if name not in HALVES:
            raise ConfigError(f"unknown half {name!r}; choose 'dev' or 'test'")
        return self.dev if name == "dev" else self.test

    def mask(self, ids: Sequence[str], name: str) -> np.ndarray:
        """Boolean mask over ``ids``: which belong to half ``name``."""
        chosen = self.half(name)
        return np.fromiter((i in chosen for i in ids), dtype=bool, count=len(ids))


def make_split(ids: Sequence[str], seed: int = 0) -> Split:
    """Split ``ids`` in two halves by a permutation seeded with ``seed`` (the first half, rounded
    up, is the development half). The order of ``ids`` does not matter."""
    ordered = sorted(set(map(str, ids)), key=lambda k: (len(k), k))
    if len(ordered) < 2:
        raise ConfigError(f"a split needs at least 2 classes, got {len(ordered)}")
    perm = np.random.default_rng(seed).permutation(len(ordered))
    n_dev = (len(ordered) + 1) // 2
    dev = frozenset(ordered[i] for i in perm[:n_dev])
    test = frozenset(ordered[i] for i in perm[n_dev:])
    return Split(seed=seed, dev=dev, test=test)


def nb201_split(rob: RobustnessDataset, seed: int = 0) -> Split:
    """The split of the robustness dataset's evaluated networks (its isomorphism-class ids)."""
    return make_split(rob.keys, seed)


def save_split(split: Split, path: str | Path) -> Path:
    """Write ``split`` as JSON (``seed``, sorted ``dev`` and ``test`` ids)."""
    path = Path(path)
    key = lambda k: (len(k), k)  # noqa: E731
    body = {"seed": split.seed, "dev": sorted(split.dev, key=key), "test": sorted(split.test, key=key)}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(body, indent=0) + "\n")
    return path


def load_split(path: str | Path) -> Split:
    """Read a split written by :func:`save_split`; a missing, corrupt or overlapping file is a
    :class:`DataError` naming the file."""
    path = Path(path)
    try:
        body = json.loads(path.read_text())
        split = Split(seed=int(body["seed"]), dev=frozenset(map(str, body["dev"])),
                      test=frozenset(map(str, body["test"])))
    except FileNotFoundError:
        raise DataError(f"split file {path} does not exist; write one with robnas.holdout.save_split") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise DataError(f"split file {path} is not a split ({exc}); expected JSON with seed, dev, test") from None
    if not split.dev.isdisjoint(split.test):
        raise DataError(f"split file {path}: dev and test share {len(split.dev & split.test)} classes")
    return split


def string_counts(rob: RobustnessDataset) -> dict[str, int]:
    """How many of the NB201 strings fall in each isomorphism class (the ``strings`` weights)."""
    counts: dict[str, int] = {}
    for key in rob.isomorphs:
        counts[key] = counts.get(key, 0) + 1
    return counts


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


def _weighted_corr(a: np.ndarray, b: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Weighted Pearson correlation along the last axis (NaN where either side is constant)."""
    sw = w.sum(axis=-1, keepdims=True)
    da = a - (w * a).sum(axis=-1, keepdims=True) / sw
    db = b - (w * b).sum(axis=-1, keepdims=True) / sw
    cov = (w * da * db).sum(axis=-1)
    denom = np.sqrt((w * da * da).sum(axis=-1) * (w * db * db).sum(axis=-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.clip(np.where(denom > 0, cov / denom, np.nan), -1.0, 1.0)


def weighted_spearman(x: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Spearman's rho of ``x`` and ``y`` with item i counted ``weights[i]`` times (the
    ``strings`` population); unit weights give ``scipy.stats.spearmanr``."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    w = np.ones_like(x) if weights is None else np.asarray(weights, dtype=np.float64)
    return float(_weighted_corr(weighted_ranks(x, w), weighted_ranks(y, w), w))


def _partial(rxy: np.ndarray, rxz: np.ndarray, ryz: np.ndarray) -> np.ndarray:
    """Partial correlation of x and y given z from the three pairwise correlations."""
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (rxy - rxz * ryz) / np.sqrt((1.0 - rxz**2) * (1.0 - ryz**2))
    return np.clip(out, -1.0, 1.0)


def partial_spearman(x: np.ndarray, y: np.ndarray, z: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Spearman correlation of ``x`` and ``y`` given ``z``: the correlation of the (weighted) ranks
    of ``x`` and ``y`` after a (weighted) linear regression of each on the ranks of ``z``. Does
    ``x`` carry information about ``y`` beyond ``z`` (for example beyond log(params))?"""
    x, y, z = (np.asarray(a, dtype=np.float64) for a in (x, y, z))
    w = np.ones_like(x) if weights is None else np.asarray(weights, dtype=np.float64)
    rx, ry, rz = (weighted_ranks(a, w) for a in (x, y, z))
    return float(_partial(_weighted_corr(rx, ry, w), _weighted_corr(rx, rz, w), _weighted_corr(ry, rz, w)))


def _interval(boot: np.ndarray) -> tuple[float, float]:
    finite = boot[np.isfinite(boot)]
    if finite.size == 0:
        return math.nan, math.nan
    lo, hi = np.percentile(finite, [2.5, 97.5])
    return float(lo), float(hi)


def evaluate(
    scores: Any,
    rob: RobustnessDataset,
    split: Split,
    targets: Sequence[str],
    dataset: str = "cifar10",
    control: str | None = "params",
    populations: Sequence[str] = POPULATIONS,
    halves: Sequence[str] = HALVES,
    ensembles: Sequence[str] = (),
    bootstrap: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """Spearman (with a bootstrap 95% interval) and partial Spearman given ``control`` of every
    proxy in ``scores`` against every target, per population and half (:data:`EVAL_COLUMNS`).

    ``scores``: anything :func:`robnas.correlate.as_scores` reads (one row per isomorphism class
    is kept, the first); ``targets``: names of :func:`robnas.benchmarks.robustness.parse_target`
    (``clean``, ``fgsm@8``, ``cc_mean``, ...); ``control``: a proxy of ``scores`` (its ranks are
    those of its log), ``None`` for no partial Spearman; ``ensembles``: mean-rank ensembles
    ``a+b+c`` as :func:`robnas.correlate.add_ensembles`. Architectures outside the split are an
    error; a proxy's non-finite values are dropped (and, for the partial, the control's).
    """
    if bootstrap < 0:
        raise ConfigError(f"bootstrap must be >= 0, got {bootstrap}")
    for p in populations:
        if p not in POPULATIONS:
            raise ConfigError(f"unknown population {p!r}; choose from {', '.join(POPULATIONS)}")
    for h in halves:
        split.half(h)
    table = corr.add_ensembles(corr.as_scores(scores), ensembles)
    if table.empty:
        raise DataError("no proxy scores to evaluate")
    names = [parse_target(t).name for t in targets]
    values = {name: rob.target_values(dataset, name) for name in names}
    selected = corr.select(table, rob, unique=True)
    if control is not None and control not in selected:
        raise UnknownName(f"control proxy {control!r} is not in the scores (known: {', '.join(selected)})")
    keys = np.asarray(rob.keys)
    outside = {k for c in selected.values() for k in keys[c.rows]} - split.dev - split.test
    if outside:
        raise DataError(f"{len(outside)} scored classes are in neither half of the split (e.g. {min(outside)})")
    counts = string_counts(rob)
    string_weight = np.array([counts[k] for k in keys], dtype=np.float64)
    control_value = np.full(len(keys), np.nan)
    if control is not None:
        control_value[selected[control].rows] = selected[control].values
    records = []
    ranks_cache: dict[tuple[bytes, str, str], tuple[np.ndarray, np.ndarray]] = {}

    def ranks(rows: np.ndarray, pop: str, name: str, column: np.ndarray, boot: np.ndarray) -> tuple:
        key = (rows.tobytes(), pop, name)
        if key not in ranks_cache:
            w = np.ones(len(rows)) if pop == "classes" else string_weight[rows]
            ranks_cache[key] = (weighted_ranks(column[rows], w), weighted_ranks(column[rows], boot * w))
        return ranks_cache[key]

    for proxy, chosen in selected.items():
        by_row = np.full(len(keys), np.nan)
        by_row[chosen.rows] = chosen.values
        for half in halves:
            in_half = split.mask(list(keys[chosen.rows]), half)
            rows = np.sort(chosen.rows[in_half])
            if control is not None and proxy != control:
                rows = rows[np.isfinite(control_value[rows])]
            n = len(rows)
            for pop in populations:
                if n < 3:
                    for name in names:
                        records.append((proxy, name, pop, half, n, *([math.nan] * 6)))
                    continue
                w = np.ones(n) if pop == "classes" else string_weight[rows]
                resamples = corr.resample_counts(n, bootstrap, seed).astype(np.float64)
                bw = resamples * w
                rx, bx = weighted_ranks(by_row[rows], w), weighted_ranks(by_row[rows], bw)
                partial_ok = control is not None and proxy != control
                if partial_ok:
                    rz, bz = ranks(rows, pop, "\0control", control_value, resamples)
                    rxz, bxz = _weighted_corr(rx, rz, w), _weighted_corr(bx, bz, bw)
                for name in names:
                    ry, by = ranks(rows, pop, name, values[name], resamples)
                    rho, boot = float(_weighted_corr(rx, ry, w)), _weighted_corr(bx, by, bw)
                    partial = p_lo = p_hi = math.nan
                    if partial_ok:
                        ryz, byz = _weighted_corr(ry, rz, w), _weighted_corr(by, bz, bw)
                        partial = float(_partial(np.float64(rho), rxz, ryz))
                        p_lo, p_hi = _interval(_partial(boot, bxz, byz)) if bootstrap else (math.nan,) * 2
                    lo, hi = _interval(boot) if bootstrap else (math.nan, math.nan)
                    records.append((proxy, name, pop, half, n, rho, lo, hi, partial, p_lo, p_hi))
    return pd.DataFrame.from_records(records, columns=list(EVAL_COLUMNS))
