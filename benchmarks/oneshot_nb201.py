"""One-shot rank quality on NAS-Bench-201: inherited supernet weights against real ground truth.

Scores ``--archs`` NB201 architectures (one per isomorphism class: a seeded draw from the
architectures of ``benchmarks/results/nb201_cifar10_scores.csv``, so the zero-cost proxies are
on the same ones) with the weights they inherit from a trained NB201 supernet (``robnas
supernet train --space nb201``), their BN statistics recalibrated on a few training batches,
exactly as the ``oneshot:clean`` and ``oneshot:fgsm@8`` objectives do
(:class:`robnas.oneshot.robnets.objective.OneShotSource`): accuracy on the supernet's own held-out
validation images (never the test split). Then Spearman rho (percentile-bootstrap 95%
interval, architectures resampled and re-ranked), Kendall tau-b and the top-10% precision of
the one-shot accuracies and of every zero-cost proxy against NB201's 200-epoch CIFAR-10 test
accuracy and the robustness dataset's clean and fgsm@8 accuracy. Resumable: per-architecture
results are appended to ``--csv`` and a rerun scores only what is missing.

    robnas supernet train --space nb201 --recipe standard --data PATH.npz --out DIR ...
    python benchmarks/oneshot_nb201.py --supernet DIR/last.pt --archs 300
"""

from __future__ import annotations

import argparse
import contextlib
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from robnas import objectives, spaces
from robnas.benchmarks.nb201 import open_nb201
from robnas.benchmarks.robustness import RobustnessDataset
from robnas.objectives.oneshot import source
from robnas.oneshot.robnets.objective import accuracy, parse_target

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
RESULTS = Path(__file__).resolve().parent / "results"
ONESHOT = ("clean", "fgsm@8")
TARGETS = ("nb201_test@200", "clean", "fgsm@8")


def pick(scores: pd.DataFrame, count: int, seed: int) -> list[str]:
    """``count`` architectures of the scores table, drawn with ``seed`` (in table order)."""
    archs = list(dict.fromkeys(scores["arch"]))
    if count < len(archs):
        rng = np.random.default_rng(seed)
        archs = [archs[i] for i in sorted(rng.choice(len(archs), count, replace=False))]
    return archs


def score(args: argparse.Namespace, archs: list[str]) -> pd.DataFrame:
    """One-shot accuracies of ``archs`` (appended to ``args.csv`` as they come)."""
    done = (
        pd.read_csv(args.csv)
        if args.csv.is_file()
        else pd.DataFrame(columns=["arch", "target", "value", "seconds"])
    )
    have = set(zip(done["arch"], done["target"], strict=True))
    todo = [a for a in archs if any((a, f"oneshot_{t}") not in have for t in ONESHOT)]
    k, _, n = args.shard.partition("/")
    todo = todo[int(k) :: int(n)] if n else todo
    if todo:
        space = spaces.get("nb201")
        context = objectives.ObjectiveContext(
            data=str(args.data),
            supernet=str(args.supernet),
            seed=args.seed,
            device="cpu",
            oneshot={
                "eval_images": args.eval_images,
                "recalibration_batches": args.recalibration_batches,
                "batch_size": args.batch_size,
            },
        )
        src = source(context, space)
        print(f"{len(src.val_y)} validation images, {len(src.recalibration)} recalibration batches")
        targets = [parse_target(t) for t in ONESHOT]
        args.csv.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError), args.csv.open("x") as fh:  # one header, whichever shard is first
            fh.write("arch,target,value,seconds\n")
        with args.csv.open("a") as fh:
            for n, arch in enumerate(todo, 1):
                start = time.perf_counter()
                model = src.candidate(space.parse(arch))
                recal = time.perf_counter() - start
                for t in targets:
                    t0 = time.perf_counter()
                    value = accuracy(model, src.val_x, src.val_y, t, src.batch_size)
                    fh.write(f"{arch},oneshot_{t.name},{value:.6g},{recal + time.perf_counter() - t0:.4g}\n")
                    recal = 0.0  # the first target's time includes the recalibration
                fh.flush()
                print(f"\r{n}/{len(todo)}", end="", flush=True)
        print()
        done = pd.read_csv(args.csv)
    return done[done["arch"].isin(archs)].drop_duplicates(["arch", "target"], keep="last")


