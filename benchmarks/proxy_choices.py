"""Side-by-side measurements behind two choices of ``robnas.proxies.run`` on the CPU.

1. **Input layout.** ``prepare_inputs`` hands a proxy its images (B, C, H, W) in channels_last
   memory format, oneDNN's native layout, instead of the default contiguous NCHW. Per proxy and
   random NB201 architecture, both layouts run back to back in alternating order on the same
   network and batch; the table gives the median seconds of each, their ratio and the largest
   relative difference between the two values.
2. **GraSP's BatchNorm.** GraSP differentiates the loss twice and runs BatchNorm as
   ``SecondOrderBatchNorm`` (``bn="second-order"``): torch's fused forward with a backward
   written in tensor operations, instead of ``nn.BatchNorm2d``, whose backward's own derivative
   is a long composite formula. Both forms run back to back in float32 as ``run`` prepares them;
   torch's BatchNorm in float64 gives the exact value both are compared with. Then each form runs
   the same architectures again in a process of its own with glibc's default malloc, whose peak
   RSS is then close to its peak of live memory.

Seconds include the private copy of the network, as ``robnas.proxies.run`` counts them; freed
memory is kept for reuse, as the robnas CLI does. Writes a markdown report to ``--out``.

    python benchmarks/proxy_choices.py [--archs 40] [--threads 2] [--proxies grad_norm,grasp]
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
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
from proxy_speed import batch_size, rss_mib
from robnas.data import ImageArrays, load_npz, proxy_batch, synthetic
from robnas.proxies import base
from robnas.runtime import keep_freed_memory

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "cifar10" / "cifar10_exact_subset.npz"
LAYOUT_PROXIES = "grad_norm,snip,grasp,fisher,jacov,nwot,ntk_trace,croze"
SECOND_ORDER = base.PROXIES.get("grasp")
BN_FORMS = {"second-order": SECOND_ORDER, "torch": dataclasses.replace(SECOND_ORDER, bn="keep")}
EXACT = dataclasses.replace(SECOND_ORDER, bn="keep", dtype=torch.float64)


def timed(
    model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, spec: base.ProxySpec
) -> tuple[float, float]:
    """(value, seconds) of ``spec``'s proxy on exactly ``x`` (its layout kept), copy included."""
    start = time.perf_counter()
    net = base.prepare(model, spec)
    value = spec.fn(net, x.to(spec.dtype) if spec.dtype else x, y)
    return value, time.perf_counter() - start


def networks(args: argparse.Namespace) -> Iterator[tuple[int, torch.nn.Module]]:
    """The benchmark's random NB201 architectures, each built with its own seed."""
    space = robnas.spaces.get("nb201")
    rng = np.random.default_rng(args.seed)
    for i in range(args.archs):
        torch.manual_seed(args.seed + i)
        yield i, space.build(space.sample(rng))


@functools.cache
def images(path: Path, seed: int) -> tuple[ImageArrays, str]:
    """The images proxy batches are drawn from (read once), and where they come from."""
    if path.exists():
        return load_npz(path), f"{path.name} (real CIFAR-10)"
    return synthetic(512, seed=seed), "synthetic (real data absent)"


