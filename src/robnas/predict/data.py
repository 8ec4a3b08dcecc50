"""What a predictor is fitted on: proxy values from score files and labels from a benchmark or a CSV.

* Scores: one or more files :func:`robnas.correlate.load_scores` reads (long ``arch,proxy,value``
  CSV, wide CSV, or a run store), merged; each architecture is keyed by its canonical string
  (isomorphic cells share it; the first finite value of each (arch, proxy) is kept).
* Labels: a benchmark of :mod:`robnas.benchmarks` (``NAME:PATH``, e.g.
  ``tiny-robustbench:DIR``, or a reader object; the target in the one target grammar,
  ``pgd@8``, ``fgsm@8``, ``cc_mean``, ...), the NAS-Bench-201 robustness dataset folder (the
  same as ``robustness:DIR``), or a CSV ``arch,value`` (e.g. short-training accuracies of a
  ``train:`` objective in any space).

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


def open_benchmark(spec: Any) -> Any:
    """A benchmark reader from ``NAME:PATH`` (``tiny-robustbench:DIR``), a robustness dataset
    folder (``robustness:DIR``) or a reader object (returned as it is)."""
    from robnas import benchmarks

    if not isinstance(spec, (str, Path)):
        return spec
    text = str(spec)
    name, sep, path = text.partition(":")
    if sep and name in benchmarks.names():
        return benchmarks.open(name, path)
    if Path(text).is_dir():
        return benchmarks.open("robustness", text)
    raise ConfigError(
        f"benchmark {text!r}: expected NAME:PATH with NAME one of {', '.join(benchmarks.names())} "
        "(e.g. tiny-robustbench:data/tiny_robustbench)"
    )


def score_settings(scores: Sequence[str | Path]) -> dict[str, Any]:
    """``batch_size`` and ``seed`` of the score files (run stores, or CSVs with those columns),
    where every row agrees on them; ``{}`` where they are unknown or mixed."""
    import sqlite3

    pairs: set[tuple[int, int]] = set()
    for path in scores:
        path = Path(path)
        try:
            with path.open("rb") as fh:
                head = fh.read(16)
            if head == b"SQLite format 3\x00":
                with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
                    pairs |= set(db.execute("SELECT DISTINCT batch_size, seed FROM results").fetchall())
                continue
            table = pd.read_csv(path)
        except (OSError, sqlite3.DatabaseError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError):
            return {}
        if not {"batch_size", "seed"} <= set(table.columns):
            return {}
        pairs |= set(table[["batch_size", "seed"]].drop_duplicates().itertuples(index=False, name=None))
    if len(pairs) != 1:
        return {}
    ((batch_size, seed),) = pairs
    return {"batch_size": int(batch_size), "seed": int(seed)}


def benchmark_space(bench: Any) -> str:
    """The search space a benchmark's architectures belong to (``nb201`` for the robustness dataset)."""
    return str(getattr(bench, "space", "nb201"))


def benchmark_labels(
    bench: Any, space: SearchSpace, archs: Sequence[str], target: str, dataset: str = "cifar10"
) -> np.ndarray:
    """The value of ``target`` for each architecture of ``archs`` in the benchmark ``bench``
    (a reader or what :func:`open_benchmark` opens)."""
    reader = open_benchmark(bench)
    if benchmark_space(reader) != space.name:
        raise ConfigError(
            f"the benchmark's architectures are {benchmark_space(reader)!r} ones; the space is {space.name!r}"
        )
    return np.asarray(reader.target_values(dataset, target)[reader.rows(list(archs))], dtype=np.float64)


def listed(bench: Any, archs: Sequence[str]) -> list[str]:
    """Those of ``archs`` the benchmark has a value for."""
    out = []
    for a in archs:
        try:
            bench.rows([a])
        except DataError:
            continue
        out.append(a)
    return out


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


def is_labels_csv(labels: Any) -> bool:
    """Whether ``labels`` names a CSV ``arch,value`` (a path that is neither a folder nor ``NAME:PATH``)."""
    from robnas import benchmarks

    if not isinstance(labels, (str, Path)) or Path(labels).is_dir():
        return False
    name, sep, _ = str(labels).partition(":")
    return not (isinstance(labels, str) and sep and name in benchmarks.names())