def statistics(x: np.ndarray, y: np.ndarray, boot: int, seed: int) -> dict[str, float]:
    """Spearman rho with a re-ranking percentile bootstrap 95% interval, Kendall tau-b, top-10% precision."""
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    n = len(x)
    rho = float(stats.spearmanr(x, y).statistic)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(boot, n))
    rx = stats.rankdata(x[idx], axis=1)
    ry = stats.rankdata(y[idx], axis=1)
    rx -= rx.mean(1, keepdims=True)
    ry -= ry.mean(1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        bs = (rx * ry).sum(1) / np.sqrt((rx**2).sum(1) * (ry**2).sum(1))
    lo, hi = np.nanpercentile(bs, [2.5, 97.5]) if boot else (math.nan, math.nan)
    k = max(1, round(0.1 * n))
    top_x = set(np.argsort(-stats.rankdata(x), kind="stable")[:k])
    top_y = set(np.argsort(-stats.rankdata(y), kind="stable")[:k])
    return {
        "n": n,
        "spearman": rho,
        "spearman_lo": float(lo),
        "spearman_hi": float(hi),
        "kendall": float(stats.kendalltau(x, y).statistic),
        "top10_precision": len(top_x & top_y) / k,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--supernet", type=Path, required=True, help="last.pt of robnas supernet train --space nb201"
    )
    parser.add_argument("--archs", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-images", type=int, default=256)
    parser.add_argument("--recalibration-batches", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument(
        "--shard", default="", help="K/N: score every N-th missing architecture from the K-th, no report"
    )
    parser.add_argument("--data", type=Path, default=SHARED / "cifar10" / "cifar10_exact_subset.npz")
    parser.add_argument("--robustness", type=Path, default=SHARED / "robustness")
    parser.add_argument("--nb201", type=Path, default=SHARED / "nb201" / "nb201_merged_by_index.csv")
    parser.add_argument("--scores", type=Path, default=RESULTS / "nb201_cifar10_scores.csv")
    parser.add_argument("--csv", type=Path, default=RESULTS / "oneshot_nb201.csv")
    parser.add_argument("--out", type=Path, default=RESULTS / "oneshot_nb201.md")
    parser.add_argument("--train-command", default="", help="the supernet's training command, for the report")
    parser.add_argument("--train-seconds", type=float, default=math.nan, help="its wall time, for the report")
    args = parser.parse_args()

    zc = pd.read_csv(args.scores)
    zc = zc[zc["error"].isna()] if "error" in zc else zc
    archs = pick(zc, args.archs, args.seed)
    start = time.perf_counter()
    oneshot = score(args, archs)
    seconds = time.perf_counter() - start
    if args.shard:
        return
    per_arch = oneshot.groupby("target")["seconds"].median()

    rob = RobustnessDataset(args.robustness)
    bench = open_nb201(args.nb201)
    truth = {
        "nb201_test@200": np.array([bench.info(a, "cifar10", "200")["test"] for a in archs]),
        "clean": np.array([rob.target(a, "cifar10", "clean") for a in archs]),
        "fgsm@8": np.array([rob.target(a, "cifar10", "fgsm@8") for a in archs]),
    }
    table = pd.concat(
        [oneshot.rename(columns={"target": "proxy"})[["arch", "proxy", "value"]], zc[zc["arch"].isin(archs)]],
        ignore_index=True,
    )
    wide = table.pivot_table(index="arch", columns="proxy", values="value", aggfunc="first").reindex(archs)
    proxies = [f"oneshot_{t}" for t in ONESHOT] + [p for p in dict.fromkeys(zc["proxy"]) if p in wide.columns]
    rows = []
    for p in proxies:
        for t in TARGETS:
            rows.append(
                {"proxy": p, "target": t, **statistics(wide[p].to_numpy(float), truth[t], args.bootstrap, 0)}
            )
    result = pd.DataFrame(rows)
    result.to_csv(args.out.with_suffix(".stats.csv"), index=False, float_format="%.6g")

    def cell(p: str, t: str) -> str:
        r = result[(result.proxy == p) & (result.target == t)].iloc[0]
        return f"{r.spearman:.3f} [{r.spearman_lo:.2f}, {r.spearman_hi:.2f}] / {r.kendall:.3f}"

    acc = {t: wide[f"oneshot_{t}"].to_numpy(float) for t in ONESHOT}
    lines = [
        "# One-shot rank quality on NAS-Bench-201 (CIFAR-10)",
        "",
        f"{len(archs)} NB201 architectures, one per isomorphism class (seed {args.seed} draw from the 1,000 of "
        "`nb201_cifar10_scores.csv`, so the zero-cost proxies below are on the same architectures), scored with "
        "the weights inherited from one NB201 supernet trained with the `standard` recipe, BN statistics "
        f"recalibrated per architecture on {args.recalibration_batches} training batches of {args.batch_size}, "
        f"then accuracy on the first {args.eval_images} images of the supernet's held-out validation "
        "split (`oneshot:clean`, `oneshot:fgsm@8`; never the test split).",
        "",
        "Ground truth: NB201's 200-epoch CIFAR-10 test accuracy (`c10_test_acc_200ep` of "
        "`nb201_merged_by_index.csv`, mean over seeds) and the robustness dataset's CIFAR-10 `clean` and "
        "`fgsm@8` accuracy (Jung et al., ICLR 2023).",
        "",
        "Each cell: Spearman rho [bootstrap 95% interval, 1,000 re-ranked resamples] / Kendall tau-b.",
        "",
        "| score | " + " | ".join(TARGETS) + " |",
        "|:--|" + "--:|" * len(TARGETS),
    ]
    lines += [f"| {p} | " + " | ".join(cell(p, t) for t in TARGETS) + " |" for p in proxies]
    lines += [
        "",
        "Top-10% precision (share of the score's top 10% that is in the target's top 10%):",
        "",
        "| score | " + " | ".join(TARGETS) + " |",
        "|:--|" + "--:|" * len(TARGETS),
    ]
    for p in proxies:
        sub = result[result.proxy == p].set_index("target")
        lines.append(f"| {p} | " + " | ".join(f"{sub.at[t, 'top10_precision']:.2f}" for t in TARGETS) + " |")
    lines += [
        "",
        "One-shot accuracies over the architectures: "
        + "; ".join(
            f"`{t}` median {np.nanmedian(a):.3f} (min {np.nanmin(a):.3f}, max {np.nanmax(a):.3f})"
            for t, a in acc.items()
        )
        + ".",
        "",
        "## Cost",
        "",
        f"- supernet training: {args.train_seconds:.0f} s wall, one CPU thread (`OMP_NUM_THREADS=1`), "
        "on a shared 2-core machine"
        if math.isfinite(args.train_seconds)
        else "- supernet training: see command",
        f"- scoring: {oneshot['seconds'].sum():.0f} s wall summed over architectures (this invocation "
        f"{seconds:.0f} s); per architecture (median; the clean time includes the BN recalibration): "
        + ", ".join(f"`{t}` {v:.2f} s" for t, v in per_arch.items()),
        "",
        "## Commands",
        "",
        "```",
        args.train_command or "(supernet command not recorded)",
        "python benchmarks/oneshot_nb201.py " + " ".join(cmdline_args()),
        "```",
        "",
        "Per-architecture accuracies: `oneshot_nb201.csv`; every statistic: `oneshot_nb201.stats.csv`.",
    ]
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def cmdline_args() -> list[str]:
    import shlex
    import sys

    return [shlex.quote(a) for a in sys.argv[1:]]


if __name__ == "__main__":
    main()
