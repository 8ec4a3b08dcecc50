"""Training throughput (images/s) of the standard and PGD-AT recipes for one NB201 and one DARTS network.

PGD-7 adversarial training costs 7 attack forward/backward passes, one clean eval forward
and one training forward/backward per batch, so the expected pgd-at / standard ratio is
about 1 / (steps + 1) = 0.125 (attack backward passes need input gradients only, which can
make it somewhat higher). Each measurement trains ``--epochs`` epochs of
``--images`` synthetic 32x32 images through :func:`robnas.train.fit` (no validation split)
and reports the last epoch's images/s, so start-up costs are excluded.

    python benchmarks/train_speed.py                      # CPU, small sizes
    python benchmarks/train_speed.py --device cuda --images 4096 --batch-size 256
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import torch

from robnas import data, spaces, zoo
from robnas.spaces.network import count_parameters
from robnas.train import fit

NB201_ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
DARTS_V2 = zoo.MODELS.get("darts_v2").arch


def networks(device: torch.device) -> list[tuple[str, str, dict]]:
    """(label, space:arch, build options); full-size networks on GPU, reduced ones on CPU."""
    if device.type == "cuda":
        nb = {"C": 16, "N": 5}
        darts = {"C": 36, "layers": 20}
    else:
        nb = {"C": 16, "N": 5}
        darts = {"C": 16, "layers": 8}
    out = [(f"NB201 C={nb['C']} N={nb['N']}", f"nb201:{NB201_ARCH}", nb)]
    if "darts" in spaces.names():
        out.append((f"DARTS-V2 C={darts['C']} L={darts['layers']}", f"darts:{DARTS_V2}", darts))
    return out


def measure(
    spec: str,
    options: dict,
    recipe: str,
    args: argparse.Namespace,
    device: torch.device,
    channels_last: bool | None,
) -> dict:
    space, _, arch = spec.partition(":")
    torch.manual_seed(0)
    net = spaces.get(space).build(arch, 10, **options)
    images = data.synthetic(args.images, seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        result = fit(
            net,
            images,
            recipe,
            tmp,
            epochs=args.epochs,
            batch_size=args.batch_size,
            val_fraction=0.0,
            device=str(device),
            channels_last=channels_last,
        )
    return {"images_per_s": result.history[-1]["images_per_s"], "params": count_parameters(net)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--images", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "train_speed.md")
    parser.add_argument(
        "--layouts",
        default="default",
        help="comma-separated memory formats to time: default (fit's choice), contiguous, channels_last",
    )
    args = parser.parse_args()
    layouts = {"default": None, "contiguous": False, "channels_last": True}
    for name in args.layouts.split(","):
        if name not in layouts:
            parser.error(f"unknown layout {name!r}; use {', '.join(layouts)}")
    torch.set_num_threads(args.threads)
    devices = [torch.device("cuda" if torch.cuda.is_available() else "cpu")] if args.device == "auto" else []
    if args.device == "auto" and torch.cuda.is_available():
        devices.insert(0, torch.device("cpu"))
    if args.device != "auto":
        devices = [torch.device(args.device)]

    rows = []
    for device in devices:
        for label, spec, options in networks(device):
            for layout in args.layouts.split(","):
                speeds = {}
                for recipe in ("standard", "pgd-at"):
                    t0 = time.perf_counter()
                    m = measure(spec, options, recipe, args, device, layouts[layout])
                    speeds[recipe] = m["images_per_s"]
                    print(
                        f"{device.type} {label} {layout} {recipe}: {m['images_per_s']:.1f} img/s "
                        f"({time.perf_counter() - t0:.0f} s)"
                    )
                rows.append((device.type, label, layout, m["params"], speeds["standard"], speeds["pgd-at"]))

    lines = [
        "# Training throughput: standard vs PGD-7 adversarial training",
        "",
        "Produced by `benchmarks/train_speed.py` "
        f"(`--images {args.images} --batch-size {args.batch_size} --epochs {args.epochs} --threads {args.threads} "
        f"--layouts {args.layouts}`): "
        "images/s of the last epoch of `robnas.train.fit` on synthetic 32x32 images, no validation split. "
        "pgd-at = PGD-7 (eps 8/255, step 2/255), i.e. 7 attack passes + 1 clean eval forward + 1 training pass "
        "per batch; the expected ratio is about 1/(7+1) = 0.125. It can come out higher because the "
        "attack's backward passes compute input gradients only (no weight gradients) and run BN in eval mode.",
        "",
        f"Host: {platform.machine()} {platform.processor() or ''}, torch {torch.__version__}, "
        f"{args.threads} CPU thread(s). The CPU is shared with other jobs, so absolute CPU figures are noisy "
        "and small; the ratio is the meaningful number. CPU runs use a reduced DARTS network; GPU runs "
        "(when a GPU is present) use full-size networks with bf16 autocast. Layout: the memory format of "
        "images and network (`default`: `fit`'s choice, channels_last on CUDA, contiguous on the CPU).",
        "",
        "| device | network | layout | params | standard img/s | pgd-at img/s | pgd-at / standard |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for dev, label, layout, params, std, adv in rows:
        lines.append(
            f"| {dev} | {label} | {layout} | {params / 1e6:.3f} M | {std:.1f} | {adv:.1f} | {adv / std:.3f} |"
        )
    if "darts" not in spaces.names():
        lines += ["", "The DARTS space is not available in this installation; its rows are skipped."]
    if not any(dev == "cuda" for dev, *_ in rows):
        lines += ["", "No GPU was available for this run; GPU rows are absent."]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
