"""RobNets' three analyses of a finished one-shot search (Guo et al., "When NAS Meets
Robustness", CVPR 2020, Secs. 3.3-3.5; spec ``robnets_wsrnas.md`` A2.3-A2.5).

From the history of a ``robnets`` search run (its candidates and their score, e.g. PGD-20
accuracy after fine-tuning) :func:`measure_run` builds one row per candidate:

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
import types
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from robnas.errors import ConfigError, DataError

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
        idx = np.random.default_rng(seed).integers(0, n, size=(bootstrap, n))
        rx, ry = stats.rankdata(x[idx], axis=1), stats.rankdata(y[idx], axis=1)
        rx -= rx.mean(1, keepdims=True)
        ry -= ry.mean(1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            rho = (rx * ry).sum(1) / np.sqrt((rx**2).sum(1) * (ry**2).sum(1))
        if np.isfinite(rho).any():
            out["spearman_lo"], out["spearman_hi"] = (float(v) for v in np.nanpercentile(rho, [2.5, 97.5]))
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


def _run_record(store: Any, run: str | None, path: Path) -> Any:
    records = [r for r in store.runs() if run is None or r.run == run]
    if run is None:
        records = [r for r in records if r.objective.startswith("oneshot")]
    if not records:
        raise DataError(f"{path}: no {'run ' + run if run else 'one-shot search run'} in this run store")
    return records[-1]


def measure_run(
    store_path: str | Path,
    context: Any,
    run: str | None = None,
    direct: str = "chain",
    clean: bool = True,
    fsp: bool = True,
    eval_images: int | None = None,
) -> pd.DataFrame:
    """One row per scored candidate of a one-shot search run (columns :data:`COLUMNS`).

    ``store_path``: the run store of ``robnas search`` (``--out``); ``run``: its id (default:
    the store's last one-shot run); ``context``: an :class:`robnas.objectives.ObjectiveContext`
    with the run's ``data`` and ``supernet`` (the objective's key must match the run's, so the
    clean accuracies are measured on the same validation images). ``clean``/``fsp``: measure
    the clean accuracy / FSP loss (NaN otherwise). ``eval_images``: measure ``score`` and
    ``clean`` again, on the first ``eval_images`` held-out images (the run's own first), from
    the same fine-tuned weights, when the run scored on too few images to rank; ``search_score``
    keeps the run's own value.
    """
    if eval_images is not None and eval_images < 1:
        raise ConfigError(f"eval_images must be >= 1 held-out images, got {eval_images}")
    from robnas import objectives, spaces
    from robnas.models import load_trained
    from robnas.oneshot.objective import FinetuneObjective, accuracy, parse_target
    from robnas.search.base import make_strategy
    from robnas.search.history import HistoryStore

    path = Path(store_path)
    if not path.is_file():
        raise DataError(f"{path}: run store not found (the --out of robnas search)")
    with HistoryStore(path) as store:
        record = _run_record(store, run, path)
        rows = [r for r in store.history(record.run) if not r.error and math.isfinite(r.value)]
    if not rows:
        raise DataError(f"{path}: run {record.run} has no scored candidate")
    space = spaces.get(record.space)
    spec = record.objective.split("|")[0]
    strategy = make_strategy(record.strategy, record.options)
    prepare = getattr(strategy, "prepare", None)
    if prepare is not None:
        spec = prepare(spec, context, path)
    objective = objectives.make(spec, space, context)
    if objective.key != record.objective:
        raise ConfigError(
            f"run {record.run} was scored as {record.objective!r}; with this --data and --supernet the "
            f"objective is {objective.key!r}: pass the search's own --data and --supernet"
        )
    src = objective.source  # type: ignore[attr-defined]
    archs = [space.parse(r.arch) for r in rows]
    frame = pd.DataFrame(
        {"arch": [r.arch for r in rows], "score": [r.value for r in rows]}
        | {k: [architecture_features(a, direct)[k] for a in archs] for k in COLUMNS[5:8]}
    )
    frame["search_score"] = frame["score"]
    frame["clean"] = math.nan
    val_x, val_y = src.val_x, src.val_y
    if eval_images is not None:
        import dataclasses

        from robnas.oneshot.objective import OneShotSource

        wider = dataclasses.replace(
            context, oneshot={**context.oneshot, "eval_images": int(eval_images)}, _cache={}
        )
        wide = OneShotSource(wider, space)
        val_x, val_y = wide.val_x, wide.val_y
    if clean or eval_images is not None:
        target = parse_target("clean")
        values, scores = [], []
        for arch in archs:
            if isinstance(objective, FinetuneObjective):
                folder = objective.folder(arch)
                last = None if folder is None else folder / "last.pt"
                if last is None or not last.is_file():
                    raise DataError(f"{last}: the fine-tuned checkpoint of {space.format(arch)} is missing")
                model, _ = load_trained(last, src.net.subnet(arch))  # behind its training normalisation
            else:
                model = src.candidate(arch)
            model = model.to(src.device).eval()
            values.append(accuracy(model, val_x, val_y, target, src.batch_size))
            if eval_images is not None:
                scores.append(accuracy(model, val_x, val_y, objective.target, src.batch_size))  # type: ignore[attr-defined]
        frame["clean"] = values
        if eval_images is not None:
            frame["score"] = scores
    frame["gap"] = frame["clean"] - frame["score"]
    recorded = [r.info.get("fsp", math.nan) for r in rows]
    if fsp and not all(math.isfinite(v) for v in recorded) and hasattr(strategy, "fsp_scores"):
        recorded = strategy.fsp_scores(types.SimpleNamespace(objectives=[objective]), archs)
    frame["fsp"] = [float(v) for v in recorded]
    frame = frame.loc[:, list(COLUMNS)]
    frame.attrs["score"] = objective.target.name  # type: ignore[attr-defined]
    return frame


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
    "measure_run",
    "rank_statistics",
]
