"""Agreement of robnas's classic zero-cost proxies with the published NAS-Bench-Suite-Zero values.

For a fixed random sample of NB201 architectures from
``../shared/data/zc_reference/nb201_zc_proxies_cifar10.csv``, build each network with a fixed
per-architecture seed, score it on one batch of 64 real CIFAR-10 training images
(``proxy_batch(data, 64, seed=0)``) and report the Spearman rank correlation of each proxy
with the published column of the same name, plus median seconds per architecture.

    python benchmarks/zc_reference_agreement.py --n 500

Values are cached per architecture in ``benchmarks/results/zc_reference_agreement.csv`` so an
interrupted run resumes; the report goes to ``benchmarks/results/zc_reference_agreement.md``.
"""

from __future__ import annotations

import argparse
import math
import platform
import time
from copy import deepcopy
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy.stats import spearmanr

import robnas
from robnas.proxies import base, gradient

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "benchmarks" / "results"

#: Published column -> minimum Spearman rho we aim for (None: reported only).
TARGETS: dict[str, float | None] = {
    "params": 0.99,
    "flops": 0.99,
    "synflow": 0.97,
    "grad_norm": 0.95,
    "snip": 0.95,
    "fisher": 0.9,
    "jacov": 0.85,
    "nwot": 0.85,
    "grasp": None,
    "plain": None,
    "l2_norm": None,
    "epe_nas": None,
    "zen": None,
}
#: Extra variants: (name in the report, registered proxy, published column, options).
VARIANTS: list[tuple[str, str, str, dict]] = [
    ("flops(include_elementwise)", "flops", "flops", {"include_elementwise": True}),
]


