"""Seconds per NB201 architecture of the classic zero-cost proxies (batch 64, CPU).

    python benchmarks/zc_speed.py --archs 10 --threads 2

Scores the first ``--archs`` architectures of a fixed random sample of NB201 through
``robnas.proxies.run`` (network copy included) on 64 real CIFAR-10 images and reports the
median wall-clock and CPU seconds per architecture to ``benchmarks/results/zc_speed.md``.
The reference figures (zero-cost-nas family in the CRoZe repository, 2 threads, idle
machine) are quoted from docs/TARGETS.md for comparison.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch

import robnas
from robnas.proxies import base

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "benchmarks" / "results"
PROXIES = [
    "synflow",
    "grad_norm",
    "snip",
    "jacov",
    "plain",
    "fisher",
    "grasp",
    "nwot",
    "epe_nas",
    "zen",
    "ntk_trace",
]
REFERENCE = {
    "synflow": 0.20,
    "grad_norm": 0.36,
    "snip": 0.37,
    "jacov": 0.37,
    "plain": 0.38,
    "fisher": 0.43,
    "grasp": 0.94,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    space = robnas.spaces.get("nb201")
    archs = [space.format(space.sample(np.random.default_rng(i))) for i in range(args.archs)]
    data = robnas.data.load_npz(SHARED / "cifar10" / "cifar10_exact_subset.npz")
    x, y = robnas.data.proxy_batch(data, 64, seed=0)
    base.run("grad_norm", space.build(archs[0]), x, y)  # warm-up
    wall: dict[str, list[float]] = {p: [] for p in PROXIES}
    cpu: dict[str, list[float]] = {p: [] for p in PROXIES}
    for i, arch in enumerate(archs):
        torch.manual_seed(i)
        net = space.build(arch)
        for name in PROXIES:
            c0, w0 = time.process_time(), time.perf_counter()
            result = base.run(name, net, x, y)
            wall[name].append(time.perf_counter() - w0)
            cpu[name].append(time.process_time() - c0)
            if result.error:
                print(f"{name} on {arch}: {result.error}")
    load = os.getloadavg()[0]
    lines = [
        "# Classic zero-cost proxies: seconds per NB201 architecture",
        "",
        f"`python benchmarks/zc_speed.py --archs {args.archs} --threads {args.threads}`: batch of 64 CIFAR-10 "
        f"images, median over {args.archs} random NB201 architectures, through `robnas.proxies.run` "
        f"(copy included), {args.threads} thread(s), torch {torch.__version__}, {os.cpu_count()} CPUs, "
        f"1-minute load average {load:.1f} at the end (a shared machine: wall-clock seconds are inflated "
        "by other processes; CPU seconds are the process's own, summed over its threads).",
        "",
        "| proxy | wall s | CPU s | reference wall s (2 threads, idle) |",
        "|---|---|---|---|",
    ]
    for name in PROXIES:
        ref = REFERENCE.get(name)
        lines.append(
            f"| {name} | {np.median(wall[name]):.3f} | {np.median(cpu[name]):.3f} | {'' if ref is None else ref} |"
        )
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "zc_speed.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
