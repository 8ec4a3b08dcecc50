"""NAS-Bench-201 after adversarial training: every robnas proxy against every NAS-RobBench-201 target.

NAS-RobBench-201 (Wu et al., ICLR 2024) holds all 6,466 NB201 isomorphism classes after PGD-7
adversarial training, on CIFAR-10, CIFAR-100 and ImageNet16-120: clean, FGSM and PGD at 3/255 and
8/255, AutoAttack at 8/255. This script ranks the committed full sweep of robnas proxies
(``nb201_cifar10_full_scores.csv.gz``: every class, 19 proxies, one batch of 8 real CIFAR-10
images) against each of those 18 targets, on the test half of ``nb201_split.json`` and on all
classes, for both populations (each class once; classes weighted by their NB201 strings):
Spearman with a bootstrap 95% interval, partial Spearman given log(params) (with its interval),
Kendall tau-b, top-10% and top-1% precision. A reference row (not a proxy) gives NB201's own
200-epoch test accuracy after standard training on the same dataset.

    python benchmarks/nb201_adversarial_training.py

writes ``benchmarks/results/nb201_adversarial_training.md`` and ``.csv``; rerun it after any
proxy is re-scored in the sweep (``--scores`` takes other score files; several are merged, a
later file's (arch, proxy) rows replacing an earlier one's).
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from robnas import benchmarks, holdout
from robnas import correlate as corr

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
SHARED = ROOT.parent / "shared" / "data"
DATASETS = ("cifar10", "cifar100", "imagenet16-120")
NB201_DATASET = {"cifar10": "cifar10", "cifar100": "cifar100", "imagenet16-120": "ImageNet16-120"}
HALVES = ("test", "all")
REFERENCE = "reference: NB201 test accuracy (standard training, 200 epochs)"
COLUMNS = [
    "dataset", "target", "proxy", "population", "half", "n", "spearman", "spearman_lo", "spearman_hi",
    "partial", "partial_lo", "partial_hi", "kendall", "top10_precision", "top1_precision",
]


def load_scores(paths: list[Path]) -> pd.DataFrame:
    """The long arch,proxy,value table of several score files, later files replacing earlier rows."""
    tables = [corr.as_scores(p) for p in paths]
    merged = pd.concat(tables, ignore_index=True).drop_duplicates(["arch", "proxy"], keep="last")
    return merged.sort_values(["proxy", "arch"], kind="stable").reset_index(drop=True)


def reference_scores(bench: benchmarks.NASRobBench201, nb201_path: Path, dataset: str) -> pd.DataFrame:
    """NB201's standard-training 200-epoch test accuracy of each class's representative, as a score row."""
    table = benchmarks.open("nb201", nb201_path)
    indices = [int(k) for k in bench.keys]
    values = np.asarray(table.accuracy(NB201_DATASET[dataset], "test", "200", indices=indices), dtype=float)
    return pd.DataFrame({"arch": [bench.arch_strings[i] for i in indices], "proxy": REFERENCE, "value": values})


def in_half(scores: pd.DataFrame, bench: benchmarks.NASRobBench201, split: holdout.Split, half: str) -> pd.DataFrame:
    chosen = split.half(half)
    classes = {a: bench.isomorph(a) for a in pd.unique(scores["arch"])}
    return scores[[classes[a] in chosen for a in scores["arch"]]]


def fmt(v: float, digits: int = 3) -> str:
    return "nan" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def grid(table: pd.DataFrame, rows: list[str], targets: list[str], metric: str, both: bool) -> list[str]:
    """Proxies x targets of ``metric``: ``classes (strings)`` per cell when ``both``."""
    cls = table[table.population == "classes"].set_index(["proxy", "target"])[metric]
    strs = table[table.population == "strings"].set_index(["proxy", "target"])[metric]
    lines = ["| proxy | " + " | ".join(targets) + " |", "|:--|" + "--:|" * len(targets)]
    for p in rows:
        cells = [fmt(cls[(p, t)]) + (f" ({fmt(strs[(p, t)])})" if both else "") for t in targets]
        lines.append(f"| {p} | " + " | ".join(cells) + " |")
    return lines


def detail(table: pd.DataFrame, rows: list[str], target: str) -> list[str]:
    """One target, both populations: Spearman [CI], partial [CI], Kendall, top-10%, top-1%."""
    lines = [
        "| proxy | population | n | Spearman [95% CI] | partial given log(params) [95% CI] | Kendall | top-10% | top-1% |",
        "|:--|:--|--:|--:|--:|--:|--:|--:|",
    ]
    sub = table[table.target == target].set_index(["proxy", "population"])
    for p in rows:
        for pop in ("classes", "strings"):
            r = sub.loc[(p, pop)]
            lines.append(
                f"| {p} | {pop} | {int(r.n)} | {fmt(r.spearman)} [{fmt(r.spearman_lo)}, {fmt(r.spearman_hi)}] | "
                f"{fmt(r.partial)} [{fmt(r.partial_lo)}, {fmt(r.partial_hi)}] | {fmt(r.kendall)} | "
                f"{fmt(r.top10_precision, 2)} | {fmt(r.top1_precision, 2)} |"
            )
    return lines


def dataset_table(
    dataset: str, scores: pd.DataFrame, bench_dir: Path, nb201: Path, split_path: Path, targets: list[str], bootstrap: int
) -> pd.DataFrame:
    """Every statistic of one dataset (its own process: the datasets are independent and seeded)."""
    bench = benchmarks.open("nas-robbench-201", bench_dir)
    split = holdout.load_split(split_path)
    data = pd.concat([scores, reference_scores(bench, nb201, dataset)], ignore_index=True)
    stats = holdout.evaluate(data, bench, split, targets, dataset=dataset, halves=HALVES, bootstrap=bootstrap, seed=0)
    ranks = []
    for half in HALVES:
        r = corr.correlate(in_half(data, bench, split, half), bench, dataset, targets,
                           population=("classes", "strings"), bootstrap=0)
        ranks.append(r.assign(half=half)[["proxy", "target", "population", "half", "kendall",
                                          "top10_precision", "top1_precision"]])
    merged = stats.merge(pd.concat(ranks), on=["proxy", "target", "population", "half"], how="left")
    return merged.assign(dataset=dataset)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scores", action="append", type=Path, default=None,
                    help="score file (repeatable; default: the committed full sweep)")
    ap.add_argument("--benchmark", type=Path, default=SHARED / "nas_robbench201", help="NAS-RobBench-201 folder")
    ap.add_argument("--nb201", type=Path, default=SHARED / "nb201" / "nb201_merged_by_index.csv",
                    help="NB201 table for the reference row")
    ap.add_argument("--split", type=Path, default=RESULTS / "nb201_split.json")
    ap.add_argument("--bootstrap", type=int, default=1000)
    ap.add_argument("--out", type=Path, default=RESULTS / "nb201_adversarial_training.md")
    ap.add_argument("--workers", type=int, default=3, help="processes, one dataset each (the results do not depend on it)")
    args = ap.parse_args(argv)
    args.scores = args.scores or [RESULTS / "nb201_cifar10_full_scores.csv.gz"]
    started = time.perf_counter()
    load_before = os.getloadavg()[0]

    bench = benchmarks.open("nas-robbench-201", args.benchmark)
    split = holdout.load_split(args.split)
    scores = load_scores(args.scores)
    proxies = list(dict.fromkeys(scores["proxy"]))
    if "params" not in proxies:
        raise SystemExit("the scores need a params column: the partial Spearman is given log(params)")
    targets = bench.target_names("cifar10")
    jobs = [(dataset, scores, args.benchmark, args.nb201, args.split, targets, args.bootstrap) for dataset in DATASETS]
    with ProcessPoolExecutor(max_workers=min(args.workers, len(jobs))) as pool:
        parts = list(pool.map(dataset_table, *zip(*jobs, strict=True)))
    print(f"done after {time.perf_counter() - started:.0f} s", file=sys.stderr)
    result = pd.concat(parts, ignore_index=True)[COLUMNS]
    out = args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    result.to_csv(out.with_suffix(".csv"), index=False, float_format="%.6g")

    rows = [*proxies, REFERENCE]
    test = result[result.half == "test"]
    c10 = test[(test.dataset == "cifar10") & (test.population == "classes")].set_index(["proxy", "target"])
    best = {t: max(proxies, key=lambda p, t=t: c10.loc[(p, t), "spearman"]) for t in targets}
    best_top1 = max(proxies, key=lambda p: c10.loc[(p, "pgd@8"), "top1_precision"])
    command = "python benchmarks/nb201_adversarial_training.py"
    if args.scores != [RESULTS / "nb201_cifar10_full_scores.csv.gz"]:
        command += "".join(f" --scores {p}" for p in args.scores)
    if args.bootstrap != 1000:
        command += f" --bootstrap {args.bootstrap}"
    n_test = int(c10.loc[("params", "clean"), "n"])
    lines = [
        "# NAS-Bench-201 after adversarial training: robnas proxies against NAS-RobBench-201",
        "",
        f"Command: `{command}` (reads `{', '.join(p.name for p in args.scores)}`, `{args.split.name}`, "
        "`../shared/data/nas_robbench201/` and, for the reference row, `../shared/data/nb201/nb201_merged_by_index.csv`).",
        "",
        "Ground truth: NAS-RobBench-201 (Wu, Liu, Simon-Gabriel, Chrysos and Cevher, ICLR 2024): every NB201 "
        "isomorphism class after PGD-7 adversarial training (eps 8/255, 50 epochs), accuracies on clean images, "
        "FGSM and PGD at 3/255 and 8/255, and AutoAttack at 8/255 (`aa@8`). Proxies: the full sweep of robnas "
        f"proxies ({len(proxies)}), each network scored once on one batch of 8 real **CIFAR-10** training images "
        "(see `nb201_cifar10_full.md`). **The CIFAR-100 and ImageNet16-120 columns rank those same CIFAR-10 "
        "scores**: no proxy was computed on a CIFAR-100 or ImageNet16-120 batch, so they measure how CIFAR-10 "
        "proxy batches transfer to the other datasets' robustness.",
        "",
        f"Halves: `test` = the {n_test} scored classes of the test half of `{args.split.name}` (seed {split.seed}; "
        "nothing here was tuned on them), `all` = every scored class. Populations: `classes` (each class once) "
        "and `strings` (each class weighted by its number of NB201 strings, what a uniform sampler over "
        "strings sees). Cells read `classes (strings)`. Spearman intervals: percentile bootstrap over classes, "
        f"{args.bootstrap} resamples. Partial Spearman: the rank correlation left after regressing both ranks "
        "on the ranks of params (= of log(params)): does the proxy know more than the network's size? Top-k% "
        "precision: the share of a proxy's top k% that is in the target's top k%. Proxies with NaN scores lose "
        "those classes (n in the CSV). The reference row is NB201's own test accuracy after standard training "
        "(mean over seeds) of each class's representative on the same dataset: not a proxy, an upper mark for "
        "what clean accuracy explains.",
        "",
        "Reading (CIFAR-10, test half, classes): best Spearman per target "
        + ", ".join(f"{t} {best[t]} {fmt(c10.loc[(best[t], t), 'spearman'])}" for t in targets)
        + f"; params on pgd@8 {fmt(c10.loc[('params', 'pgd@8'), 'spearman'])}; the reference "
        f"{fmt(c10.loc[(REFERENCE, 'pgd@8'), 'spearman'])}. Top-1% precision on pgd@8: best {best_top1} "
        f"{fmt(c10.loc[(best_top1, 'pgd@8'), 'top1_precision'], 2)}"
        + (f", robust_zc {fmt(c10.loc[('robust_zc', 'pgd@8'), 'top1_precision'], 2)}" if "robust_zc" in proxies else "")
        + f", params {fmt(c10.loc[('params', 'pgd@8'), 'top1_precision'], 2)}.",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs shared; load average {load_before:.1f} at the start; "
        f"wall time {time.perf_counter() - started:.0f} s. All figures with intervals: `{out.with_suffix('.csv').name}`.",
        "",
    ]
    for dataset in DATASETS:
        note = "" if dataset == "cifar10" else " (proxies from CIFAR-10 batches)"
        sub = result[result.dataset == dataset]
        t_half, a_half = sub[sub.half == "test"], sub[sub.half == "all"]
        lines += [
            f"## {dataset}{note}",
            "",
            "### Spearman, test half: classes (strings)",
            "",
            *grid(t_half, rows, targets, "spearman", True),
            "",
            "### Spearman, all classes: classes (strings)",
            "",
            *grid(a_half, rows, targets, "spearman", True),
            "",
            "### Partial Spearman given log(params), test half: classes (strings)",
            "",
            *grid(t_half[t_half.proxy != "params"], [p for p in rows if p != "params"], targets, "partial", True),
            "",
            "### Kendall tau-b, test half: classes (strings)",
            "",
            *grid(t_half, rows, targets, "kendall", True),
            "",
            "### Top-1% precision, test half: classes (strings)",
            "",
            *grid(t_half, rows, targets, "top1_precision", True),
            "",
            "### pgd@8 in detail, test half",
            "",
            *detail(t_half, rows, "pgd@8"),
            "",
        ]
    out.write_text("\n".join(lines))
    print("\n".join(lines[:20]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
