"""The NB201 CIFAR-10 correlation table: every robnas proxy against the robustness dataset.

Scores ``--archs`` NAS-Bench-201 architectures (one per isomorphism class, drawn with
``--seed``) with every registered proxy on one batch of ``--batch-size`` real CIFAR-10
training images (CRoZe's protocol: the same batch of 8 for every proxy), then correlates the
scores with the CIFAR-10 robustness data and writes
``benchmarks/results/nb201_cifar10_correlations.md`` and ``nb201_cifar10_scores.csv``.
Resumable: the scores live in a run store and a rerun only computes what is missing.

    python benchmarks/nb201_correlations.py --archs 1000 --workers 2
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd

import robnas
from robnas import correlate, demo, scoring
from robnas.benchmarks.robustness import RobustnessDataset
from robnas.store import RunStore

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
RESULTS = Path(__file__).resolve().parent / "results"
TARGETS = [
    "clean", "fgsm@1", "fgsm@4", "fgsm@8", "pgd@1", "pgd@8", "apgd@1", "apgd@8", "square@1", "square@8",
    "hrs_fgsm@8", "croze_weather", "croze_noise", "croze_blur", "croze_digital", "croze_mean15",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--archs", type=int, default=1000)
    parser.add_argument("--proxies", default=",".join(robnas.proxies.names()))
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--data", type=Path, default=SHARED / "cifar10" / "cifar10_exact_subset.npz")
    parser.add_argument("--robustness", type=Path, default=SHARED / "robustness")
    parser.add_argument("--store", type=Path, default=Path("runs/nb201_cifar10.sqlite"))
    parser.add_argument("--ensemble", action="append", default=["croze+synflow+nwot", "croze+params"])
    args = parser.parse_args()

    proxies = [p for p in args.proxies.split(",") if p]
    rob = RobustnessDataset(args.robustness)
    archs = demo.pick_architectures(rob, args.archs, args.seed)
    images = robnas.data.load_npz(args.data, name="cifar10")
    start = time.perf_counter()
    with RunStore(args.store) as store:
        scoring.score("nb201", archs, proxies, images, store, batch_size=args.batch_size, seed=args.seed,
                      workers=args.workers, progress=lambda n: print(f"\r{n}/{len(archs)}", end="", flush=True))
        rows = [r for r in store.rows() if r.proxy in proxies and r.arch in set(archs)]
    print(f"\nscored in {time.perf_counter() - start:.0f} s")
    RESULTS.mkdir(exist_ok=True)
    scores = pd.DataFrame([(r.arch, r.proxy, r.value, r.seconds, r.error) for r in rows],
                          columns=["arch", "proxy", "value", "seconds", "error"])
    scores.to_csv(RESULTS / "nb201_cifar10_scores.csv", index=False, float_format="%.9g")
    ensembles = [e for e in args.ensemble if set(e.split("+")) <= set(proxies)]
    result = correlate.correlate(scores, rob, "cifar10", targets=TARGETS, unique=True, ensembles=ensembles)
    correlate.write_csv(result, RESULTS / "nb201_cifar10_correlations.csv")
    seconds = scores.groupby("proxy")["seconds"].median()
    failed = scores.groupby("proxy")["error"].apply(lambda e: int((e.fillna("") != "").sum()))
    lines = [
        "# NAS-Bench-201, CIFAR-10: robnas proxies against the robustness dataset",
        "",
        f"Command: `python benchmarks/nb201_correlations.py --archs {args.archs} --batch-size {args.batch_size} "
        f"--seed {args.seed} --workers {args.workers}`",
        "",
        f"{len(archs)} NB201 architectures, one per isomorphism class (drawn with seed {args.seed}); every proxy "
        f"on the same batch of {args.batch_size} real CIFAR-10 training images (`cifar10_exact_subset.npz`, "
        "seed 0), networks initialised from `stable_seed(seed, arch)`; Spearman rho against the robustness "
        "dataset of Jung et al. (CIFAR-10). `croze_<group>` are CRoZe's averaged statistics (per corruption "
        "and severity, then averaged); `croze_mean15` averages the statistic against each corruption's "
        "severity mean over the 15 corruptions. Scores: `nb201_cifar10_scores.csv`; all statistics with bootstrap "
        "intervals, Kendall tau and top-10% precision: `nb201_cifar10_correlations.csv`.",
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
    (RESULTS / "nb201_cifar10_correlations.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
