"""Speed and memory of every registered proxy on random architectures of a search space.

Per proxy: the median seconds per architecture (``robnas.proxies.run``: private copy, BN
policy, dtype and the proxy itself; building the network is not counted) on ``--threads`` CPU
threads, batch 8 for CRoZe (the reference's default) and 64 for the others, random
architectures drawn with a fixed seed, one fixed batch of real CIFAR-10 training images from
``../shared/data/cifar10`` (synthetic images where that folder is absent). Each proxy runs in
its own process, so its peak RSS (``resource.getrusage``) is its own; the peak and current RSS
are recorded after 10% of the architectures and at the end, and must not grow with the count.
The workers keep freed memory for reuse as the ``robnas`` command does
(:func:`robnas.runtime.keep_freed_memory`); ``--system-malloc`` times glibc's defaults instead.
Writes a markdown table to ``--out``.

    python benchmarks/proxy_speed.py [--archs 500] [--proxies croze,synflow] [--space nb201] [--system-malloc]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "cifar10" / "cifar10_exact_subset.npz"
CROZE_BATCH = 8
DEFAULT_BATCH = 64
#: Reference timings (2 CPU threads, idle machine, NB201) from docs TARGETS.md, seconds.
REFERENCE_SECONDS = {
    "croze": "0.72",
    "synflow": "0.20",
    "grad_norm": "0.36-0.38",
    "snip": "0.36-0.38",
    "jacov": "0.36-0.38",
    "plain": "0.36-0.38",
    "fisher": "0.43",
    "grasp": "0.94",
}


def rss_mib() -> tuple[float, float]:
    """(peak RSS so far, current RSS) of this process in MiB: ``VmHWM`` and ``VmRSS``.

    Not ``ru_maxrss``: on Linux that carries the parent's peak over fork and exec, so a worker
    would report at least its parent's. Elsewhere, ``ru_maxrss`` and no current RSS.
    """
    try:
        status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
        return int(status["VmHWM"].split()[0]) / 1024, int(status["VmRSS"].split()[0]) / 1024
    except (OSError, KeyError, ValueError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, float("nan")


def batch_size(proxy: str) -> int:
    return CROZE_BATCH if proxy.startswith("croze") else DEFAULT_BATCH


def worker(args: argparse.Namespace) -> None:
    """Time one proxy in this process and print one JSON line."""
    import numpy as np
    import torch

    import robnas
    from robnas.data import load_npz, proxy_batch, synthetic
    from robnas.runtime import keep_freed_memory

    torch.set_num_threads(args.threads)
    if not args.system_malloc:
        keep_freed_memory()  # as the robnas CLI and its workers do
    proxy = args.worker
    space = robnas.spaces.get(args.space)
    if args.data.exists():
        data, source = load_npz(args.data), f"{args.data.name} (real CIFAR-10)"
    else:
        data, source = synthetic(512, seed=args.seed), "synthetic (real data absent)"
    x, y = proxy_batch(data, batch_size(proxy), seed=args.seed)
    rng = np.random.default_rng(args.seed)
    archs = [space.sample(rng) for _ in range(args.archs)]
    checkpoint = max(1, args.archs // 10)
    seconds: list[float] = []
    errors: list[str] = []
    rss_10 = (float("nan"), float("nan"))
    for i, arch in enumerate(archs):
        torch.manual_seed(args.seed + i)
        model = space.build(arch)
        result = robnas.proxies.run(proxy, model, x, y)
        seconds.append(result.seconds)
        if result.error:
            errors.append(result.error)
        del model, result
        if i + 1 == checkpoint:
            rss_10 = rss_mib()
    rss_end = rss_mib()
    print(
        json.dumps(
            {
                "proxy": proxy,
                "batch": batch_size(proxy),
                "archs": len(archs),
                "median": statistics.median(seconds),
                "p90": float(np.percentile(seconds, 90)),
                "nan": len(errors),
                "first_error": errors[0] if errors else "",
                "peak_10": rss_10[0],
                "current_10": rss_10[1],
                "peak_end": rss_end[0],
                "current_end": rss_end[1],
                "source": source,
                "torch": torch.__version__,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--archs", type=int, default=500, help="architectures per proxy")
    parser.add_argument("--proxies", default="", help="comma-separated names (default: all registered)")
    parser.add_argument(
        "--space", default="nb201", help="search space (nb201; darts, robnet where registered)"
    )
    parser.add_argument("--threads", type=int, default=2, help="CPU threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", type=Path, default=DATA, help="CIFAR-10 .npz with x_train / y_train")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "proxy_speed.md")
    parser.add_argument(
        "--system-malloc",
        action="store_true",
        help="keep glibc's default malloc thresholds (robnas.runtime.keep_freed_memory not applied)",
    )
    parser.add_argument("--worker", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.archs < 1:
        parser.error("--archs must be at least 1")
    if args.worker:
        worker(args)
        return

    import robnas

    names = [n.strip() for n in args.proxies.split(",") if n.strip()] or robnas.proxies.names()
    for name in names:
        robnas.proxies.base.PROXIES.get(name)  # an unknown name fails before any work
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[var] = str(args.threads)
    load_start = os.getloadavg()[0]
    rows = []
    for name in names:
        cmd = [sys.executable, __file__, "--worker", name, "--archs", str(args.archs), "--space", args.space]
        cmd += ["--threads", str(args.threads), "--seed", str(args.seed), "--data", str(args.data)]
        cmd += ["--system-malloc"] if args.system_malloc else []
        start = time.perf_counter()
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            print(f"{name}: worker failed\n{done.stderr[-2000:]}", file=sys.stderr)
            continue
        row = json.loads(done.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(
            f"{name:12s} median {row['median']:.3f} s  peak RSS {row['peak_10']:.0f} -> {row['peak_end']:.0f} MiB"
            f"  ({time.perf_counter() - start:.0f} s)",
            flush=True,
        )
    if not rows:
        sys.exit("no proxy finished")

    lines = [
        "# Proxy speed and memory",
        "",
        f"`python benchmarks/proxy_speed.py --archs {args.archs} --space {args.space}"
        + (f" --proxies {args.proxies}" if args.proxies else "")
        + (" --system-malloc" if args.system_malloc else "")
        + "`",
        "",
        f"- date: {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- machine: {platform.machine()}, {os.cpu_count()} CPUs visible, load average {load_start:.2f} at "
        f"start and {os.getloadavg()[0]:.2f} at end; {args.threads} torch threads; torch {rows[0]['torch']}",
        f"- space: {args.space}; {args.archs} random architectures (seed {args.seed}), one network each",
        f"- data: {rows[0]['source']}; batch {CROZE_BATCH} for CRoZe, {DEFAULT_BATCH} for the others",
        "- seconds: `robnas.proxies.run` per architecture (copy, BN policy, dtype, proxy), network build excluded",
        "- malloc: "
        + (
            "glibc defaults (`--system-malloc`)"
            if args.system_malloc
            else "freed memory kept for reuse (`robnas.runtime.keep_freed_memory`, as the robnas CLI does)"
        ),
        "- RSS in MiB, each proxy in its own process; 'at 10%' after the first tenth of the architectures;"
        " the peak may rise while larger architectures come up, the current RSS must not grow",
        "",
        "| proxy | batch | median s | p90 s | reference s | NaN | peak RSS at 10% | peak RSS at end | RSS at 10% | RSS at end |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['proxy']} | {r['batch']} | {r['median']:.3f} | {r['p90']:.3f} | "
            f"{REFERENCE_SECONDS.get(r['proxy'], '')} | {r['nan']} | {r['peak_10']:.0f} | {r['peak_end']:.0f} | "
            f"{r['current_10']:.0f} | {r['current_end']:.0f} |"
        )
    lines += ["", f"Sum of medians: {sum(r['median'] for r in rows):.3f} s per architecture."]
    # the load at the end includes this benchmark's own threads; only the start tells of others
    if load_start > 0.5 * (os.cpu_count() or 1):
        lines += [
            "",
            "**Warning: the machine was busy when the benchmark started (load average above half the "
            "CPU count); with other work competing for cores the timings above are not representative.**",
        ]
    failures = [r for r in rows if r["first_error"]]
    if failures:
        lines += ["", "First recorded failure per proxy:", ""]
        lines += [f"- {r['proxy']}: {r['first_error']}" for r in failures]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
