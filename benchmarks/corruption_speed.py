"""Speed of every corruption: robnas (batched torch) against ``imagecorruptions`` (per image), CPU.

One process, one thread (``torch.set_num_threads(1)``; ``OMP_NUM_THREADS=1`` and
``cv2.setNumThreads(1)`` for the reference), the same real CIFAR-10 test images, severity 3,
ImageNet-C parameters on both sides (robnas preset ``imagenet``): robnas corrupts the batch in
one call, ``imagecorruptions`` one image at a time, as its API does. Each size (224x224: the
images upsampled; 32x32: the images themselves) is timed in ``--rounds`` rounds; within a
round every corruption is timed on both sides back to back, so both see the same machine load,
and the table gives the median round. At 32x32 each timing covers ``--repeat`` calls (default
20), so that a millisecond-long call is not lost in the scheduler's noise. ``imagecorruptions`` comes from the ``bench`` extra
(``pip install -e .[bench]``); the NumPy 2 / setuptools shims are those of
``corruption_reference.py``. Output: ``benchmarks/results/corruption_speed.md``.

    python benchmarks/corruption_speed.py [--images 8] [--rounds 3] [--sizes 224,32]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from corruption_reference import REFERENCE_PRELUDE, test_images_224  # noqa: E402
from robnas import corruptions  # noqa: E402

HERE = Path(__file__).resolve().parent
DATA = HERE.parents[1] / "shared" / "data" / "cifar10" / "cifar10_exact_subset.npz"


def reference():
    """``imagecorruptions.corrupt``, imported with the shims of the reference runner."""
    scope: dict = {}
    exec(REFERENCE_PRELUDE, scope)  # imports imagecorruptions, patches skimage / NumPy 2 names
    import cv2

    cv2.setNumThreads(1)
    return scope["corrupt"]


def images(n: int, size: int) -> tuple[np.ndarray, torch.Tensor]:
    if size == 224:
        return test_images_224(n)
    if size != 32:
        raise SystemExit("--sizes: 224 and 32 only")
    with np.load(DATA) as data:
        clean = np.ascontiguousarray(data["x_test"][:n])
    return clean, torch.from_numpy(clean).permute(0, 3, 1, 2).float() / 255


def load() -> str:
    return " / ".join(f"{v:.2f}" for v in os.getloadavg())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--severity", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--sizes", default="224,32")
    ap.add_argument("--repeat", type=int, default=20, help="calls per timing at 32x32 (1 at 224x224)")
    ap.add_argument("--out", default=str(HERE / "results" / "corruption_speed.md"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    corrupt = reference()
    names = corruptions.names("all")
    n, sev = args.images, args.severity
    load_start = load()
    sections: list[str] = []
    for size in [int(s) for s in args.sizes.split(",")]:
        clean, x = images(n, size)
        for name in names:  # warm-up: lazy imports, caches and first-call allocations on both sides
            corruptions.apply(x[:1], name, 1, preset="imagenet")
            corrupt(clean[0], severity=1, corruption_name=name)
        ours: dict[str, list[float]] = {k: [] for k in names}
        ref: dict[str, list[float]] = {k: [] for k in names}
        repeat = args.repeat if size == 32 else 1
        for _ in range(args.rounds):
            for name in names:
                t = time.perf_counter()
                for _ in range(repeat):
                    corruptions.apply(x, name, sev, seed=0, preset="imagenet")
                ours[name].append((time.perf_counter() - t) / repeat)
                np.random.seed(0)
                t = time.perf_counter()
                for _ in range(repeat):
                    for im in clean:
                        corrupt(im, severity=sev, corruption_name=name)
                ref[name].append((time.perf_counter() - t) / repeat)
        o = {k: statistics.median(v) for k, v in ours.items()}
        r = {k: statistics.median(v) for k, v in ref.items()}
        lines = [
            f"## {size}x{size}",
            "",
            "| corruption | robnas img/s | imagecorruptions img/s | speed-up |",
            "|---|---|---|---|",
        ]
        lines += [f"| {k} | {n / o[k]:.1f} | {n / r[k]:.1f} | {r[k] / o[k]:.2f}x |" for k in names]
        slowest = min(names, key=lambda k: r[k] / o[k])
        rest = [k for k in names if k != "glass_blur"]
        for label, group in ((f"all {len(names)}", names), (f"the {len(rest)} without glass_blur", rest)):
            to, tr = sum(o[k] for k in group), sum(r[k] for k in group)
            lines.append(
                f"| **{label} (total time)** | {n * len(group) / to:.1f} | {n * len(group) / tr:.1f} |"
                f" **{tr / to:.2f}x** |"
            )
        lines += ["", f"Slowest relative to the reference: {slowest} ({r[slowest] / o[slowest]:.2f}x).", ""]
        sections += lines
    header = [
        "# Corruption speed: robnas vs imagecorruptions (CPU, one thread, one process)",
        "",
        f"`python benchmarks/corruption_speed.py --images {n} --rounds {args.rounds} --sizes {args.sizes}"
        f" --repeat {args.repeat}`",
        "",
        f"- {n} real CIFAR-10 test images, severity {sev}, ImageNet-C parameters (robnas preset"
        " `imagenet`); robnas corrupts the batch in one call, imagecorruptions one image at a time",
        f"- median of {args.rounds} rounds; in each round every corruption runs on both sides back to back"
        f" ({args.repeat} calls per timing at 32x32)",
        "- the images are a (N, 3, H, W) view of (N, H, W, 3) pixels (channels-last memory), as"
        " `torch.from_numpy(x).permute(0, 3, 1, 2)` makes them",
        f"- machine: {platform.machine()}, {os.cpu_count()} CPUs visible, shared; load average (1/5/15 min)"
        f" {load_start} at start, {load()} at end; torch {torch.__version__}",
        "",
    ]
    text = "\n".join(header + sections)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
