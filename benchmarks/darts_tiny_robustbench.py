"""Every registered proxy against Tiny-RobustBench: DARTS-space networks after adversarial training.

Tiny-RobustBench (Feng et al., ICLR 2025) trained each of its DARTS-space networks (C=16, 8 cells)
with PGD-7 adversarial training on CIFAR-10; ``robnas.benchmarks.open("tiny-robustbench", DIR)``
reads its JSON lists. This script scores every registered proxy on every listed network, built as
the dataset trained it (the entry's ``C``, ``layers``, head and drop-path settings), on one batch of
32 real CIFAR-10 training images (seed 0; the network initialised from ``stable_seed(0, arch)``),
into a resumable run store, then writes Kendall tau and Spearman rho against ``pgd@8`` and
``clean`` with percentile-bootstrap 95% intervals (1,000 resamples of the networks).

Commands (the scoring is long on 2 shared CPU cores: run it under nice, in the background)::

    nice -n 10 env OMP_NUM_THREADS=1 python benchmarks/darts_tiny_robustbench.py score \\
        --store runs/darts_tiny_robustbench.sqlite [--import benchmarks/results/darts_tiny_robustbench_scores.csv]
    python benchmarks/darts_tiny_robustbench.py table --store runs/darts_tiny_robustbench.sqlite

``score`` can be rerun at any time (finished pairs are skipped) and exports the store to
``benchmarks/results/darts_tiny_robustbench_scores.csv``; ``table`` reads that CSV when no store
is given, and writes ``benchmarks/results/darts_tiny_robustbench.md`` and ``.csv``.
"""

from __future__ import annotations

import argparse
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

import robnas
from robnas import benchmarks, correlate, predict, proxies, scoring, spaces
from robnas.benchmarks.tiny_robustbench import TinyRobustBench
from robnas.data import ImageArrays, load
from robnas.store import RunStore, ScoreRow

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
BENCH = DATA / "tiny_robustbench"
IMAGES = DATA / "cifar10" / "cifar10_exact_subset.npz"
RESULTS = ROOT / "benchmarks" / "results"
SCORES = RESULTS / "darts_tiny_robustbench_scores.csv"
TABLE = RESULTS / "darts_tiny_robustbench.md"
BATCH = 32
SEED = 0
TARGETS = ("pgd@8", "clean")
BOOTSTRAP = 1000


def settings(bench: benchmarks.TinyRobustBench) -> dict[str, list[str]]:
    """The benchmark's genotypes grouped by the network settings they were trained with."""
    groups: dict[str, list[str]] = {}
    for key in bench.keys:
        options = bench.build_options(key)
        groups.setdefault(repr(sorted(options.items())), []).append(key)
    return groups


def import_scores(run: RunStore, path: Path, data: ImageArrays, bench: TinyRobustBench) -> int:
    """Add the rows of a scores CSV this script exported (same seed, batch and images) that the
    store lacks, each under its network's settings, so that ``score`` computes only the missing
    pairs; returns how many were added."""
    table = pd.read_csv(path, keep_default_na=False, na_values=[""])
    missing = {"arch", "proxy", "value", "seconds", "seed", "batch_size", "error"} - set(table.columns)
    if missing:
        raise SystemExit(f"{path}: not a scores CSV of this script (missing columns {sorted(missing)})")
    table = table[(table["seed"] == SEED) & (table["batch_size"] == BATCH)]
    tags = {arch: scoring.data_tag_of(data, build_options=bench.build_options(arch)) for arch in set(table["arch"])}
    done = {tag: run.done(SEED, BATCH, tag) for tag in set(tags.values())}
    rows = [
        ScoreRow(r.arch, r.proxy, float(r.value), float(r.seconds), SEED, BATCH,
                 r.error if isinstance(r.error, str) else "", tags[r.arch], robnas.__version__)
        for r in table.itertuples()
        if (r.arch, r.proxy) not in done[tags[r.arch]]
    ]
    run.add_many(rows)
    return len(rows)


