"""GraSP with torch's BatchNorm against :class:`robnas.proxies.base.SecondOrderBatchNorm`.

GraSP differentiates the loss twice. Its proxy runs BatchNorm as ``SecondOrderBatchNorm``
(``bn="second-order"``): torch's fused forward with a backward written in tensor operations,
instead of ``nn.BatchNorm2d``, whose backward's own derivative is a long composite formula.

Per random NB201 architecture (one network, one batch of 64 real CIFAR-10 training images)
both forms run back to back in float32, in alternating order, through the proxy's own
preparation (private copy, train mode); torch's BatchNorm in float64 gives the exact value
both are compared with. Then each form runs the same architectures again in a process of
its own with glibc's default malloc, whose peak RSS is then close to its peak of live memory.
Writes a markdown table to ``--out``.

    python benchmarks/grasp_batchnorm.py [--archs 60] [--threads 2]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

import robnas
from proxy_speed import rss_mib
from robnas.data import load_npz, proxy_batch, synthetic
from robnas.proxies import base
from robnas.runtime import keep_freed_memory

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "cifar10" / "cifar10_exact_subset.npz"
SECOND_ORDER = base.PROXIES.get("grasp")
FORMS = {"second-order": SECOND_ORDER, "torch": dataclasses.replace(SECOND_ORDER, bn="keep")}
EXACT = dataclasses.replace(SECOND_ORDER, bn="keep", dtype=torch.float64)


def grasp_seconds(
    model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, spec: base.ProxySpec
) -> tuple[float, float]:
    """(value, seconds) of GraSP under ``spec``: preparation and proxy, as ``proxies.run`` times it."""
    start = time.perf_counter()
    net = base.prepare(model, spec)
    value = spec.fn(net, x.to(spec.dtype) if spec.dtype else x, y)
    return value, time.perf_counter() - start


def networks(args: argparse.Namespace) -> Iterator[tuple[int, torch.nn.Module]]:
    """The benchmark's architectures, each built with its own seed."""
    space = robnas.spaces.get("nb201")
    rng = np.random.default_rng(args.seed)
    for i in range(args.archs):
        torch.manual_seed(args.seed + i)
        yield i, space.build(space.sample(rng))


def batch(args: argparse.Namespace) -> tuple[torch.Tensor, torch.Tensor, str]:
    """The proxy batch (64 images) and where it comes from."""
    if args.data.exists():
        return *proxy_batch(load_npz(args.data), 64, seed=args.seed), f"{args.data.name} (real CIFAR-10)"
    return *proxy_batch(synthetic(512, seed=args.seed), 64, seed=args.seed), "synthetic (real data absent)"


def memory_worker(args: argparse.Namespace) -> None:
    """Run one form over the architectures with glibc's default malloc; print the peak RSS in MiB."""
    x, y, _ = batch(args)
    for _, model in networks(args):
        grasp_seconds(model, x, y, FORMS[args.memory_worker])
    print(rss_mib()[0])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--archs", type=int, default=60)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "grasp_batchnorm.md")
    parser.add_argument("--memory-worker", choices=sorted(FORMS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.memory_worker:
        memory_worker(args)
        return
    keep_freed_memory()  # for the timings, as the robnas CLI does
    x, y, source = batch(args)
    load_start = os.getloadavg()[0]
    values: dict[str, list[float]] = {k: [] for k in FORMS}
    seconds: dict[str, list[float]] = {k: [] for k in FORMS}
    exact: list[float] = []
    for i, model in networks(args):
        for name in list(FORMS) if i % 2 == 0 else reversed(FORMS):
            value, took = grasp_seconds(model, x, y, FORMS[name])
            values[name].append(value)
            seconds[name].append(took)
        exact.append(grasp_seconds(model, x, y, EXACT)[0])
    load_end = os.getloadavg()[0]
    peak = {}
    for name in FORMS:
        cmd = [sys.executable, __file__, "--memory-worker", name, "--archs", str(args.archs)]
        cmd += ["--threads", str(args.threads), "--seed", str(args.seed), "--data", str(args.data)]
        done = subprocess.run(cmd, capture_output=True, text=True, check=True)
        peak[name] = float(done.stdout.split()[-1])

    truth = np.array(exact)
    rows = []
    for name in FORMS:
        v = np.array(values[name])
        rel = np.abs(v - truth) / np.maximum(np.abs(truth), 1e-12)
        rows.append(
            f"| {name} | {statistics.median(seconds[name]):.3f} | {np.percentile(seconds[name], 90):.3f} | "
            f"{peak[name]:.0f} | {np.median(rel):.1e} | {rel.max():.1e} | {spearmanr(v, truth)[0]:.4f} |"
        )
    ratio = statistics.median(seconds["torch"]) / statistics.median(seconds["second-order"])
    per_arch = statistics.median(
        t / s for t, s in zip(seconds["torch"], seconds["second-order"], strict=True)
    )
    lines = [
        "# GraSP: torch's BatchNorm against SecondOrderBatchNorm",
        "",
        f"`python benchmarks/grasp_batchnorm.py --archs {args.archs} --threads {args.threads}`",
        "",
        f"- date: {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}; {platform.machine()}, "
        f"{os.cpu_count()} CPUs visible, load average {load_start:.2f} at start, {load_end:.2f} after the "
        f"timings; {args.threads} torch threads; torch {torch.__version__}",
        f"- {args.archs} random NB201 architectures (seed {args.seed}), C=16, N=5; batch 64 of {source}",
        "- seconds: both forms on the same network and batch, back to back in alternating order, freed "
        "memory kept for reuse as the robnas CLI does; the private copy included, as `robnas.proxies.run` "
        "counts it",
        "- peak RSS: each form alone in its own process over the same architectures, glibc's default malloc",
        "- error: |float32 value - float64 value| / |float64 value|, float64 with torch's BatchNorm",
        "",
        "| BatchNorm | median s | p90 s | peak RSS MiB | median rel. error | max rel. error | "
        "Spearman with float64 |",
        "|---|---|---|---|---|---|---|",
        *rows,
        "",
        f"torch / second-order: {ratio:.2f}x on the medians, {per_arch:.2f}x median per architecture.",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
