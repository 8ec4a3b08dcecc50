"""Bring-your-own-images end to end: an image folder cut from CIFAR-10, written as PNG files,
then search -> train -> evaluate with a baseline beside the winner (``robnas pipeline``).

1. Writes ``--images`` (``train/<class>/*.png``, ``val/<class>/*.png``): the first
   ``--train-per-class`` training and ``--val-per-class`` test images of each class of ``--source``
   (any robnas data spec; default the bit-exact CIFAR-10 excerpt in ``../shared/data``).
2. Times reading the folder: the first read (decoding every PNG into the cache), a second read
   (the memory-mapped cache), and ``np.load`` of the same arrays from an ``.npz``, each followed
   by one pass over every pixel, interleaved over ``--repeats`` rounds (medians).
3. Runs ``--config`` (default ``benchmarks/pipeline_imagefolder.toml``: the CPU scale;
   ``pipeline_imagefolder_paper.toml`` is the paper scale) and copies its report, figures and stage
   outputs to ``--results`` with a README naming the command, the timings and the machine load.

    nice -n 10 python benchmarks/imagefolder_pipeline.py
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from robnas import data
from robnas.pipeline import load_config, run_pipeline

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared" / "data" / "cifar10" / "cifar10_exact_subset.npz"
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def write_folder(source: str, images: Path, train_per_class: int, val_per_class: int) -> dict[str, int]:
    """PNG files of the first N images per class of each split; returns the counts written."""
    counts = {}
    for split, folder, per_class in (("train", "train", train_per_class), ("test", "val", val_per_class)):
        arrays = data.load(source, split)
        names = arrays.classes or CIFAR10_CLASSES[: arrays.num_classes]
        written = 0
        for label, name in enumerate(names):
            target = images / folder / name
            target.mkdir(parents=True, exist_ok=True)
            picked = np.flatnonzero(arrays.y == label)
            picked = picked if per_class <= 0 else picked[:per_class]
            for i in picked:
                path = target / f"{i:05d}.png"
                if not path.is_file():
                    Image.fromarray(np.asarray(arrays.x[i])).save(path)
                written += 1
        counts[folder] = written
    return counts


def _touch_all(x: np.ndarray) -> int:
    return int(np.asarray(x).sum(dtype=np.int64) % 7)


def time_reads(images: Path, repeats: int) -> dict[str, float]:
    """Median seconds of: decoding into the cache, reading the cache, reading an .npz."""
    spec = f"imagefolder:{images}"
    train = data.load(spec)
    with tempfile.TemporaryDirectory() as tmp:
        npz = Path(tmp) / "same.npz"
        np.savez(npz, x_train=np.asarray(train.x), y_train=train.y)
        rounds: dict[str, list[float]] = {"decode": [], "cache": [], "npz": []}
        for _ in range(repeats):
            shutil.rmtree(images / ".robnas-cache", ignore_errors=True)
            for kind in ("decode", "cache", "npz"):
                start = time.perf_counter()
                arrays = data.load(spec) if kind != "npz" else data.load_npz(npz)
                _touch_all(arrays.x)
                rounds[kind].append(time.perf_counter() - start)
    return {k: statistics.median(v) for k, v in rounds.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default=str(SHARED))
    parser.add_argument("--images", type=Path, default=HERE.parent / "runs" / "cifar10-images")
    parser.add_argument("--train-per-class", type=int, default=100)
    parser.add_argument("--val-per-class", type=int, default=30)
    parser.add_argument("--config", type=Path, default=HERE / "pipeline_imagefolder.toml")
    parser.add_argument("--results", type=Path, default=HERE / "results" / "pipeline_imagefolder")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if args.source == str(SHARED) and not SHARED.is_file():
        raise SystemExit(f"{SHARED} is absent: pass --source cifar10:ROOT (the official CIFAR-10 python batches)")

    counts = write_folder(args.source, args.images, args.train_per_class, args.val_per_class)
    print(f"image folder {args.images}: {counts}")
    reads = time_reads(args.images, args.repeats)
    print("reads (median s):", {k: round(v, 3) for k, v in reads.items()})
    if args.config.is_absolute() and args.config.is_relative_to(Path.cwd()):
        args.config = args.config.relative_to(Path.cwd())  # paths in the report relative to the checkout
    config = load_config(args.config)
    load_before = os.getloadavg()
    start = time.perf_counter()
    report = run_pipeline(args.config, log=print)
    wall = time.perf_counter() - start
    load_after = os.getloadavg()

    out = Path(config["out"])
    results = args.results
    results.mkdir(parents=True, exist_ok=True)
    for name in ("report.md", "config.json", "search.json", "train.json", "evaluate.json"):
        shutil.copy(out / name, results / name)
    for figure in out.glob("*.png"):
        shutil.copy(figure, results / figure.name)
    for name in config["train"].get("baselines", []):
        for part in ("train.json", "evaluate.json"):
            shutil.copy(out / "baselines" / name / part, results / f"baseline_{name}_{part}")
    trained = json.loads((out / "train.json").read_text())
    baselines = {
        name: json.loads((out / "baselines" / name / "train.json").read_text())
        for name in config["train"].get("baselines", [])
    }
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    n_train, n_val = counts["train"], counts["val"]
    lines = [
        "# Own images end to end: CIFAR-10 as a PNG image folder, search -> train -> evaluate, with a baseline",
        "",
        f"Command: `nice -n 10 python benchmarks/imagefolder_pipeline.py` (config `{args.config}`,"
        f" copied here as `config.json`); torch {torch.__version__}, {platform.machine()}, "
        f"{torch.get_num_threads()} torch threads, no GPU.",
        f"Machine load (1/5/15 min) before the pipeline {tuple(round(v, 1) for v in load_before)}, after "
        f"{tuple(round(v, 1) for v in load_after)}; `uptime` at the end: `{uptime}`.",
        "",
        f"- image folder: {n_train} training images ({args.train_per_class} per class) and {n_val} validation images "
        f"({args.val_per_class} per class) of `{Path(args.source).name}` written as PNG files, 32 x 32, 10 classes",
        f"- reading it (median of {args.repeats} interleaved rounds, then one pass over every pixel): first read, "
        f"decoding every PNG into the cache, {reads['decode']:.2f} s; second read, from the memory-mapped cache, "
        f"{reads['cache']:.3f} s; the same arrays from an `.npz`, {reads['npz']:.3f} s",
        f"- pipeline wall time {wall / 60:.1f} min; training: winner {trained.get('seconds', 0):.0f} s"
        + "".join(f", {name} {b.get('seconds', 0):.0f} s" for name, b in baselines.items()),
        "",
        "What this scale allows to conclude: the pipeline reads an image folder, finds, trains and",
        "evaluates a network and a baseline with one recipe and one evaluation, and reports them side by",
        "side. A few epochs on a thousand images leave both networks far from converged, so the",
        "accuracies compare nothing; `benchmarks/pipeline_imagefolder_paper.toml` is the paper scale.",
        "",
        "`report.md` is the pipeline's own report.",
        "",
    ]
    (results / "README.md").write_text("\n".join(lines))
    print(f"report {report}; results in {results}")


if __name__ == "__main__":
    main()
