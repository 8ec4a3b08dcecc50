"""GraSP with torch's fused BatchNorm against BatchNorm in elementary operations, side by side.

GraSP differentiates the loss twice. Its proxy runs BatchNorm as
:class:`robnas.proxies.base.BatchStatsNorm` (``bn="composite"``), the same function written in
element-wise operations and reductions, instead of the fused ``nn.BatchNorm2d`` kernel whose
double backward is a long composite formula. Per random NB201 architecture (one network,
one batch of 64 real CIFAR-10 training images), both forms run back to back in float32 through
the proxy's own preparation (private copy, train mode), in alternating order; the fused form
in float64 gives the exact value both are compared with. Writes a markdown table to ``--out``.

    python benchmarks/grasp_batchnorm.py [--archs 40] [--threads 2]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

import robnas
from robnas.data import load_npz, proxy_batch, synthetic
from robnas.proxies import base
from robnas.runtime import keep_freed_memory

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "cifar10" / "cifar10_exact_subset.npz"


def grasp_seconds(
    model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, spec: base.ProxySpec
) -> tuple[float, float]:
    """(value, seconds) of GraSP under ``spec``: preparation and proxy, as ``proxies.run`` times it."""
    start = time.perf_counter()
    net = base.prepare(model, spec)
    value = spec.fn(net, x.to(spec.dtype) if spec.dtype else x, y)
    return value, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--archs", type=int, default=40)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "grasp_batchnorm.md")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    keep_freed_memory()  # as the robnas CLI does
    data = load_npz(args.data) if args.data.exists() else synthetic(512, seed=args.seed)
    source = f"{args.data.name} (real CIFAR-10)" if args.data.exists() else "synthetic (real data absent)"
    x, y = proxy_batch(data, 64, seed=args.seed)
    composite = base.PROXIES.get("grasp")
    forms = {"composite": composite, "fused": dataclasses.replace(composite, bn="keep")}
    exact_spec = dataclasses.replace(composite, bn="keep", dtype=torch.float64)
    space = robnas.spaces.get("nb201")
    rng = np.random.default_rng(args.seed)
    load_start = os.getloadavg()[0]
    values: dict[str, list[float]] = {k: [] for k in forms}
    seconds: dict[str, list[float]] = {k: [] for k in forms}
    exact: list[float] = []
    for i in range(args.archs):
        torch.manual_seed(args.seed + i)
        model = space.build(space.sample(rng))
        order = list(forms) if i % 2 == 0 else list(reversed(forms))
        for name in order:
            value, took = grasp_seconds(model, x, y, forms[name])
            values[name].append(value)
            seconds[name].append(took)
        exact.append(grasp_seconds(model, x, y, exact_spec)[0])
    truth = np.array(exact)
    rows = []
    for name in forms:
        v = np.array(values[name])
        rel = np.abs(v - truth) / np.maximum(np.abs(truth), 1e-12)
        rows.append(
            f"| {name} | {statistics.median(seconds[name]):.3f} | {np.percentile(seconds[name], 90):.3f} | "
            f"{np.median(rel):.1e} | {rel.max():.1e} | {spearmanr(v, truth)[0]:.4f} |"
        )
    ratio = statistics.median(seconds["fused"]) / statistics.median(seconds["composite"])
    per_arch = statistics.median(f / c for f, c in zip(seconds["fused"], seconds["composite"], strict=True))
    lines = [
        "# GraSP: fused BatchNorm against BatchNorm in elementary operations",
        "",
        f"`python benchmarks/grasp_batchnorm.py --archs {args.archs} --threads {args.threads}`",
        "",
        f"- date: {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}; {platform.machine()}, "
        f"{os.cpu_count()} CPUs visible, load average {load_start:.2f} at start; {args.threads} torch threads; "
        f"torch {torch.__version__}",
        f"- {args.archs} random NB201 architectures (seed {args.seed}), C=16, N=5; batch 64 of {source}",
        "- both forms on the same network and batch, back to back in alternating order; seconds include "
        "the private copy, as `robnas.proxies.run` counts them",
        "- error: |float32 value - float64 value| / |float64 value|, float64 with the fused kernel",
        "",
        "| BatchNorm | median s | p90 s | median rel. error | max rel. error | Spearman with float64 |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
        f"Fused / composite: {ratio:.2f}x on the medians, {per_arch:.2f}x median per architecture.",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
