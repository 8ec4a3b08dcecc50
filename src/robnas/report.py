"""Figures of a correlation study (matplotlib, Agg backend: files only, no display needed).

* :func:`heatmap`: one statistic (default Spearman rho) of every proxy (rows) against every
  target (columns), in [-1, 1] on a diverging scale;
* :func:`scatter`: one panel per proxy, the proxy's rank percentile (0 = lowest score) against
  the target accuracy of each selected architecture, titled with rho (targets as named by
  :func:`robnas.benchmarks.robustness.parse_target`; for CRoZe's averaged statistics
  ``croze_<group>`` the accuracy shown is the mean over the group's corruptions and severities).

Figures of one model's robustness table (the rows of :func:`robnas.evaluate.run`), used by
``robnas evaluate`` and the pipeline report:

* :func:`accuracy_vs_eps`: accuracy against eps, one curve per L-inf attack (and setting),
  starting from the clean accuracy at eps 0;
* :func:`corruption_heatmap`: accuracy of every corruption (rows) at every severity (columns),
  with the mean over severities in the last column.
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

from robnas.benchmarks.base import TargetBenchmark
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


def accuracy_vs_eps(table: Sequence[dict[str, Any]], path: str | Path, title: str | None = None) -> Path | None:
    """Accuracy (%) against eps (1/255) of every attack row with an eps; None when there is none.

    One curve per attack and setting (``pgd``, ``pgd:steps=20``), each starting at the clean
    accuracy at eps 0; attacks without an eps (``cw``) are left to the table.
    """
    clean = next((r["accuracy"] for r in table if r["kind"] == "clean"), None)
    curves: dict[str, list[dict[str, Any]]] = {}
    for r in table:
        if r["kind"] == "attack" and r.get("eps") is not None:
            name, _, rest = r["label"].partition(":")
            key = name.split("@")[0] + (f" ({rest})" if rest else "")
            curves.setdefault(key, []).append(r)
    if not curves:
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    markers = "osD^vP*X"
    for i, (key, rows) in enumerate(curves.items()):
        rows = sorted(rows, key=lambda r: r["eps"])
        xs = ([0.0] if clean is not None else []) + [r["eps"] * 255 for r in rows]
        ys = ([clean] if clean is not None else []) + [r["accuracy"] for r in rows]
        ax.plot(xs, [100 * y for y in ys], marker=markers[i % len(markers)], label=key)
    ax.set_xlabel("eps (1/255)")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    ax.set_title(title or "Accuracy under attack (eps 0 = clean)")
    return save_figure(fig, path)


def corruption_heatmap(
    table: Sequence[dict[str, Any]], path: str | Path, title: str | None = None
) -> Path | None:
    """Accuracy (%) of each corruption (rows) x severity (columns), plus the mean over the
    severities evaluated; None when the table has no corruption row."""
    grid: dict[str, dict[int, float]] = {}
    for r in table:
        if r["kind"] == "corruption":
            grid.setdefault(r["name"], {})[int(r["severity"])] = 100 * r["accuracy"]
    if not grid:
        return None
    severities = sorted({s for row in grid.values() for s in row})
    names = list(grid)
    values = np.full((len(names), len(severities) + 1), np.nan)
    for i, name in enumerate(names):
        for j, severity in enumerate(severities):
            values[i, j] = grid[name].get(severity, np.nan)
        values[i, -1] = np.mean(list(grid[name].values()))
    fig, ax = plt.subplots(figsize=(1.0 * len(severities) + 4.2, 0.32 * len(names) + 1.8))
    image = ax.imshow(values, cmap="viridis", vmin=0, vmax=100, aspect="auto")
    ax.set_xticks(range(len(severities) + 1), [str(s) for s in severities] + ["mean"], fontsize=8)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.axvline(len(severities) - 0.5, color="white", linewidth=2)
    ax.set_xlabel("severity")
    for i in range(len(names)):
        for j in range(len(severities) + 1):
            if not math.isnan(values[i, j]):
                color = "black" if values[i, j] > 60 else "white"
                ax.text(j, i, f"{values[i, j]:.0f}", ha="center", va="center", fontsize=7, color=color)
    fig.colorbar(image, ax=ax, label="accuracy (%)")
    clean = next((r["accuracy"] for r in table if r["kind"] == "clean"), None)
    ax.set_title(title or "Accuracy under corruptions" + (f" (clean {100 * clean:.1f}%)" if clean is not None else ""))
    return save_figure(fig, path)


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
    benchmark: TargetBenchmark | str | Path,
    path: str | Path,
    target: str = "fgsm@8",
    dataset: str = "cifar10",
    unique: bool = True,
    ensembles: Sequence[str] = (),
    proxies: Sequence[str] | None = None,
) -> Path:
    """One panel per proxy: rank percentile of the proxy vs the ``target`` accuracy (fraction).

    ``benchmark``: a :class:`~robnas.benchmarks.base.TargetBenchmark`, ``NAME:PATH`` or a robustness
    dataset folder."""
    from robnas.benchmarks import from_spec

    rob = from_spec(benchmark)
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
