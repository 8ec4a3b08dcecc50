"""The honest protocol for robustness predictors on NAS-Bench-201: a fixed development / test split.

The 6,466 isomorphism classes of NAS-Bench-201 (the evaluated networks of the robustness
dataset) are split once, by a seeded permutation, into a development half and a test half.
Every design choice (which proxy, which weights, which features, which hyper-parameters) is
made on the development half; the test half is reported once, at the end.

Two populations are reported, because they rank proxies differently:

* ``classes``: each distinct network counted once (the harder, more honest test);
* ``strings``: each class weighted by how many of the 15,625 NB201 strings fall in it (what a
  uniform sampler over strings, and CRoZe's paper, see).

>>> split = make_split([str(i) for i in range(10)], seed=0)
>>> len(split.dev), len(split.test), split.dev.isdisjoint(split.test)
(5, 5, True)
>>> make_split([str(i) for i in range(10)], seed=0) == split
True
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import stats

from robnas.benchmarks.robustness import RobustnessDataset
from robnas.errors import ConfigError, DataError

HALVES = ("dev", "test")
POPULATIONS = ("classes", "strings")


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


def partial_spearman(x: np.ndarray, y: np.ndarray, z: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Spearman correlation of ``x`` and ``y`` given ``z``: the correlation of the ranks of ``x``
    and ``y`` after a (weighted) linear regression of each on the ranks of ``z``. Does ``x`` carry
    information about ``y`` beyond ``z`` (for example beyond log(params))?"""
    x, y, z = (np.asarray(a, dtype=np.float64) for a in (x, y, z))
    w = np.ones_like(x) if weights is None else np.asarray(weights, dtype=np.float64)
    rx, ry, rz = (stats.rankdata(a) for a in (x, y, z))
    design = np.column_stack([np.ones_like(rz), rz]) * np.sqrt(w)[:, None]

    def residual(r: np.ndarray) -> np.ndarray:
        coef, *_ = np.linalg.lstsq(design, r * np.sqrt(w), rcond=None)
        return r - np.column_stack([np.ones_like(rz), rz]) @ coef

    ex, ey = residual(rx), residual(ry)
    ex, ey = ex - np.average(ex, weights=w), ey - np.average(ey, weights=w)
    denom = np.sqrt(np.average(ex * ex, weights=w) * np.average(ey * ey, weights=w))
    return float(np.average(ex * ey, weights=w) / denom) if denom > 0 else float("nan")
