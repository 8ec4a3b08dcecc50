"""CRoZe's speed against an earlier robnas, side by side, and the rank agreement of their values.

Two worker processes, one per robnas source tree (this one and ``--base``, e.g. a worktree of
an earlier commit: ``git worktree add ../robnas-base 8a372e9``), each on ``--threads`` torch
threads. The parent hands them the same NAS-Bench-201 architectures in turn, alternating which
goes first, so both see the same machine load; each builds the network with the same seed and
times ``robnas.proxies.run`` (private copy, BN policy, dtype, proxy; the build is not counted)
on one fixed batch of 8 real CIFAR-10 training images (``proxy_batch(data, 8, seed=0)``,
the reference's batch size). Reports per proxy the median seconds of each tree, their ratio,
and the Spearman rho between the two trees' values. The new tree's worker also times CRoZe's
floor on each architecture: three plain float32 forward + backward passes of the same network
(BN removed as for ``croze``, no CRoZe bookkeeping), the passes CRoZe cannot do without (the
clean pass, the input step on the surrogate, the perturbed pass). ``--proxies`` run on all ``--archs``
architectures; ``--extra`` proxies only on the first ``--extra-archs`` of them (timings).

    python benchmarks/croze_speed.py --base ../robnas-base [--archs 200] [--proxies croze]
        [--extra croze_fixed,robust_zc --extra-archs 40]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "cifar10" / "cifar10_exact_subset.npz"
BATCH = 8


def worker(args: argparse.Namespace) -> None:
    """Answer one JSON line per architecture index read from stdin."""
    import numpy as np
    import torch

    import robnas
    from robnas.data import load_npz, proxy_batch
    from robnas.runtime import keep_freed_memory

    torch.set_num_threads(args.threads)
    keep_freed_memory()
    space = robnas.spaces.get("nb201")
    x, y = proxy_batch(load_npz(args.data), BATCH, seed=0)
    rng = np.random.default_rng(args.seed)
    archs = [space.sample(rng) for _ in range(args.archs)]
    proxies = [p for p in args.proxies.split(",") if p]
    extra = [p for p in args.extra.split(",") if p]
    print(json.dumps({"ready": robnas.__file__}), flush=True)
    for line in sys.stdin:
        i = int(line)
        out: dict[str, object] = {"arch": "|".join(archs[i])}
        for name in proxies + (extra if i < args.extra_archs else []):
            torch.manual_seed(args.seed + i)
            model = space.build(archs[i])
            result = robnas.proxies.run(name, model, x, y)
            out[name] = [result.value, result.seconds, result.error]
        if args.floor:
            torch.manual_seed(args.seed + i)
            out["floor"] = [float("nan"), three_passes(space.build(archs[i]), x, y), ""]
        print(json.dumps(out), flush=True)


def three_passes(model, x, y) -> float:
    """Seconds of three float32 forward + backward passes of ``model`` with BN removed as for
    ``croze`` (the copy and BN removal are not timed)."""
    import time as clock

    import torch
    import torch.nn.functional as F

    from robnas.proxies.base import clone_module, remove_batchnorm

    net = remove_batchnorm(clone_module(model, torch.float32)).train()
    x = x.float().contiguous(memory_format=torch.channels_last)
    start = clock.perf_counter()
    for _ in range(3):
        F.cross_entropy(net(x), y).backward()
    return clock.perf_counter() - start


def start(src: Path, args: argparse.Namespace) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(src / "src"))
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", "--archs", str(args.archs)]
    cmd += ["--seed", str(args.seed), "--threads", str(args.threads), "--proxies", args.proxies]
    cmd += ["--extra", args.extra, "--extra-archs", str(args.extra_archs)]
    cmd += ["--data", str(args.data)] + (["--floor"] if src == ROOT else [])
    proc = subprocess.Popen(cmd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    ready = json.loads(proc.stdout.readline())  # type: ignore[union-attr]
    print(f"worker for {src}: robnas from {ready['ready']}", file=sys.stderr)
    return proc


def ask(proc: subprocess.Popen, i: int) -> dict:
    proc.stdin.write(f"{i}\n")  # type: ignore[union-attr]
    proc.stdin.flush()  # type: ignore[union-attr]
    return json.loads(proc.stdout.readline())  # type: ignore[union-attr]


def load() -> str:
    return " / ".join(f"{v:.2f}" for v in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--base", type=Path, required=False, help="the earlier robnas source tree")
    parser.add_argument("--archs", type=int, default=200)
    parser.add_argument("--proxies", default="croze", help="proxies scored on every architecture")
    parser.add_argument("--extra", default="croze_fixed,robust_zc", help="proxies timed on --extra-archs")
    parser.add_argument("--extra-archs", type=int, default=40)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "croze_speed.md")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--floor", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    if args.base is None:
        parser.error("--base (the earlier robnas source tree) is required")
    if not args.data.exists():
        sys.exit(f"error: real CIFAR-10 images not found at {args.data}")
    from scipy.stats import spearmanr

    load_start = load()
    started = time.perf_counter()
    trees = {"new": ROOT, "base": args.base.resolve()}
    procs = {k: start(v, args) for k, v in trees.items()}
    rows: dict[str, list[dict]] = {"new": [], "base": []}
    for i in range(args.archs):
        order = ["new", "base"] if i % 2 == 0 else ["base", "new"]
        for k in order:
            rows[k].append(ask(procs[k], i))
        if (i + 1) % 20 == 0:
            print(f"{i + 1}/{args.archs} architectures, load {load()}", file=sys.stderr)
    for proc in procs.values():
        proc.stdin.close()  # type: ignore[union-attr]
        proc.wait()
    load_end = load()
    minutes = (time.perf_counter() - started) / 60

    lines = [
        "# CRoZe speed: this tree against an earlier robnas, side by side",
        "",
        f"`python benchmarks/croze_speed.py --base {args.base} --archs {args.archs} --proxies {args.proxies}"
        f" --extra {args.extra} --extra-archs {args.extra_archs} --threads {args.threads}`",
        "",
        f"- date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; {minutes:.1f} min",
        f"- machine: {platform.machine()}, {os.cpu_count()} CPUs visible, shared; load average (1/5/15 min)"
        f" {load_start} at start, {load_end} at end; {args.threads} torch thread(s) per worker",
        f"- new: {trees['new']}; base: {trees['base']}",
        f"- {args.archs} random NAS-Bench-201 architectures (seed {args.seed}), the same network (seed) in both"
        f" trees; one batch of {BATCH} real CIFAR-10 training images; the two workers alternate which scores"
        " an architecture first",
        "- seconds: `robnas.proxies.run` per architecture (copy, BN policy, dtype, proxy), build excluded",
        "- each worker scores `--proxies` then `--extra` on one network in turn, so `croze_fixed` right after"
        " `croze` reuses its clean pass and input-step gradient in the new tree (`robnas.proxies.croze._clean_pass`), as in any sweep that scores both",
        "",
        "| proxy | architectures | new median s | base median s | base / new | Spearman rho new vs base"
        " | max rel. diff | NaN new / base |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in [p for p in (args.proxies + "," + args.extra).split(",") if p]:
        new = [r[name] for r in rows["new"] if name in r]
        base = [r[name] for r in rows["base"] if name in r]
        t_new = statistics.median(v[1] for v in new)
        t_base = statistics.median(v[1] for v in base)
        pairs = [(a[0], b[0]) for a, b in zip(new, base, strict=True) if not (a[2] or b[2])]
        rho = spearmanr([p[0] for p in pairs], [p[1] for p in pairs])[0] if len(pairs) > 2 else float("nan")
        rel = max((abs(a - b) / abs(b) for a, b in pairs if b), default=float("nan"))
        nan_new = sum(bool(v[2]) for v in new)
        nan_base = sum(bool(v[2]) for v in base)
        lines.append(
            f"| {name} | {len(new)} | {t_new:.3f} | {t_base:.3f} | {t_base / t_new:.2f}x | {rho:.4f} | {rel:.1e} |"
            f" {nan_new} / {nan_base} |"
        )
    floor = statistics.median(r["floor"][1] for r in rows["new"])
    base_croze = statistics.median(r["croze"][1] for r in rows["base"]) if "croze" in rows["base"][0] else None
    lines += [
        "",
        f"CRoZe's floor: three plain float32 forward + backward passes of the same networks (BN removed, no"
        f" CRoZe bookkeeping), timed in the new tree's worker: median {floor:.3f} s"
        + (f"; base croze / floor = {base_croze / floor:.2f}x, the most any implementation of the three"
           " passes in float32 could gain over the base" if base_croze else "")
        + ".",
    ]
    lines.append("")
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