def fit_files(
    scores: Sequence[str | Path],
    labels: Any,
    target: str,
    space: SearchSpace,
    proxies: Sequence[str] | None = None,
    dataset: str = "cifar10",
    archs: Sequence[str] | None = None,
    n: int | None = None,
    seed: int = 0,
    params: dict[str, Any] | None = None,
    scoring: dict[str, Any] | None = None,
) -> Predictor:
    """Fit a predictor from score files and labels: a benchmark (``NAME:PATH``, a reader, or a
    robustness dataset folder) or a CSV ``arch,value``.

    With a benchmark, the labelled architectures are the scored ones it lists (``archs``
    restricts them, e.g. to the development half); with a CSV, they are the CSV's, each of which
    must have scores. ``n`` draws that many of them at random (seeded) instead of using all.
    ``scoring`` records how the scores were computed (``batch_size``, ``seed``,
    ``build_options``) for ``predict apply --archs``.
    """
    if n is not None and n < 1:
        raise ConfigError(f"n must be >= 1 labelled architectures, got {n}")
    table = proxy_table(scores, space)
    names = list(table.columns) if not proxies else list(proxies)
    missing = [p for p in names if p not in table.columns]
    if missing:
        raise ConfigError(f"proxies {missing} are not in the scores (they have: {', '.join(table.columns)})")
    if not is_labels_csv(labels):
        bench = open_benchmark(labels)
        chosen = listed(bench, list(table.index))
        if not chosen:
            raise DataError(f"none of the {len(table)} scored architectures is listed in {bench!r}")
        if archs is not None:
            wanted = set(check_archs(space, list(archs)))
            chosen = [a for a in chosen if a in wanted]
        y = benchmark_labels(bench, space, chosen, target, dataset) if chosen else np.zeros(0)
        name = Path(str(getattr(bench, "root", getattr(bench, "path", labels)))).name
        source = f"{name}:{dataset}:{target}"
    else:
        folder = Path(labels)
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
    return fit(
        space, chosen, y, values, names, target, params=params, seed=seed, label_source=source, scoring=scoring
    )


def predict_table(predictor: Predictor, scores: Sequence[str | Path] | pd.DataFrame, space: SearchSpace) -> pd.DataFrame:
    """Predictions for every architecture of the score files: columns ``arch, value``
    (the predicted target, best first); architectures lacking one of the predictor's proxies get
    NaN values there."""
    table = proxy_table(scores, space)
    missing = [p for p in predictor.proxies if p not in table.columns]
    if missing:
        raise ConfigError(f"the predictor needs proxies {missing}, which the scores lack")
    values = table[predictor.proxies].to_numpy(dtype=np.float64)
    out = pd.DataFrame({"arch": table.index, "value": predictor.predict(space, list(table.index), values)})
    return out.sort_values("value", ascending=False, kind="stable").reset_index(drop=True)


def score_and_predict(
    predictor: Predictor,
    space: SearchSpace,
    candidates: Sequence[str],
    images: Any,
    store: str | Path | None = None,
    build_options: dict[str, Any] | None = None,
    batch_size: int | None = None,
    seed: int | None = None,
    device: str = "cpu",
) -> pd.DataFrame:
    """Compute the predictor's proxies on ``candidates`` (architecture texts) and rank them:
    ``arch, value`` (the predicted target), best first, one row per canonical architecture.

    ``images``: the :class:`robnas.data.ImageArrays` the proxy batch is drawn from. Build options,
    batch size and seed default to the predictor's record (``predictor.scoring``; then 64 and 0),
    ``build_options`` overriding it key by key. ``store``: a run store that keeps the scores
    (resumable); only this run's rows are read from it, so a store that also holds the same
    networks under other settings (seed, batch, data, build options) does not mix them in.
    """
    import tempfile

    from robnas import scoring
    from robnas.store import RunStore

    record = predictor.scoring
    build = {**record.get("build_options", {}), **(build_options or {})}
    batch_size = batch_size or int(record.get("batch_size", 64))
    seed = int(record.get("seed", 0)) if seed is None else seed
    tag = scoring.data_tag_of(images, build_options=build)
    with tempfile.TemporaryDirectory() as tmp, RunStore(store or Path(tmp) / "scores.sqlite") as run:
        scoring.score(
            space.name, candidates, predictor.proxies, images, run,
            batch_size=batch_size, seed=seed, device=device, build_options=build,
        )  # fmt: skip
        rows = [(r.arch, r.proxy, r.value) for r in run.rows() if (r.seed, r.batch_size, r.data) == (seed, batch_size, tag)]
    table = predict_table(predictor, pd.DataFrame(rows, columns=["arch", "proxy", "value"]), space)
    wanted = {space.canonical_string(a) for a in candidates}
    return table[table["arch"].isin(wanted)].reset_index(drop=True)