def batch(args: argparse.Namespace, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A proxy batch as contiguous NCHW tensors."""
    x, y = proxy_batch(images(args.data, args.seed)[0], size, seed=args.seed)
    return x.contiguous(), y


def alternate(i: int, names: list[str]) -> list[str]:
    return names if i % 2 == 0 else names[::-1]


def layout_rows(args: argparse.Namespace) -> list[str]:
    rows = []
    for proxy in args.proxies.split(","):
        spec = base.PROXIES.get(proxy)
        x, y = batch(args, batch_size(proxy))
        layouts = {"contiguous": x, "channels_last": base.prepare_inputs(x, spec)}
        seconds: dict[str, list[float]] = {k: [] for k in layouts}
        values: dict[str, list[float]] = {k: [] for k in layouts}
        for i, model in networks(args):
            for name in alternate(i, list(layouts)):
                value, took = timed(model, layouts[name], y, spec)
                values[name].append(value)
                seconds[name].append(took)
        a, b = np.array(values["contiguous"]), np.array(values["channels_last"])
        diff = np.nanmax(np.abs(a - b) / np.maximum(np.abs(a), 1e-12))
        medians = {k: statistics.median(v) for k, v in seconds.items()}
        rows.append(
            f"| {proxy} | {batch_size(proxy)} | {medians['contiguous']:.3f} | {medians['channels_last']:.3f} | "
            f"{medians['contiguous'] / medians['channels_last']:.2f}x | {diff:.1e} |"
        )
        print(rows[-1], flush=True)
    return rows


def memory_worker(args: argparse.Namespace) -> None:
    """Run one BatchNorm form of GraSP over the architectures; print the peak RSS in MiB."""
    x, y = batch(args, 64)
    x = base.prepare_inputs(x, SECOND_ORDER)
    for _, model in networks(args):
        timed(model, x, y, BN_FORMS[args.memory_worker])
    print(rss_mib()[0])


def grasp_rows(args: argparse.Namespace) -> list[str]:
    x, y = batch(args, 64)
    x = base.prepare_inputs(x, SECOND_ORDER)
    values: dict[str, list[float]] = {k: [] for k in BN_FORMS}
    seconds: dict[str, list[float]] = {k: [] for k in BN_FORMS}
    exact: list[float] = []
    for i, model in networks(args):
        for name in alternate(i, list(BN_FORMS)):
            value, took = timed(model, x, y, BN_FORMS[name])
            values[name].append(value)
            seconds[name].append(took)
        exact.append(timed(model, x, y, EXACT)[0])
    peak = {}
    for name in BN_FORMS:  # glibc's default malloc: no keep_freed_memory in the worker
        cmd = [sys.executable, __file__, "--memory-worker", name, "--archs", str(args.archs)]
        cmd += ["--threads", str(args.threads), "--seed", str(args.seed), "--data", str(args.data)]
        done = subprocess.run(cmd, capture_output=True, text=True, check=True)
        peak[name] = float(done.stdout.split()[-1])
    truth = np.array(exact)
    rows = []
    for name in BN_FORMS:
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
    return [
        *rows,
        "",
        f"torch / second-order: {ratio:.2f}x on the medians, {per_arch:.2f}x median per architecture.",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--archs", type=int, default=40)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--proxies", default=LAYOUT_PROXIES, help="proxies timed in both input layouts")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "proxy_choices.md")
    parser.add_argument("--memory-worker", choices=sorted(BN_FORMS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.memory_worker:
        memory_worker(args)
        return
    keep_freed_memory()
    load_start = os.getloadavg()[0]
    layout = layout_rows(args)
    grasp = grasp_rows(args)
    lines = [
        "# Proxy runner choices on the CPU, side by side",
        "",
        f"`python benchmarks/proxy_choices.py --archs {args.archs} --threads {args.threads} --proxies {args.proxies}`",
        "",
        f"- date: {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}; {platform.machine()}, "
        f"{os.cpu_count()} CPUs visible, load average {load_start:.2f} at start; {args.threads} torch threads; "
        f"torch {torch.__version__}",
        f"- {args.archs} random NB201 architectures (seed {args.seed}), C=16, N=5; {images(args.data, args.seed)[1]}",
        "- seconds: median per architecture, the two variants back to back in alternating order, network "
        "copy included",
        "",
        "## 1. Input layout (`robnas.proxies.base.prepare_inputs`)",
        "",
        "| proxy | batch | contiguous NCHW s | channels_last s | speed-up | max rel. value difference |",
        "|---|---|---|---|---|---|",
        *layout,
        "",
        "## 2. GraSP's BatchNorm (`SecondOrderBatchNorm`), channels_last inputs",
        "",
        "Peak RSS: each form alone in its own process, glibc's default malloc. Error: |float32 value - "
        "float64 value| / |float64 value|, float64 with torch's BatchNorm.",
        "",
        "| BatchNorm | median s | p90 s | peak RSS MiB | median rel. error | max rel. error | "
        "Spearman with float64 |",
        "|---|---|---|---|---|---|---|",
        *grasp,
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
