"""RobNets' three analyses of a finished one-shot search (Guo et al., "When NAS Meets
Robustness", CVPR 2020, Secs. 3.3-3.5; spec ``robnets_wsrnas.md`` A2.3-A2.5).

From the history of a ``robnets`` search run (its candidates and their score, e.g. PGD-20
accuracy after fine-tuning) :func:`robnas.search.robnets.measure_run` builds one row per candidate:

* ``density``: RobNets' architecture density D, set (edge, op) bits over all bits (finding 1:
  adversarial accuracy rises with D);
* ``convolutions`` and ``direct_convolutions``: separable convolutions per cell, all and on the
  *direct* edges only (finding 2: under a budget of convolutions, those on direct edges help
  most). The paper does not define a direct edge; :data:`DIRECT_EDGES` offers ``chain`` (the
  default: the edges between consecutive states s1 -> n0 -> n1 -> n2 -> n3, i.e. RobNet code
  positions 1, 4, 8, 13) and ``inputs`` (the 8 edges leaving the cell inputs s0 and s1);
* ``clean`` (the candidate's clean accuracy on the same validation images, from its fine-tuned
  checkpoint, or its inherited weights for a ``oneshot:`` run) and ``gap`` = clean - score;
* ``fsp``: the candidate's FSP loss on inherited, BN-recalibrated weights (finding 3: the FSP
  loss of deeper cells tracks the clean-adversarial gap), read from the run's FSP filter when
  it computed one, else computed with the strategy's FSP options.

:func:`analyse` then reports Spearman rho with a bootstrap 95% interval (:func:`rank_statistics`)
of the score against density, convolutions and direct convolutions (also given the number of
convolutions: a partial Spearman, and within budget terciles), and of the gap against the FSP
loss, and draws one figure per finding. ``robnas supernet analyse`` is its command.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from robnas.errors import ConfigError

#: RobNet code positions of the "direct" edges, per reading (see the module docstring)
DIRECT_EDGES: dict[str, tuple[int, ...]] = {
    "chain": (1, 4, 8, 13),
    "inputs": (0, 1, 2, 3, 5, 6, 9, 10),
}
COLUMNS = (
    "arch",
    "score",
    "clean",
    "gap",
    "fsp",
    "density",
    "convolutions",
    "direct_convolutions",
    "search_score",
)


def rank_statistics(
    x: Sequence[float], y: Sequence[float], bootstrap: int = 1000, seed: int = 0
) -> dict[str, float]:
    """Spearman rho of ``x`` and ``y`` (finite pairs only) with a percentile-bootstrap 95% interval
    (``bootstrap`` resamples of the pairs, each re-ranked) and Kendall tau-b; NaN below 3 pairs.

    >>> r = rank_statistics([1, 2, 3, 4], [1, 3, 2, 4], bootstrap=0)
    >>> round(r["spearman"], 2), r["n"]
    (0.8, 4)
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    n = len(x)
    out = {
        "n": n,
        "spearman": math.nan,
        "spearman_lo": math.nan,
        "spearman_hi": math.nan,
        "kendall": math.nan,
    }
    if n < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return out
    out["spearman"] = float(stats.spearmanr(x, y).statistic)
    out["kendall"] = float(stats.kendalltau(x, y).statistic)
    if bootstrap > 0:
        from robnas.correlate import spearman_interval

        out["spearman_lo"], out["spearman_hi"] = spearman_interval(x, y, bootstrap, seed)
    return out


def architecture_features(arch: Sequence[Sequence[str]], direct: str = "chain") -> dict[str, float]:
    """``density``, ``convolutions`` and ``direct_convolutions`` (both per cell, averaged over
    the cells of a cell-free code) of a RobNet code (cells of 14 two-bit codes)."""
    from robnas.spaces.robnet import density, num_convolutions

    if direct not in DIRECT_EDGES:
        raise ConfigError(f"direct edges must be one of {', '.join(DIRECT_EDGES)}, got {direct!r}")
    edges = DIRECT_EDGES[direct]
    cells = [tuple(cell) for cell in arch]
    return {
        "density": density(tuple(cells)),
        "convolutions": float(np.mean([num_convolutions(c) for c in cells])),
        "direct_convolutions": float(np.mean([sum(c[e][1] == "1" for e in edges) for c in cells])),
    }