def synflow_all_bn_removed(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """synflow with every BatchNorm removed, reduction blocks included (NASLib's copy)."""
    copy = deepcopy(net)
    for module in copy.modules():
        for child_name, child in module.named_children():
            if isinstance(child, torch.nn.BatchNorm2d):
                setattr(module, child_name, torch.nn.Identity())
    copy.double().train()
    return gradient.synflow(copy, x.double(), y)


def score_architecture(
    arch: str, seed: int, x: torch.Tensor, y: torch.Tensor, with_grasp: bool = True
) -> dict[str, float]:
    torch.manual_seed(seed)
    net = robnas.spaces.get("nb201").build(arch)
    row: dict[str, float] = {}
    for name in TARGETS:
        if name == "grasp" and not with_grasp:
            row[name], row[f"{name}_s"] = math.nan, math.nan
            continue
        torch.manual_seed(seed + 1)  # zen draws Gaussian weights and inputs from the global generator
        result = base.run(name, net, x, y)
        row[name] = result.value
        row[f"{name}_s"] = result.seconds
    for label, name, _, options in VARIANTS:
        row[label] = base.run(name, net, x, y, **options).value
    start = time.perf_counter()
    row["synflow(all BN removed)"] = synflow_all_bn_removed(net, x, y)
    row["synflow(all BN removed)_s"] = time.perf_counter() - start
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=500, help="architectures sampled from the table")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sample and of the networks")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--grasp-n", type=int, default=150, help="score grasp (the slowest) on the first N only"
    )
    parser.add_argument("--shard", type=int, default=0, help="this worker scores rows shard::shards")
    parser.add_argument("--shards", type=int, default=1)
    parser.add_argument("--report-only", action="store_true", help="merge the cached values and report")
    parser.add_argument("--fill-grasp", action="store_true", help="score grasp where cached rows lack it")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    table = pd.read_csv(SHARED / "zc_reference" / "nb201_zc_proxies_cifar10.csv")
    sample = table.sample(n=args.n, random_state=args.seed).reset_index(drop=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    caches = sorted(RESULTS.glob("zc_reference_agreement*.csv"))
    if args.fill_grasp:
        fill_grasp(caches, sample, args)
    rows = [r for path in caches for r in pd.read_csv(path).to_dict("records")]
    if not args.report_only:
        data = robnas.data.load_npz(SHARED / "cifar10" / "cifar10_exact_subset.npz")
        x, y = robnas.data.proxy_batch(data, 64, seed=0)
        suffix = "" if args.shards == 1 else f".shard{args.shard}of{args.shards}"
        cache_path = RESULTS / f"zc_reference_agreement{suffix}.csv"
        done = {r["net_str"] for r in rows}
        mine = pd.read_csv(cache_path).to_dict("records") if cache_path.exists() else []
        start = time.perf_counter()
        for i in range(args.shard, len(sample), args.shards):
            arch = sample["net_str"][i]
            if arch in done:
                continue
            seed = args.seed * 100_000 + i
            mine.append(
                {"net_str": arch, **score_architecture(arch, seed, x, y, with_grasp=i < args.grasp_n)}
            )
            rows.append(mine[-1])
            if len(mine) % 5 == 0:
                pd.DataFrame(mine).to_csv(cache_path, index=False)
                print(
                    f"{len(rows)}/{len(sample)} architectures, {time.perf_counter() - start:.0f} s",
                    flush=True,
                )
        pd.DataFrame(mine).to_csv(cache_path, index=False)
    ours = pd.DataFrame(rows).drop_duplicates("net_str")
    ours = ours[ours["net_str"].isin(set(sample["net_str"]))]
    merged = ours.merge(sample, on="net_str", suffixes=("", "_published"))
    write_report(merged, args)


def fill_grasp(caches: list[Path], sample: pd.DataFrame, args: argparse.Namespace) -> None:
    """Score grasp for the cached rows among the first ``--grasp-n`` of this worker's shard."""
    data = robnas.data.load_npz(SHARED / "cifar10" / "cifar10_exact_subset.npz")
    x, y = robnas.data.proxy_batch(data, 64, seed=0)
    index = {arch: i for i, arch in enumerate(sample["net_str"])}
    for path in caches:
        cache = pd.read_csv(path)
        for row in cache.index:
            i = index.get(cache.at[row, "net_str"])
            if (
                i is None
                or i >= args.grasp_n
                or i % args.shards != args.shard
                or np.isfinite(cache.at[row, "grasp"])
            ):
                continue
            torch.manual_seed(args.seed * 100_000 + i)
            net = robnas.spaces.get("nb201").build(cache.at[row, "net_str"])
            result = base.run("grasp", net, x, y)
            cache.at[row, "grasp"], cache.at[row, "grasp_s"] = result.value, result.seconds
            cache.to_csv(path, index=False)


def rho(a: pd.Series, b: pd.Series) -> tuple[float, int]:
    """Spearman rho over the architectures where both values are finite, and their count."""
    ok = np.isfinite(a.to_numpy(float)) & np.isfinite(b.to_numpy(float))
    return float(spearmanr(a[ok], b[ok]).statistic), int(ok.sum())


def write_report(merged: pd.DataFrame, args: argparse.Namespace) -> None:
    lines = [
        "# Classic zero-cost proxies: agreement with NAS-Bench-Suite-Zero",
        "",
        f"`python benchmarks/zc_reference_agreement.py --n {args.n} --seed {args.seed} --threads {args.threads} "
        f"--grasp-n {args.grasp_n}` (run as shards `--shard i --shards k`, then `--report-only`)",
        "",
        f"{len(merged)} NB201 architectures sampled (pandas `sample(random_state={args.seed})`) from "
        "`zc_reference/nb201_zc_proxies_cifar10.csv` (published values, CIFAR-10); networks built "
        "with `torch.manual_seed(seed*100000 + i)`; one batch of 64 real CIFAR-10 training images "
        "(`robnas.data.proxy_batch(load_npz('cifar10_exact_subset.npz'), 64, seed=0)`). "
        "Spearman rho of our value against the published column of the same name over the "
        "architectures where both are finite (`archs`); grasp, the slowest, is scored on a "
        "subset only (the first `--grasp-n` architectures of each run). Seconds: median per architecture through "
        f"`robnas.proxies.run` (network copy included), {args.threads} CPU thread(s), "
        f"torch {torch.__version__}, {platform.processor() or platform.machine()}, on a shared machine.",
        "",
        "| proxy | archs | Spearman rho | target | met | median s |",
        "|---|---|---|---|---|---|",
    ]
    for name, target in TARGETS.items():
        r, count = rho(merged[name], merged[f"{name}_published"])
        met = "" if target is None else ("yes" if r >= target else "NO")
        secs = merged[f"{name}_s"].median()
        lines.append(
            f"| {name} | {count} | {r:.3f} | {'' if target is None else f'>= {target}'} | {met} | {secs:.3f} |"
        )
    lines += [
        "",
        "Variants (diagnostics, same architectures):",
        "",
        "| variant | published column | rho |",
        "|---|---|---|",
    ]
    for label, _, column, _ in VARIANTS:
        r, _ = rho(merged[label], merged[f"{column}_published"])
        lines.append(f"| {label} | {column} | {r:.3f} |")
    label = "synflow(all BN removed)"
    r, _ = rho(merged[label], merged["synflow_published"])
    lines.append(f"| {label} | synflow | {r:.3f} |")
    (RESULTS / "zc_reference_agreement.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    if any(math.isnan(rho(merged[n], merged[f"{n}_published"])[0]) for n in TARGETS):
        print("warning: some correlations are undefined")


if __name__ == "__main__":
    main()
