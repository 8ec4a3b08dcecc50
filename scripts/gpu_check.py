"""One short run of every GPU path of robnas, one line per path with its figures.

Paths: proxy scoring (``robnas.scoring.score``), the same scoring as Ray tasks that each
reserve a GPU (a local Ray; skipped without the ``ray`` extra), ``pgd-at`` training with AMP and
channels_last (``robnas.train.fit``), ``robnas.evaluate.run`` with attacks and corruptions, and
``robnas train`` under ``torchrun`` (NCCL) when the machine has two GPUs or more. Run through
``scripts/gpu_check.sh``; ``--device cpu`` is a smoke mode at tiny scale (the test suite runs
it so that this script keeps working). Without a CUDA device, ``--device cuda`` (the default)
stops at once with one line saying so.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
PROXIES = ("croze", "synflow", "snip", "grasp", "jacov", "ntk_trace", "params")

#: The work of each path: full (a GPU, a few minutes in all) and tiny (the CPU smoke mode).
SCALES = {
    "full": {
        "images": 5000, "archs": 50, "proxies": PROXIES, "proxy_batch": 64, "arch_opts": {},
        "epochs": 1, "batch": 256, "overrides": {}, "eval_images": 1000, "eval_batch": 250,
        "attacks": "fgsm@8,pgd@8:steps=10", "corruptions": "all@3",
    },
    "tiny": {
        "images": 64, "archs": 2, "proxies": ("croze", "synflow"), "proxy_batch": 8,
        "arch_opts": {"C": 4, "N": 1}, "epochs": 1, "batch": 32, "overrides": {"steps": 1, "val_steps": 1},
        "eval_images": 16, "eval_batch": 16, "attacks": "fgsm@8,pgd@8:steps=1",
        "corruptions": "gaussian_noise@1,fog@3",
    },
}  # fmt: skip


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="scripts/gpu_check.sh", description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda", help="cuda (default), cuda:N, or cpu for the smoke mode")
    ap.add_argument("--scale", choices=sorted(SCALES), help="default: full on cuda, tiny on cpu")
    ap.add_argument("--data", default=None, help="robnas data spec (default: synthetic images)")
    ap.add_argument("--nproc", type=int, default=None, help="torchrun processes (default: the GPU count if >= 2)")
    ap.add_argument("--work", default=None, help="folder for the runs' files (default: a temporary one)")
    ap.add_argument("--out", default=None, help="also write the lines as markdown to this file")
    return ap.parse_args(argv)


def no_cuda_reason() -> str | None:
    """Why CUDA cannot be used here, or None."""
    import torch

    if torch.cuda.is_available():
        return None
    built = torch.version.cuda or "none (a CPU build)"
    return (
        f"no CUDA device (torch {torch.__version__}, CUDA build {built}, "
        f"CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')}); "
        "run on a GPU machine, or pass --device cpu for the smoke mode"
    )


class Meter:
    """Wall seconds and (on CUDA) the peak of allocated memory of one path."""

    def __init__(self, device: str) -> None:
        self.device = device
        self.cuda = device.startswith("cuda")

    def __enter__(self) -> Meter:
        import torch

        if self.cuda:
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        import torch

        if self.cuda:
            torch.cuda.synchronize(self.device)
        self.seconds = time.perf_counter() - self.t0
        self.peak = f"{torch.cuda.max_memory_allocated(self.device) / 2**20:.0f} MiB" if self.cuda else "n/a (cpu)"


class Skip(Exception):
    """A path that cannot run here (its line says why)."""


def _score(scale: dict, data, store, device: str, **parallel) -> list[str]:
    """Score the scale's NB201 architectures (drawn with seed 0) into ``store``; returns them.
    ``parallel``: ``backend`` and ``workers`` of :func:`robnas.scoring.score`."""
    import numpy as np

    from robnas import scoring, spaces

    space = spaces.get("nb201")
    rng = np.random.default_rng(0)
    archs = list(dict.fromkeys(space.format(space.sample(rng)) for _ in range(scale["archs"])))
    scoring.score(
        "nb201", archs, scale["proxies"], data, store, batch_size=scale["proxy_batch"],
        device=device, build_options=scale["arch_opts"], **parallel,
    )  # fmt: skip
    return archs


def path_score(args: argparse.Namespace, scale: dict, work: Path, data) -> str:
    from robnas.store import RunStore

    with Meter(args.device) as m, RunStore(work / "score.sqlite") as store:
        archs = _score(scale, data, store, args.device)
        rows = store.rows()
    nan = sum(1 for r in rows if r.value != r.value)
    return (
        f"{len(archs)} nb201 archs x {len(scale['proxies'])} proxies, batch {scale['proxy_batch']}: "
        f"{m.seconds:.1f} s ({len(archs) / m.seconds:.2f} arch/s), {nan} NaN, peak {m.peak}"
    )


def path_ray(args: argparse.Namespace, scale: dict, work: Path, data) -> str:
    """The scoring path again as Ray tasks on a local Ray (one GPU per task on cuda), compared
    with the process path's values."""
    try:
        import ray
    except ImportError:
        raise Skip("ray is not installed (pip install 'robnas[ray]')") from None
    from robnas.store import RunStore

    device = "cuda" if args.device.startswith("cuda") else "cpu"  # a task sees only its own GPU
    try:
        with Meter(args.device) as m, RunStore(work / "ray.sqlite") as store:
            archs = _score(scale, data, store, device, backend="ray", workers=2)
            got = {(r.arch, r.proxy): r.value for r in store.rows()}
        gpus = ray.cluster_resources().get("GPU", 0)
    finally:
        ray.shutdown()
    with RunStore(work / "score.sqlite") as store:
        reference = {(r.arch, r.proxy): r.value for r in store.rows()}
    diffs = [abs(v - reference[k]) / max(abs(reference[k]), 1e-12) for k, v in got.items() if k in reference and v == v]
    return (
        f"{len(archs)} nb201 archs as Ray tasks (2 in flight, {gpus:g} GPU in the local Ray, device {device}): "
        f"{m.seconds:.1f} s with Ray's start, max relative difference to the process path "
        f"{max(diffs, default=float('nan')):.1e} over {len(diffs)} values"
    )


