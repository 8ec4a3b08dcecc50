"""Figures of a correlation study (matplotlib, Agg backend: files only, no display needed).

* :func:`heatmap`: one statistic (default Spearman rho) of every proxy (rows) against every
  target (columns), in [-1, 1] on a diverging scale;
* :func:`scatter`: one panel per proxy, the proxy's rank percentile (0 = lowest score) against
  the target accuracy of each selected architecture, titled with rho. For an averaged target
  (``cc_<group>``, ``cc_mean``) the accuracy shown is the weighted mean of its accuracy columns.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from scipy import stats

from robnas.benchmarks.robustness import RobustnessDataset
from robnas.correlate import add_ensembles, as_scores, build_targets, select
from robnas.errors import ConfigError


def save_figure(fig: Any, path: str | Path) -> Path:
    """Lay out ``fig``, write it to ``path`` (PNG at 120 dpi, folders made) and close it."""
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.@+-]", "_", name)


def heatmap(
    result: pd.DataFrame, path: str | Path, metric: str = "spearman", title: str | None = None
) -> Path:
    """Heatmap of ``metric`` (proxies x targets) from a :func:`robnas.correlate.correlate` result."""
    if metric not in result.columns:
        raise ConfigError(f"no column {metric!r} in the result (columns: {', '.join(result.columns)})")
    proxies = list(dict.fromkeys(result["proxy"]))
    targets = list(dict.fromkeys(result["target"]))
    grid = result.pivot(index="proxy", columns="target", values=metric).loc[proxies, targets].to_numpy(float)
    width = max(6.0, 0.45 * len(targets) + 2.5)
    height = max(3.0, 0.4 * len(proxies) + 1.8)
    fig, ax = plt.subplots(figsize=(width, height))
    image = ax.imshow(grid, cmap="RdBu_r", vmin=-1, vmax=1, aspect="auto")
    ax.set_xticks(range(len(targets)), targets, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(proxies)), proxies, fontsize=8)
    if len(targets) * len(proxies) <= 400:
        for i in range(len(proxies)):
            for j in range(len(targets)):
                if not math.isnan(grid[i, j]):
                    ax.text(j, i, f"{grid[i, j]:.2f}", ha="center", va="center", fontsize=6)
    fig.colorbar(image, ax=ax, label=metric)
    ax.set_title(title or f"{metric} of proxies against robustness targets")
    return save_figure(fig, path)


def scatter(
    scores: Any,
    benchmark: RobustnessDataset | str | Path,
    path: str | Path,
    target: str = "fgsm@8",
    dataset: str = "cifar10",
    unique: bool = True,
    ensembles: Sequence[str] = (),
    proxies: Sequence[str] | None = None,
) -> Path:
    """One panel per proxy: rank percentile of the proxy vs the ``target`` accuracy (fraction)."""
    rob = benchmark if isinstance(benchmark, RobustnessDataset) else RobustnessDataset(benchmark)
    targets = build_targets(rob, dataset, [target])
    accuracy = targets.accuracy(target)
    chosen = select(add_ensembles(as_scores(scores), ensembles), rob, unique=unique)
    names = list(chosen) if proxies is None else [p for p in proxies if p in chosen]
    if not names:
        raise ConfigError("no proxy to plot")
    cols = min(4, len(names))
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.8 * rows), squeeze=False)
    for ax, name in zip(axes.ravel(), names, strict=False):
        c = chosen[name]
        y = accuracy[c.rows]
        if len(c.values) >= 2:
            percentile = (stats.rankdata(c.values) - 1) / (len(c.values) - 1)
            rho = stats.spearmanr(c.values, y).statistic
        else:
            percentile, rho = np.zeros(len(c.values)), float("nan")
        ax.scatter(percentile, y, s=3, alpha=0.35, linewidths=0)
        ax.set_title(f"{name}  rho={rho:.3f}  n={len(y)}", fontsize=8)
        ax.set_xlabel("proxy rank percentile", fontsize=7)
        ax.set_ylabel(f"{target} accuracy", fontsize=7)
        ax.tick_params(labelsize=6)
    for ax in axes.ravel()[len(names) :]:
        ax.axis("off")
    fig.suptitle(f"proxies vs {target} ({dataset})", fontsize=10)
    return save_figure(fig, path)


def scatter_name(target: str) -> str:
    """The file name :mod:`robnas.cli.correlate` uses for the scatter of ``target``."""
    return f"scatter_{_safe(target)}.png"
