"""Cost of weight sharing: a supernet training step against the standalone sub-network's step.

For each space (``nb201`` C=16 N=5, ``darts`` C=16 8 cells, ``robnet`` C=16 8 cells), every
repeat draws a random path, times one SGD training step (forward, cross-entropy, backward,
update) of the supernet on that path (``net(x, arch)``) and then one of the standalone
sub-network of the same path (``net.subnet(arch)``), on the same batch of real CIFAR-10 images,
in the same process; the medians and the median of the per-repeat ratios are reported. Peak
memory: in a fresh subprocess per network, the resident set size once it is built and the peak
during three training steps of one fixed path (Linux ``VmHWM``, reset through
``/proc/self/clear_refs`` after the build).

    OMP_NUM_THREADS=1 python benchmarks/supernet_cost.py --repeats 7 --batch-size 32
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
RESULTS = Path(__file__).resolve().parent / "results"
SPACES = {"nb201": {"C": 16, "N": 5}, "darts": {"C": 16, "layers": 8}, "robnet": {"C": 16, "layers": 8}}


def batch(data: Path, size: int):
    import numpy as np
    import torch

    with np.load(data) as f:
        x = torch.from_numpy(f["x_train"][:size]).permute(0, 3, 1, 2).float().div(255.0)
        y = torch.from_numpy(f["y_train"][:size]).long()
    return x, y


def step(model, x, y, arch=None) -> float:
    """Seconds of one SGD step of ``model`` (a supernet when ``arch`` is given)."""
    import torch

    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    start = time.perf_counter()
    logits = model(x) if arch is None else model(x, arch)
    loss = torch.nn.functional.cross_entropy(logits, y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return time.perf_counter() - start


def timing(space: str, options: dict, repeats: int, x, y, seed: int) -> dict:
    import torch

    from robnas.oneshot import supernet

    torch.manual_seed(seed)
    net = supernet(space, **options).train()
    gen = torch.Generator().manual_seed(seed)
    step(net, x, y, net.sample_path(gen))  # warm-up
    sup, sub, ratio = [], [], []
    for _ in range(repeats):
        arch = net.sample_path(gen)
        standalone = net.subnet(arch).train()
        step(standalone, x, y)  # warm-up of this sub-network
        a = step(net, x, y, arch)
        b = step(standalone, x, y)
        sup.append(a)
        sub.append(b)
        ratio.append(a / b)
    return {
        "space": space,
        "weights": sum(p.numel() for p in net.parameters()),
        "supernet_s": statistics.median(sup),
        "subnet_s": statistics.median(sub),
        "ratio": statistics.median(ratio),
        "ratio_min": min(ratio),
        "ratio_max": max(ratio),
    }


def _status_mib(field: str) -> float:
    with open("/proc/self/status") as fh:
        line = next(x for x in fh if x.startswith(field + ":"))
    return int(line.split()[1]) / 1024


def memory_child(kind: str, space: str, data: Path, size: int, seed: int) -> None:
    """Print the RSS before and the peak RSS during three training steps of ``kind`` (supernet or
    subnet), in MiB: the peak is reset (``/proc/self/clear_refs``) once the network is built."""
    import gc

    import torch

    from robnas.oneshot import supernet

    x, y = batch(data, size)
    torch.manual_seed(seed)
    net = supernet(space, **SPACES[space]).train()
    arch = net.sample_path(torch.Generator().manual_seed(seed))
    if kind == "subnet":  # the path's standalone network; the supernet is freed before the steps
        sub = net.subnet(arch).train()
        del net
        net, arch = sub, None
    gc.collect()
    before = _status_mib("VmRSS")
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")  # reset the peak (VmHWM) to the current RSS (Linux >= 4.0)
    for _ in range(3):
        step(net, x, y, arch)
    print(json.dumps({"before": before, "peak": _status_mib("VmHWM")}))


def memory(kind: str, space: str, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, __file__, "--child", kind, "--space", space, "--data", str(args.data),
           "--batch-size", str(args.batch_size), "--seed", str(args.seed)]  # fmt: skip
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
    return json.loads(out)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--spaces", default=",".join(SPACES))
    parser.add_argument("--data", type=Path, default=SHARED / "cifar10" / "cifar10_exact_subset.npz")
    parser.add_argument("--out", type=Path, default=RESULTS / "supernet_cost.md")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--space", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        memory_child(args.child, args.space, args.data, args.batch_size, args.seed)
        return

    import torch

    x, y = batch(args.data, args.batch_size)
    start = time.perf_counter()
    rows = []
    for space in args.spaces.split(","):
        row = timing(space, SPACES[space], args.repeats, x, y, args.seed)
        for kind in ("supernet", "subnet"):
            got = memory(kind, space, args)
            row[f"{kind}_before"], row[f"{kind}_peak"] = got["before"], got["peak"]
        rows.append(row)
        print(row, flush=True)
    lines = [
        "# Supernet step against the standalone sub-network's step",
        "",
        f"One SGD step (forward, cross-entropy, backward, update) on the same batch of {args.batch_size} real "
        "CIFAR-10 training images (32x32), one torch thread, CPU; every repeat draws a random path and times the "
        "supernet on it, then the standalone `net.subnet(arch)` of that path (each warmed up first); medians over "
        f"{args.repeats} repeats, ratio = median of the per-repeat ratios (range in brackets). Memory: in a fresh "
        "subprocess per network, the resident set size once the network is built (imports included; the "
        "sub-network's subprocess builds the supernet to take `net.subnet(arch)` from it, then frees it) and its "
        "peak during three training steps of one fixed path (`VmHWM` after resetting it through "
        "`/proc/self/clear_refs`); step memory = peak - before.",
        "",
        "| space (build) | supernet weights | supernet step (s) | sub-network step (s) | ratio | "
        "supernet: RSS before / peak during steps (MiB) | sub-network: RSS before / peak (MiB) | "
        "step memory, supernet / sub-network (MiB) |",
        "|:--|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in rows:
        build = ", ".join(f"{k}={v}" for k, v in SPACES[r["space"]].items())
        lines.append(
            f"| {r['space']} ({build}) | {r['weights']:,} | {r['supernet_s']:.3f} | {r['subnet_s']:.3f} | "
            f"{r['ratio']:.2f} [{r['ratio_min']:.2f}-{r['ratio_max']:.2f}] | "
            f"{r['supernet_before']:.0f} / {r['supernet_peak']:.0f} | {r['subnet_before']:.0f} / {r['subnet_peak']:.0f} | "
            f"{r['supernet_peak'] - r['supernet_before']:.0f} / {r['subnet_peak'] - r['subnet_before']:.0f} |"
        )
    lines += [
        "",
        f"Machine: {platform.machine()}, {platform.python_implementation()} {platform.python_version()}, "
        f"torch {torch.__version__}, `OMP_NUM_THREADS=1`, on a 2-core machine shared with other jobs (absolute "
        "times vary with the load; the two steps of a repeat run back to back). Whole run: "
        f"{time.perf_counter() - start:.0f} s wall.",
        "",
        "```",
        "OMP_NUM_THREADS=1 python benchmarks/supernet_cost.py "
        + " ".join(shlex.quote(a) for a in sys.argv[1:]),
        "```",
    ]
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
