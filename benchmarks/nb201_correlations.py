"""The NB201 CIFAR-10 correlation table: every robnas proxy against the robustness dataset.

Scores ``--archs`` NAS-Bench-201 architectures (one per isomorphism class, drawn with
``--seed``) with every registered proxy on one batch of ``--batch-size`` real CIFAR-10
training images (CRoZe's protocol: the same batch of 8 for every proxy), then correlates the
scores with the CIFAR-10 robustness data and writes
``benchmarks/results/nb201_cifar10_correlations.md`` and ``nb201_cifar10_scores.csv``.
Resumable: the scores live in a run store and a rerun only computes what is missing.

    python benchmarks/nb201_correlations.py --archs 1000 --workers 2

The full sweep (every one of the 6,466 classes; the 1,000 above are a subset, so their rows can
be imported instead of computed again), on a Ray cluster, resumable across days:

    python benchmarks/nb201_correlations.py --archs all --name nb201_cifar10_full \
        --import benchmarks/results/nb201_cifar10_scores.csv \
        --import benchmarks/results/nb201_cifar10_robust_zc_scores.csv \
        --backend ray --address auto --workers 64

``--name`` sets the output files: ``NAME.md`` (``nb201_cifar10_correlations.md`` by default),
``NAME_scores.csv.gz`` and ``NAME.csv`` (correlations with intervals), and the run store
``runs/NAME.sqlite``. On a fresh machine, ``--import benchmarks/results/NAME_scores.csv.gz``
continues a sweep from its committed scores.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

import robnas
from robnas import correlate, demo, scoring
from robnas.benchmarks.robustness import RobustnessDataset
from robnas.store import RunStore, ScoreRow

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
RESULTS = Path(__file__).resolve().parent / "results"
TARGETS = [
    "clean", "fgsm@1", "fgsm@4", "fgsm@8", "pgd@1", "pgd@8", "apgd@1", "apgd@8", "square@1", "square@8",
    "hrs_fgsm@8", "croze_weather", "croze_noise", "croze_blur", "croze_digital", "croze_mean15",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--archs", default="1000", help="how many classes, or 'all' (6,466)")
    parser.add_argument("--proxies", default=",".join(robnas.proxies.names()))
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--data", type=Path, default=SHARED / "cifar10" / "cifar10_exact_subset.npz")
    parser.add_argument("--robustness", type=Path, default=SHARED / "robustness")
    parser.add_argument("--store", type=Path, default=None, help="run store (default: runs/NAME.sqlite)")
    parser.add_argument("--ensemble", action="append", default=["croze+synflow+nwot", "croze+params"])
    parser.add_argument("--name", default=None, help="output stem in benchmarks/results (default: the 1,000 table)")
    parser.add_argument("--import", dest="imports", action="append", type=Path, default=[],
                        help="a scores CSV of this same protocol (seed, batch, data) whose rows need no recompute")
    parser.add_argument("--backend", default="process", choices=["process", "ray"])
    parser.add_argument("--address", default=None)
    parser.add_argument("--report-only", action="store_true",
                        help="compute nothing: write the files from what the store holds (a sweep in progress)")
    args = parser.parse_args()

    proxies = [p for p in args.proxies.split(",") if p]
    rob = RobustnessDataset(args.robustness)
    archs = demo.pick_architectures(rob, None if args.archs == "all" else int(args.archs), args.seed)
    images = robnas.data.load_npz(args.data, name="cifar10")
    stem = args.name or "nb201_cifar10_correlations"
    store_path = args.store or Path(f"runs/{args.name or 'nb201_cifar10'}.sqlite")
    start = time.perf_counter()
    with RunStore(store_path) as store:
        for path in args.imports:
            import_rows(store, path, images, args)
        if not args.report_only:  # in a seeded random order, so that a sweep in progress is a random sample
            order = [archs[i] for i in np.random.default_rng(args.seed).permutation(len(archs))]
            scoring.score("nb201", order, proxies, images, store, batch_size=args.batch_size, seed=args.seed,
                          workers=args.workers, backend=args.backend, address=args.address,
                          progress=lambda n: print(f"\r{n}/{len(archs)}", end="", flush=True))
        rows = [r for r in store.rows() if r.proxy in proxies and r.arch in set(archs)]
    print(f"\nscored in {time.perf_counter() - start:.0f} s")
    RESULTS.mkdir(exist_ok=True)
    # in (arch, proxy) order: the files and the bootstrap intervals do not depend on the order of scoring
    scores = pd.DataFrame(sorted((r.arch, r.proxy, r.value, r.seconds, r.error) for r in rows),
                          columns=["arch", "proxy", "value", "seconds", "error"])
    scores_file = f"{args.name}_scores.csv.gz" if args.name else "nb201_cifar10_scores.csv"
    scores.to_csv(RESULTS / scores_file, index=False, float_format="%.9g")
    ensembles = [e for e in args.ensemble if set(e.split("+")) <= set(proxies)]
    result = correlate.correlate(scores, rob, "cifar10", targets=TARGETS, unique=True, ensembles=ensembles)
    correlate.write_csv(result, RESULTS / f"{stem}.csv")
    seconds = scores.groupby("proxy")["seconds"].median()
    per_arch = scores.groupby("arch")["seconds"].sum()
    complete = {a for a, n in scores.groupby("arch")["proxy"].nunique().items() if n == len(proxies)}
    failed = scores.groupby("proxy")["error"].apply(lambda e: int((e.fillna("") != "").sum()))
    lines = [
        "# NAS-Bench-201, CIFAR-10: robnas proxies against the robustness dataset",
        "",
        f"Command: `python benchmarks/nb201_correlations.py --archs {args.archs} --batch-size {args.batch_size} "
        f"--seed {args.seed} --workers {args.workers}"
        + (f" --name {args.name}" if args.name else "")
        + "".join(f" --import {p}" for p in args.imports)
        + (f" --backend {args.backend}" if args.backend != "process" else "") + "`",
        "",
        f"Architectures: {len(complete)} of the {len(archs)} asked, every proxy scored"
        + ("." if len(complete) == len(archs) else " (**sweep in progress**: rerun the command to continue)."),
        f"Scoring time: {scores['seconds'].sum() / 3600:.2f} core-hours in all (the sum of the per-proxy "
        f"seconds in the store, over every invocation), {per_arch.median():.2f} s per architecture (median); "
        f"wall time of this invocation {time.perf_counter() - start:.0f} s.",
        "",
        f"NB201 architectures, one per isomorphism class (drawn with seed {args.seed}); every proxy "
        f"on the same batch of {args.batch_size} real CIFAR-10 training images (`cifar10_exact_subset.npz`, "
        "seed 0), each architecture's canonical network initialised from `stable_seed(seed, canonical arch)`; "
        "Spearman rho against the robustness "
        "dataset of Jung et al. (CIFAR-10). `croze_<group>` are CRoZe's averaged statistics (per corruption "
        "and severity, then averaged); `croze_mean15` averages the statistic against each corruption's "
        f"severity mean over the 15 corruptions. Scores: `{scores_file}`; all statistics with bootstrap "
        f"intervals, Kendall tau and top-10% precision: `{stem}.csv`.",
        "",
        correlate.markdown_table(result, TARGETS),
        "",
        "Median seconds per architecture (one worker process, one thread, machine shared) and failures:",
        "",
        "| proxy | median s | NaN |",
        "|:--|--:|--:|",
        *[f"| {p} | {seconds[p]:.3f} | {failed[p]} |" for p in proxies if p in seconds],
        "",
    ]
    (RESULTS / f"{stem}.md").write_text("\n".join(lines))
    print("\n".join(lines))


def import_rows(store: RunStore, path: Path, images: robnas.data.ImageArrays, args: argparse.Namespace) -> None:
    """Add the rows of a scores CSV written by this script with the same seed, batch and data: the
    store then treats them as done. Rows already in the store are kept. Rows of an architecture
    not written in its canonical form are left out (computed again): before robnas scored every
    architecture through its canonical form, such rows were seeded from the text as given."""
    table = pd.read_csv(path, keep_default_na=False, na_values=[""])
    missing = {"arch", "proxy", "value", "seconds", "error"} - set(table.columns)
    if missing:
        raise SystemExit(f"{path}: not a scores CSV (missing columns {sorted(missing)})")
    data_tag = scoring.data_tag_of(images)
    done = store.done(args.seed, args.batch_size, data_tag)
    space = robnas.spaces.get("nb201")
    canonical = {a for a in table["arch"].unique() if space.canonical_string(a) == space.format(space.parse(a))}
    table = table[table["arch"].isin(canonical)]
    store.add_many(
        ScoreRow(r.arch, r.proxy, float(r.value), float(r.seconds), args.seed, args.batch_size,
                 str(r.error) if isinstance(r.error, str) else "", data_tag, robnas.__version__)
        for r in table.itertuples()
        if (r.arch, r.proxy) not in done
    )


if __name__ == "__main__":
    main()