def _figure(frame: pd.DataFrame, x: str, y: str, path: Path, title: str, xlabel: str, ylabel: str,
            colour: str | None = None) -> Path:  # fmt: skip
    from robnas.report import plt, save_figure

    fig, ax = plt.subplots(figsize=(5, 4))
    kwargs: dict[str, Any] = {"s": 18}
    if colour is not None:
        kwargs.update(c=frame[colour], cmap="viridis")
    points = ax.scatter(frame[x], 100 * frame[y] if y != "fsp" else frame[y], **kwargs)
    if colour is not None:
        fig.colorbar(points, ax=ax, label=colour.replace("_", " "))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def analyse(
    frame: pd.DataFrame, out: str | Path, score_name: str = "score", bootstrap: int = 1000, seed: int = 0
) -> pd.DataFrame:
    """The three analyses of ``frame`` (:func:`measure_run`): statistics (returned, and written to
    ``out/analysis.csv``), ``out/candidates.csv`` and the figures ``density.png``,
    ``convolutions.png`` and ``fsp_gap.png`` under ``out``."""
    if bootstrap < 0:
        raise ConfigError(f"bootstrap must be >= 0 resamples, got {bootstrap}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out / "candidates.csv", index=False, float_format="%.6g")
    rows = []

    def add(finding: str, x: str, y: str, sub: pd.DataFrame = frame, note: str = "") -> dict[str, float]:
        r = rank_statistics(sub[x], sub[y], bootstrap, seed)
        rows.append({"finding": finding, "x": x, "y": y, "subset": note or "all", **r})
        return r

    r1 = add("1 density", "density", "score")
    add("2 convolutions", "convolutions", "score")
    r2 = add("2 convolutions", "direct_convolutions", "score")
    if len(frame) >= 3 and frame["convolutions"].nunique() > 1:
        from robnas.holdout import partial_spearman

        rows.append(
            {
                "finding": "2 convolutions",
                "x": "direct_convolutions",
                "y": "score",
                "subset": "partial, given convolutions",
                "n": len(frame),
                "spearman": partial_spearman(
                    frame["direct_convolutions"].to_numpy(),
                    frame["score"].to_numpy(),
                    frame["convolutions"].to_numpy(),
                ),
                "spearman_lo": math.nan,
                "spearman_hi": math.nan,
                "kendall": math.nan,
            }
        )
        budget = pd.qcut(frame["convolutions"].rank(method="first"), 3, labels=["small", "medium", "large"])
        for name in ("small", "medium", "large"):
            sub = frame[budget == name]
            add("2 convolutions", "direct_convolutions", "score", sub,
                f"{name} budget ({sub['convolutions'].min():g}-{sub['convolutions'].max():g} convolutions)")  # fmt: skip
    r3 = add("3 FSP", "fsp", "gap")
    table = pd.DataFrame(rows)
    table.to_csv(out / "analysis.csv", index=False, float_format="%.6g")
    label = f"{score_name} accuracy (%)"
    _figure(frame, "density", "score", out / "density.png",
            f"finding 1: rho = {r1['spearman']:.2f} (n={r1['n']})", "architecture density D", label)  # fmt: skip
    _figure(frame, "convolutions", "score", out / "convolutions.png",
            f"finding 2: direct convolutions rho = {r2['spearman']:.2f}", "convolutions per cell", label,
            colour="direct_convolutions")  # fmt: skip
    _figure(frame, "fsp", "gap", out / "fsp_gap.png",
            f"finding 3: rho = {r3['spearman']:.2f} (n={r3['n']})", "FSP loss (inherited weights)",
            f"clean - {score_name} accuracy (points)")  # fmt: skip
    return table


def markdown(table: pd.DataFrame) -> str:
    """The statistics of :func:`analyse` as a markdown table."""

    def num(v: float, d: int = 3) -> str:
        return "nan" if v is None or not math.isfinite(v) else f"{v:.{d}f}"

    lines = [
        "| finding | x | y | subset | n | Spearman [95% CI] | Kendall |",
        "|:--|:--|:--|:--|--:|--:|--:|",
    ]
    for r in table.itertuples():
        ci = f" [{num(r.spearman_lo, 2)}, {num(r.spearman_hi, 2)}]" if math.isfinite(r.spearman_lo) else ""
        lines.append(
            f"| {r.finding} | {r.x} | {r.y} | {r.subset} | {r.n} | {num(r.spearman)}{ci} | {num(r.kendall)} |"
        )
    return "\n".join(lines)


__all__ = [
    "COLUMNS",
    "DIRECT_EDGES",
    "analyse",
    "architecture_features",
    "markdown",
    "rank_statistics",
]