def path_train(args: argparse.Namespace, scale: dict, work: Path, data) -> str:
    from robnas import spaces
    from robnas import train as api

    net = spaces.get("nb201").build(ARCH, data.num_classes, **scale["arch_opts"])
    with Meter(args.device) as m:
        result = api.fit(
            net, data, "pgd-at", work / "train", epochs=scale["epochs"], batch_size=scale["batch"],
            seed=0, device=args.device, amp=True, channels_last=True, overrides=scale["overrides"],
        )  # fmt: skip
    meta = json.loads((work / "train" / "meta.json").read_text())
    row = result.history[-1]
    return (
        f"nb201 {scale['epochs']} epoch on {meta['n_train']} images, batch {scale['batch']}, "
        f"amp {meta['amp']}, channels_last: {m.seconds:.1f} s, {row['images_per_s']:.0f} images/s, "
        f"val clean {row['val_clean_acc']:.3f} robust {row['val_robust_acc']:.3f}, peak {m.peak}"
    )


def path_evaluate(args: argparse.Namespace, scale: dict, work: Path, data) -> str:
    from robnas import evaluate, models, spaces, targets

    net, _ = models.load_trained(
        work / "train", spaces.get("nb201").build(ARCH, data.num_classes, **scale["arch_opts"])
    )
    attacks = targets.split_specs(scale["attacks"])
    corruptions = targets.split_specs(scale["corruptions"])
    with Meter(args.device) as m:
        table = evaluate.run(
            net, data, attacks, corruptions, batch_size=scale["eval_batch"], limit=scale["eval_images"],
            device=args.device, seed=0, amp=args.device.startswith("cuda"),
        )  # fmt: skip
    s = evaluate.summary(table)
    robust = ", ".join(f"{k} {v:.3f}" for k, v in s["robust_accuracy"].items())
    amp = "bfloat16" if args.device.startswith("cuda") else "off"
    return (
        f"{scale['eval_images']} images, {len(table)} rows, amp {amp}: {m.seconds:.1f} s, clean {s['clean_accuracy']:.3f}, "
        f"{robust}, mean corruption {s['mean_corruption_accuracy']:.3f}, peak {m.peak}"
    )