def score(
    store: Path, bench_dir: Path, names: Sequence[str], images: Path, workers: int, imports: Sequence[Path] = ()
) -> None:
    bench = benchmarks.open("tiny-robustbench", bench_dir)
    data = load(str(images), "train")
    with RunStore(store) as run:
        for path in imports:
            print(f"imported {import_scores(run, path, data, bench)} rows of {path}", flush=True)
        for keys in settings(bench).values():
            options = bench.build_options(keys[0])
            print(f"{len(keys)} networks with {options}, proxies {', '.join(names)}", flush=True)
            scoring.score(
                "darts",
                keys,
                list(names),
                data,
                run,
                batch_size=BATCH,
                seed=SEED,
                workers=workers,
                build_options=options,
                progress=lambda n, total=len(keys): print(f"  {n}/{total}", flush=True),
            )
        run.export_csv(SCORES)
    print(f"wrote {SCORES}")


def kendall_interval(x: np.ndarray, y: np.ndarray, counts: np.ndarray) -> tuple[float, float]:
    """Percentile-bootstrap 95% interval of Kendall tau-b (each resample re-ranked; ``counts`` from
    :func:`robnas.correlate.resample_counts`); ``robnas correlate`` gives Kendall without one."""
    boot = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a resample may repeat one network: no correlation there
        for c in counts:
            i = np.repeat(np.arange(len(x)), c.astype(np.int64))
            boot.append(stats.kendalltau(x[i], y[i]).statistic)
    finite = np.asarray(boot)[np.isfinite(boot)]
    if finite.size == 0:
        return float("nan"), float("nan")
    lo, hi = np.percentile(finite, [2.5, 97.5])
    return float(lo), float(hi)


def correlations(scores: pd.DataFrame, bench: benchmarks.TinyRobustBench, bootstrap: int = BOOTSTRAP) -> pd.DataFrame:
    """One row per (proxy, target): ``robnas.correlate.correlate`` (n, Spearman with its bootstrap
    interval, Kendall, top-10% precision) plus a bootstrap interval of Kendall."""
    result = correlate.correlate(scores, bench, targets=list(TARGETS), bootstrap=bootstrap, seed=0)
    wide = predict.proxy_table(scores, spaces.get("darts"))
    wide = wide.loc[[a for a in wide.index if a in set(bench.keys)]]
    lo, hi = [], []
    for row in result.itertuples():
        values = wide[row.proxy].to_numpy(dtype=np.float64)
        keep = np.isfinite(values)
        truth = bench.target_values("cifar10", row.target)[bench.rows(list(wide.index[keep]))]
        if keep.sum() < 3:
            lo.append(float("nan"))
            hi.append(float("nan"))
            continue
        a, b = kendall_interval(values[keep], truth, correlate.resample_counts(int(keep.sum()), bootstrap, seed=0))
        lo.append(a)
        hi.append(b)
    return result.assign(kendall_lo=lo, kendall_hi=hi)


