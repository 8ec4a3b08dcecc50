"""Compare robnas.corruptions (preset ``imagenet``) with the ``imagecorruptions`` package, image by image.

The reference runs in the interpreter given by ``--reference-python``, which must import
``imagecorruptions`` (``pip install -e .[bench]`` puts it in robnas's own environment; it is
never a core dependency). Its ``glass_blur`` and ``gaussian_blur`` call
``skimage.filters.gaussian(multichannel=True)``, removed in scikit-image 0.20; the runner maps
it to ``channel_axis=-1``, which is what the old keyword meant, and supplies ``np.float_`` and
``pkg_resources.resource_filename`` where NumPy 2 and new setuptools removed them.

Images: the first CIFAR-10 test images of ``../shared/data/cifar10`` upsampled to 224x224.
For each corruption and severity the table gives PSNR(robnas, reference) and, since the
random draws differ, the degradation of each against the clean image (PSNR to clean): for a
random corruption the two degradations should agree; for a deterministic one the PSNR
between the outputs should be high. Output: ``benchmarks/results/corruption_reference.md``.

    python benchmarks/corruption_reference.py --reference-python /tmp/icvenv/bin/python --images 4
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from robnas import corruptions

HERE = Path(__file__).resolve().parent
DATA = HERE.parents[1] / "shared" / "data" / "cifar10" / "cifar10_exact_subset.npz"
DETERMINISTIC = {
    "defocus_blur",
    "zoom_blur",
    "brightness",
    "contrast",
    "pixelate",
    "jpeg_compression",
    "gaussian_blur",
    "saturate",
}

#: Runs in the reference interpreter: imports imagecorruptions and maps the ``multichannel``
#: argument that current scikit-image removed (shared with corruption_speed.py).
REFERENCE_PRELUDE = r"""
import json, os, sys, time, types, warnings
import numpy as np
warnings.simplefilter("ignore")
if not hasattr(np, "float_"):  # fog uses np.float_, removed in NumPy 2
    np.float_ = np.float64
try:
    import pkg_resources  # imagecorruptions finds its frost images with it; gone from new setuptools
except ImportError:
    import importlib.util
    pkg_resources = types.ModuleType("pkg_resources")
    pkg_resources.resource_filename = lambda package, name: os.path.join(
        os.path.dirname(importlib.util.find_spec(package).origin), name
    )
    sys.modules["pkg_resources"] = pkg_resources
import skimage.filters
import imagecorruptions.corruptions as ic
from imagecorruptions import corrupt

_gaussian = skimage.filters.gaussian
def gaussian(image, *args, multichannel=None, **kw):
    if multichannel:
        kw["channel_axis"] = -1
    return _gaussian(image, *args, **kw)
ic.gaussian = gaussian
"""

RUNNER = (
    REFERENCE_PRELUDE
    + r"""
spec = json.load(open(sys.argv[1]))
images = np.load(spec["images"])
out = {}
for name in spec["names"]:
    for s in range(1, 6):
        np.random.seed(0)
        out[f"{name}@{s}"] = np.stack([corrupt(im, severity=s, corruption_name=name) for im in images])
for angle in spec["angles"]:
    out[f"motion_kernel@{angle}"] = np.stack([ic._motion_blur(im, 15, 5, angle) for im in images])
np.savez(spec["out"], **out)
"""
)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """Our float output as the reference stores it: ``np.uint8`` truncation of x * 255."""
    return np.floor(x.clamp(0, 1).mul(255).permute(0, 2, 3, 1).numpy() + 1e-6).astype(np.uint8)


def test_images_224(n: int) -> tuple[np.ndarray, torch.Tensor]:
    """The first ``n`` real CIFAR-10 test images upsampled to 224x224 and rounded to uint8:
    (N, 224, 224, 3) uint8 for the reference, and the same pixels as (N, 3, 224, 224) in [0, 1]."""
    with np.load(DATA) as data:
        small = torch.from_numpy(data["x_test"][:n]).permute(0, 3, 1, 2).float() / 255
    big = F.interpolate(small, size=(224, 224), mode="bilinear", align_corners=False).clamp(0, 1)
    clean = np.round(big.permute(0, 2, 3, 1).numpy() * 255).astype(np.uint8)
    return clean, torch.from_numpy(clean).permute(0, 3, 1, 2).float() / 255


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reference-python", required=True, help="interpreter that can import imagecorruptions")
    ap.add_argument("--images", type=int, default=4)
    ap.add_argument("--out", default=str(HERE / "results" / "corruption_reference.md"))
    args = ap.parse_args()
    torch.set_num_threads(1)

    clean, x = test_images_224(args.images)
    names = corruptions.names("all")
    angles = [-40.0, -10.0, 0.0, 25.0, 45.0]

    with tempfile.TemporaryDirectory() as tmp:
        np.save(f"{tmp}/images.npy", clean)
        spec = {"images": f"{tmp}/images.npy", "names": names, "angles": angles, "out": f"{tmp}/ref.npz"}
        Path(f"{tmp}/spec.json").write_text(json.dumps(spec))
        Path(f"{tmp}/runner.py").write_text(RUNNER)
        t0 = time.time()
        subprocess.run([args.reference_python, f"{tmp}/runner.py", f"{tmp}/spec.json"], check=True)
        ref_seconds = time.time() - t0
        with np.load(f"{tmp}/ref.npz") as ref_file:
            ref = {k: ref_file[k] for k in ref_file.files}

    lines = [
        "# robnas corruptions (preset `imagenet`) vs `imagecorruptions` 1.1.2",
        "",
        f"{args.images} CIFAR-10 test images upsampled to 224x224; reference run took {ref_seconds:.1f} s.",
        "Columns: PSNR between the two outputs (dB, higher = closer; meaningful for deterministic",
        "corruptions, marked *), and each output's PSNR to the clean image (the degradation; for",
        "random corruptions these two should be close). Mean over images.",
        "Generated by `python benchmarks/corruption_reference.py --reference-python PYTHON`.",
        "",
        "| corruption | sev | PSNR(robnas, ref) | ref vs clean | robnas vs clean |",
        "|---|---|---|---|---|",
    ]
    for name in names:
        for s in range(1, 6):
            ours = to_uint8(corruptions.apply(x, name, s, seed=0, preset="imagenet"))
            theirs = ref[f"{name}@{s}"]
            pair = np.mean([psnr(a, b) for a, b in zip(ours, theirs, strict=True)])
            deg_ref = np.mean([psnr(a, b) for a, b in zip(theirs, clean, strict=True)])
            deg_ours = np.mean([psnr(a, b) for a, b in zip(ours, clean, strict=True)])
            mark = "*" if name in DETERMINISTIC else ""
            lines.append(f"| {name}{mark} | {s} | {pair:.1f} | {deg_ref:.1f} | {deg_ours:.1f} |")

    lines += ["", "Motion-blur line kernel alone (radius 15, sigma 5) at fixed angles:", ""]
    lines += ["| angle | PSNR(robnas, ref) |", "|---|---|"]
    for angle in angles:
        ours = corruptions._motion_blur(x * 255, 15, 5, np.full(len(x), angle))
        theirs = ref[f"motion_kernel@{angle}"]
        value = np.mean(
            [
                psnr(a, b)
                for a, b in zip(ours.permute(0, 2, 3, 1).numpy(), theirs.astype(np.float64), strict=True)
            ]
        )
        lines.append(f"| {angle:g} | {value:.1f} |")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