def path_torchrun(args: argparse.Namespace, scale: dict, work: Path, data_spec: str, nproc: int) -> str:
    out = work / "torchrun"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
        "-m", "robnas", "train", "--arch", f"nb201:{ARCH}", "--recipe", "pgd-at", "--data", data_spec,
        "--epochs", str(scale["epochs"]), "--batch-size", str(scale["batch"]), "--out", str(out),
        "--device", "cuda" if args.device.startswith("cuda") else "cpu", "--no-progress",
    ]  # fmt: skip
    cmd += [f"--arch-opt={k}={v}" for k, v in scale["arch_opts"].items()]
    cmd += [f"--set={k}={v}" for k, v in scale["overrides"].items()]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["(no output)"]
        raise RuntimeError(f"exit {proc.returncode}: {tail[0]}  [{shlex.join(cmd)}]")
    meta = json.loads((out / "meta.json").read_text())
    backend = "nccl" if args.device.startswith("cuda") else "gloo"
    with open(out / "log.csv") as f:
        last = f.read().strip().splitlines()
    header, values = last[0].split(","), last[-1].split(",")
    speed = float(values[header.index("images_per_s")])
    return (
        f"{nproc} processes ({backend}), world size {meta['world_size']}, amp {meta['amp']}: "
        f"{seconds:.1f} s with start-up, {speed:.0f} images/s"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    device = args.device
    if device.startswith("cuda"):
        reason = no_cuda_reason()
        if reason:
            print(f"gpu_check: {reason}", file=sys.stderr)
            return 2
    elif device != "cpu":
        print(f"gpu_check: unknown --device {device!r}; use cuda, cuda:N or cpu", file=sys.stderr)
        return 2
    import torch

    from robnas import data as data_lib

    scale_name = args.scale or ("full" if device.startswith("cuda") else "tiny")
    scale = SCALES[scale_name]
    data_spec = args.data or f"synthetic:{scale['images']}"
    data = data_lib.load(data_spec)
    gpus = torch.cuda.device_count() if device.startswith("cuda") else 0
    nproc = args.nproc if args.nproc is not None else (gpus if gpus >= 2 else 0)
    name = torch.cuda.get_device_name(device) if device.startswith("cuda") else platform.processor() or "cpu"
    header = f"robnas gpu_check on {device} ({name}), torch {torch.__version__}, scale {scale_name}, data {data_spec}"
    print(header, flush=True)
    lines: list[str] = []
    failed = 0
    with tempfile.TemporaryDirectory(prefix="robnas-gpu-check-") as tmp:
        work = Path(args.work or tmp)
        work.mkdir(parents=True, exist_ok=True)
        steps: list[tuple[str, Callable[[], str]]] = [
            ("score", lambda: path_score(args, scale, work, data)),
            ("score on ray", lambda: path_ray(args, scale, work, data)),
            ("train pgd-at", lambda: path_train(args, scale, work, data)),
            ("evaluate", lambda: path_evaluate(args, scale, work, data)),
        ]
        if nproc >= 2:
            steps.append(("torchrun", lambda: path_torchrun(args, scale, work, data_spec, nproc)))
        for label, step in steps:
            try:
                line = f"{label:<13} ok    {step()}"
            except Skip as exc:
                line = f"{label:<13} skip  {exc}"
            except Exception as exc:  # one line per path, the others still run
                failed += 1
                line = f"{label:<13} FAIL  {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            print(line, flush=True)
            lines.append(line)
        if nproc < 2:
            line = f"{'torchrun':<13} skip  needs 2 GPUs (found {gpus}); --nproc 2 forces it"
            print(line)
            lines.append(line)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        command = "bash scripts/gpu_check.sh " + shlex.join(argv if argv is not None else sys.argv[1:])
        out.write_text(
            f"# GPU check\n\n{header}.\n\nCommand: `{command}`\n\n```\n" + "\n".join(lines) + "\n```\n"
        )
        print(f"wrote {out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
