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
from robnas.benchmarks.base import TargetBenchmark
from robnas.benchmarks.robustness import RobustnessDataset
from robnas.correlate import weighted_corr, weighted_ranks
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
        """The ids of half ``name`` (``"dev"`` or ``"test"``; ``"all"``: both together)."""
        if name == "all":
            return self.dev | self.test
        if name not in HALVES:
            raise ConfigError(f"unknown half {name!r}; choose 'dev', 'test' or 'all'")
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


def repeated_folds(n: int, k: int, repeats: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """``repeats`` random partitions of ``range(n)`` into ``k`` folds, from one generator seeded
    with ``seed``: (train, test) index pairs, each sorted, ``k * repeats`` of them."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(repeats):
        order = rng.permutation(n)
        for i in range(k):
            test = np.sort(order[i::k])
            out.append((np.setdiff1d(order, test), test))
    return out


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


def weighted_spearman(x: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Spearman's rho of ``x`` and ``y`` with item i counted ``weights[i]`` times (the
    ``strings`` population); unit weights give ``scipy.stats.spearmanr``."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    w = np.ones_like(x) if weights is None else np.asarray(weights, dtype=np.float64)
    return float(weighted_corr(weighted_ranks(x, w), weighted_ranks(y, w), w))


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
    return float(_partial(weighted_corr(rx, ry, w), weighted_corr(rx, rz, w), weighted_corr(ry, rz, w)))


def _standardised_ranks(
    values: np.ndarray, w: np.ndarray, bw: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Weighted ranks of ``values`` centred and scaled to unit weighted norm, for the full sample
    (weights ``w``) and for every resample (weights ``bw``, (B, n); None: no bootstrap). The
    weighted correlation of two such vectors is ``sum(w * a * b)``; ties share their mean rank."""
    r = weighted_ranks(values, w)
    centred = r - np.sum(w * r) / w.sum()
    norm = np.sqrt(np.sum(w * centred * centred))
    z = centred / norm if norm > 0 else np.full_like(centred, np.nan)
    if bw is None:
        return z, None
    return z, corr.standardised(weighted_ranks(values, bw), bw).astype(np.float32)


def _correlation(
    w: np.ndarray, zx: np.ndarray, wzbx: np.ndarray | None, zy: np.ndarray, zby: np.ndarray | None
) -> tuple[np.float64, np.ndarray | None]:
    """Weighted correlation of standardised ranks, for the full sample and (``wzbx``: resample
    weights times x's standardised resample ranks) every resample."""
    boot = None if wzbx is None or zby is None else np.einsum("ij,ij->i", wzbx, zby)
    return np.float64(np.sum(w * zx * zy)), boot


def _interval(boot: np.ndarray) -> tuple[float, float]:
    finite = boot[np.isfinite(boot)]
    if finite.size == 0:
        return math.nan, math.nan
    lo, hi = np.percentile(finite, [2.5, 97.5])
    return float(lo), float(hi)


def evaluate(
    scores: Any,
    rob: TargetBenchmark,
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
    is kept, the first); ``rob``: a :class:`~robnas.benchmarks.base.TargetBenchmark` of NB201
    classes (the robustness dataset, NAS-RobBench-201); ``targets``: its target names (``clean``,
    ``fgsm@8``, ``cc_mean``, ...; ``aa@8`` on NAS-RobBench-201); ``halves``: ``dev``, ``test``,
    ``all``; ``control``: a proxy of ``scores`` (its ranks are
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
    names = [rob.canonical_target(t) for t in targets]
    values = {name: rob.target_values(dataset, name) for name in names}
    selected = corr.select(table, rob, unique=True)
    if control is not None and control not in selected:
        raise UnknownName(f"control proxy {control!r} is not in the scores (known: {', '.join(selected)})")
    keys = np.asarray(rob.keys)
    outside = {k for c in selected.values() for k in keys[c.rows]} - split.dev - split.test
    if outside:
        raise DataError(f"{len(outside)} scored classes are in neither half of the split (e.g. {min(outside)})")
    string_weight = np.asarray(rob.weights(), dtype=np.float64)
    control_value = np.full(len(keys), np.nan)
    if control is not None:
        control_value[selected[control].rows] = selected[control].values
    columns = {name: values[name] for name in names}
    if control is not None:
        columns["\0control"] = control_value
    records = []
    proxies = list(selected)
    for h, half in enumerate(halves):
        # the rows of every proxy in this half; proxies that share rows share the target ranks
        groups: dict[bytes, tuple[np.ndarray, list[str]]] = {}
        for proxy, chosen in selected.items():
            in_half = split.mask(list(keys[chosen.rows]), half)
            rows = np.sort(chosen.rows[in_half])
            if control is not None and proxy != control:
                rows = rows[np.isfinite(control_value[rows])]
            groups.setdefault(rows.tobytes(), (rows, []))[1].append(proxy)
        for rows, members in groups.values():
            n = len(rows)
            for p_index, pop in enumerate(populations):
                if n < 3:
                    for proxy in members:
                        for t, name in enumerate(names):
                            key = (proxies.index(proxy), h, p_index, t)
                            records.append((key, (proxy, name, pop, half, n, *([math.nan] * 6))))
                    continue
                w = np.ones(n) if pop == "classes" else string_weight[rows]
                bw = corr.resample_counts(n, bootstrap, seed).astype(np.float64) * w if bootstrap else None
                std = {name: _standardised_ranks(column[rows], w, bw) for name, column in columns.items()}
                for proxy in members:
                    by_row = np.full(len(keys), np.nan)
                    by_row[selected[proxy].rows] = selected[proxy].values
                    zx, zbx = _standardised_ranks(by_row[rows], w, bw)
                    wzbx = bw * zbx if bw is not None else None
                    partial_ok = control is not None and proxy != control
                    if partial_ok:
                        rxz, bxz = _correlation(w, zx, wzbx, *std["\0control"])
                    for t, name in enumerate(names):
                        rho, boot = _correlation(w, zx, wzbx, *std[name])
                        partial = p_lo = p_hi = math.nan
                        if partial_ok:
                            z, zb = std["\0control"]
                            zy, zby = std[name]
                            ryz = np.float64(np.sum(w * z * zy))
                            partial = float(_partial(rho, rxz, ryz))
                            if boot is not None:
                                byz = np.einsum("ij,ij->i", bw * zb, zby)
                                p_lo, p_hi = _interval(_partial(boot, bxz, byz))
                        lo, hi = _interval(boot) if boot is not None else (math.nan, math.nan)
                        key = (proxies.index(proxy), h, p_index, t)
                        records.append((key, (proxy, name, pop, half, n, float(rho), lo, hi, partial, p_lo, p_hi)))
    records = [r for _, r in sorted(records, key=lambda item: item[0])]
    return pd.DataFrame.from_records(records, columns=list(EVAL_COLUMNS))