def table(scores_path: Path, bench_dir: Path) -> None:
    bench = benchmarks.open("tiny-robustbench", bench_dir)
    # sorted: the bootstrap intervals do not depend on the order the store kept the rows in
    scores = correlate.load_scores(scores_path).sort_values(["arch", "proxy"], kind="stable", ignore_index=True)
    result = correlations(scores, bench)
    order = (
        result[result["target"] == "pgd@8"].sort_values("kendall", ascending=False)["proxy"].tolist()
    )
    result["proxy"] = pd.Categorical(result["proxy"], categories=order, ordered=True)
    result = result.sort_values(["target", "proxy"], ascending=[False, True])
    result.to_csv(TABLE.with_suffix(".csv"), index=False, float_format="%.4f")
    wide = predict.proxy_table(scores, spaces.get("darts"))
    raw = pd.read_csv(scores_path) if scores_path.suffix == ".csv" else None
    seconds = raw.groupby("proxy")["seconds"].median() if raw is not None and "seconds" in raw else None
    adv = bench.target_values("cifar10", "pgd@8")
    lines = [
        "# Proxies against Tiny-RobustBench (DARTS space, after adversarial training)",
        "",
        "Commands: `nice -n 10 env OMP_NUM_THREADS=1 python benchmarks/darts_tiny_robustbench.py score "
        "--store runs/darts_tiny_robustbench.sqlite`, then `python benchmarks/darts_tiny_robustbench.py table` "
        f"(scores: `{SCORES.relative_to(ROOT)}`).",
        "",
        f"Networks: the {len(bench)} Tiny-RobustBench architectures of `../shared/data/tiny_robustbench` "
        "(Feng et al., ICLR 2025; two of the four published files), each built as the dataset trained it "
        f"({', '.join(f'{k}={v}' for k, v in bench.build_options(0).items())}), initialised from "
        f"`stable_seed({SEED}, arch)`. Proxy batch: {BATCH} real CIFAR-10 training images "
        f"(`cifar10_exact_subset.npz`, seed {SEED}). Targets (fractions): `pgd@8`, best test accuracy under "
        "PGD-7 at eps 8/255 after PGD-7 adversarial training (105 epochs), spanning "
        f"{adv.min():.4f}-{adv.max():.4f}; `clean`, best clean test accuracy. Kendall tau-b and Spearman rho "
        f"with percentile-bootstrap 95% intervals ({BOOTSTRAP} resamples of the networks; Spearman, n and top-10% "
        "precision from `robnas.correlate.correlate` (its fixed-ranks bootstrap), Kendall's interval re-ranks "
        "each resample). "
        f"`n`: networks with a finite value (of {len(bench)}); proxies registered: {len(proxies.names())}, "
        f"scored: {wide.shape[1]}.",
        "",
        "| proxy | n | Kendall pgd@8 | Spearman pgd@8 | Kendall clean | Spearman clean | median s |",
        "|:--|--:|--:|--:|--:|--:|--:|",
    ]
    by = result.set_index(["proxy", "target"])
    for proxy in order:
        adv_row, clean_row = by.loc[(proxy, "pgd@8")], by.loc[(proxy, "clean")]

        def cell(row: pd.Series, stat: str) -> str:
            return f"{row[stat]:.3f} ({row[stat + '_lo']:.3f} to {row[stat + '_hi']:.3f})"

        sec = f"{seconds[proxy]:.2f}" if seconds is not None and proxy in seconds else ""
        lines.append(
            f"| {proxy} | {int(adv_row['n'])} | {cell(adv_row, 'kendall')} | {cell(adv_row, 'spearman')} | "
            f"{cell(clean_row, 'kendall')} | {cell(clean_row, 'spearman')} | {sec} |"
        )
    short = {p: int(by.loc[(p, "pgd@8")]["n"]) for p in order if int(by.loc[(p, "pgd@8")]["n"]) < len(bench)}
    if short:
        lines += [
            "",
            f"Not yet scored on every network: {', '.join(f'{p} ({n})' for p, n in short.items())}; their "
            "figures are over those networks only. The `score` step resumes where it stopped; rerun it, then "
            "`table`, to complete them.",
        ]
    clean = bench.target_values("cifar10", "clean")
    lines += [
        "",
        f"The networks' own trained clean accuracy ranks `pgd@8` at Kendall "
        f"{stats.kendalltau(clean, adv).statistic:.3f} (Spearman {stats.spearmanr(clean, adv).statistic:.3f}).",
        "Seconds are medians per network on 2 shared CPU cores (load average "
        f"{os.getloadavg()[0]:.1f} when the table was written; scoring ran beside other jobs).",
        "",
    ]
    TABLE.write_text("\n".join(lines))
    print(f"wrote {TABLE} and {TABLE.with_suffix('.csv')}")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="step", required=True)
    s = sub.add_parser("score", help="score every proxy into a run store (resumable)")
    s.add_argument("--store", type=Path, default=ROOT / "runs" / "darts_tiny_robustbench.sqlite")
    s.add_argument("--proxies", default=",".join(proxies.names()))
    s.add_argument("--bench", type=Path, default=BENCH)
    s.add_argument("--images", type=Path, default=IMAGES)
    s.add_argument("--workers", type=int, default=1)
    s.add_argument("--import", dest="imports", type=Path, action="append", default=[],
                   help="a scores CSV this script exported: its rows count as done (repeatable)")
    t = sub.add_parser("table", help="write the table from the scores")
    t.add_argument("--store", type=Path, default=None, help="run store (default: the exported scores CSV)")
    t.add_argument("--bench", type=Path, default=BENCH)
    args = parser.parse_args(argv)
    if args.step == "score":
        score(args.store, args.bench, [p for p in args.proxies.split(",") if p], args.images, args.workers, args.imports)
    else:
        if args.store is not None:
            with RunStore(args.store) as run:
                run.export_csv(SCORES)
        table(SCORES, args.bench)


if __name__ == "__main__":
    main()
