"""What a predictor is fitted on: proxy values from score files and labels from a benchmark or a CSV.

* Scores: one or more files :func:`robnas.correlate.load_scores` reads (long ``arch,proxy,value``
  CSV, wide CSV, or a run store), merged; each architecture is keyed by its canonical string
  (isomorphic cells share it; the first finite value of each (arch, proxy) is kept).
* Labels: the NAS-Bench-201 robustness dataset folder (its ``meta.json``; the target by the
  :func:`~robnas.benchmarks.robustness.parse_target` grammar, ``fgsm@8``, ``cc_mean``, ...), or a
  CSV ``arch,value`` (e.g. short-training accuracies of a ``train:`` objective in any space).

A label for an architecture without scores is refused: the predictor needs its proxy values.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from robnas import correlate as corr
from robnas.errors import ConfigError, DataError
from robnas.predict.model import Predictor, check_archs, fit
from robnas.spaces.base import SearchSpace


def proxy_table(scores: Sequence[str | Path] | pd.DataFrame, space: SearchSpace) -> pd.DataFrame:
    """Proxy values as a wide table: one row per canonical architecture, one column per proxy
    (columns in order of first appearance; NaN where a file has no finite value)."""
    if isinstance(scores, pd.DataFrame):
        frames = [corr.as_scores(scores)]
    else:
        if not scores:
            raise ConfigError("no scores given (--scores FILE, repeatable)")
        frames = [corr.load_scores(path) for path in scores]
    long = pd.concat(frames, ignore_index=True)
    if long.empty:
        raise DataError("the scores hold no rows")
    canonical = dict(zip(pd.unique(long["arch"]), check_archs(space, list(pd.unique(long["arch"]))), strict=True))
    long = long.assign(arch=long["arch"].map(canonical))
    long = long[np.isfinite(long["value"].to_numpy())].drop_duplicates(["arch", "proxy"])
    proxies = list(dict.fromkeys(pd.concat(frames)["proxy"]))
    wide = long.pivot(index="arch", columns="proxy", values="value")
    return wide.reindex(index=sorted(set(canonical.values())), columns=proxies)


def benchmark_labels(
    folder: str | Path, space: SearchSpace, archs: Sequence[str], target: str, dataset: str = "cifar10"
) -> np.ndarray:
    """The value of ``target`` for each NB201 architecture of ``archs`` in the robustness dataset."""
    from robnas.benchmarks.robustness import RobustnessDataset

    if space.name != "nb201":
        raise ConfigError(f"benchmark labels are NAS-Bench-201 accuracies; the space is {space.name!r}")
    rob = RobustnessDataset(folder)
    return np.asarray(rob.target(list(archs), dataset, target), dtype=np.float64)


def csv_labels(path: str | Path, space: SearchSpace) -> pd.Series:
    """Labels ``arch,value`` from a CSV, by canonical architecture (isomorphic rows averaged)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: labels file not found; expected a CSV with columns arch,value")
    try:
        table = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a readable CSV ({exc}); expected columns arch,value") from None
    if not {"arch", "value"} <= set(table.columns):
        raise DataError(f"{path}: columns {list(table.columns)[:6]}; expected arch,value")
    values = pd.to_numeric(table["value"], errors="coerce")
    if values.isna().any():
        i = int(np.flatnonzero(values.isna().to_numpy())[0])
        raise DataError(f"{path}: value {table['value'].iloc[i]!r} of row {i + 1} is not a number")
    archs = check_archs(space, [str(a) for a in table["arch"]])
    return pd.Series(values.to_numpy(dtype=np.float64), index=archs).groupby(level=0, sort=False).mean()


def fit_files(
    scores: Sequence[str | Path],
    labels: str | Path,
    target: str,
    space: SearchSpace,
    proxies: Sequence[str] | None = None,
    dataset: str = "cifar10",
    archs: Sequence[str] | None = None,
    n: int | None = None,
    seed: int = 0,
    params: dict[str, Any] | None = None,
) -> Predictor:
    """Fit a predictor from score files and labels (a robustness dataset folder or a CSV).

    With the benchmark, the labelled architectures are the scored ones (``archs`` restricts
    them, e.g. to the development half); with a CSV, they are the CSV's, each of which must
    have scores. ``n`` draws that many of them at random (seeded) instead of using all.
    """
    if n is not None and n < 1:
        raise ConfigError(f"n must be >= 1 labelled architectures, got {n}")
    table = proxy_table(scores, space)
    names = list(table.columns) if not proxies else list(proxies)
    missing = [p for p in names if p not in table.columns]
    if missing:
        raise ConfigError(f"proxies {missing} are not in the scores (they have: {', '.join(table.columns)})")
    folder = Path(labels)
    if folder.is_dir():
        chosen = list(table.index)
        if archs is not None:
            wanted = set(check_archs(space, list(archs)))
            chosen = [a for a in chosen if a in wanted]
        y = benchmark_labels(folder, space, chosen, target, dataset) if chosen else np.zeros(0)
        source = f"{folder.name}:{dataset}:{target}"
    else:
        series = csv_labels(folder, space)
        unscored = [a for a in series.index if a not in table.index]
        if unscored:
            raise DataError(
                f"{len(unscored)} of the {len(series)} labelled architectures in {folder} have no scores in "
                f"{', '.join(Path(str(s)).name for s in scores)} (first: {unscored[0]}); score them first "
                "(robnas score) or drop their labels"
            )
        if archs is not None:
            wanted = set(check_archs(space, list(archs)))
            series = series[[a in wanted for a in series.index]]
        chosen, y = list(series.index), series.to_numpy()
        source = f"{folder.name}:{target}"
    if n is not None:
        if n > len(chosen):
            raise ConfigError(f"asked for {n} labels, only {len(chosen)} labelled architectures have scores")
        pick = np.sort(np.random.default_rng(seed).choice(len(chosen), size=n, replace=False))
        chosen, y = [chosen[i] for i in pick], y[pick]
    values = table.loc[chosen, names].to_numpy(dtype=np.float64)
    return fit(space, chosen, y, values, names, target, params=params, seed=seed, label_source=source)


def predict_table(predictor: Predictor, scores: Sequence[str | Path] | pd.DataFrame, space: SearchSpace) -> pd.DataFrame:
    """Predictions for every architecture of the score files: columns ``arch, prediction``
    (best first); architectures lacking one of the predictor's proxies get NaN values there."""
    table = proxy_table(scores, space)
    missing = [p for p in predictor.proxies if p not in table.columns]
    if missing:
        raise ConfigError(f"the predictor needs proxies {missing}, which the scores lack")
    values = table[predictor.proxies].to_numpy(dtype=np.float64)
    out = pd.DataFrame({"arch": table.index, "prediction": predictor.predict(space, list(table.index), values)})
    return out.sort_values("prediction", ascending=False, kind="stable").reset_index(drop=True)
