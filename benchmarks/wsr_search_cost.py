"""What does Wsr-NAS's AN-Estimator save? The search cost of ``wsr-nas`` (three real PGD strengths
plus three AN-E estimated ones per epoch) against ``wsr-naive`` (all six strengths by real PGD, no
AN-E), same supernet, epochs and data, side by side in one process (Cheng et al., AAAI 2023,
"around 40% reduction in search time compared with the naive approach"; spec robnets_wsrnas.md
B4-B5).

The two searches run interleaved through :func:`robnas.oneshot.wsr.run_wsr`: one epoch of one,
then one epoch of the other (which goes first alternates), each resuming from its checkpoint, so
both see the same machine load. Reported: the seconds of each phase's epochs (the cost split
each epoch records: supernet training, PGD, AN-E, evaluation forwards, predictor) and the wall
seconds of each call (with the checkpoint save and load), their medians and totals, and the
ratio. Beside the measurement, a cost model counts the forward+backward passes of PGD and
training per search epoch for the measured setting and for the reference's (25,000 / 25,000
images, batch 64), since the saving depends on how many validation batches each epoch attacks
against the fixed 11 batches of noises the AN-E's memory gets.

    python benchmarks/wsr_search_cost.py                                            # CPU scale
    python benchmarks/wsr_search_cost.py --data cifar10:./data --images 0 --C 16 --layers 8 \\
        --batch-size 64 --train-batches 0 --valid-batches 0 --noise-batches 10 --warmup 100 \\
        --memory 100 --search 200 --device cuda --out wsr_search_cost_paper.md       # paper scale
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch

from robnas import data
from robnas.oneshot.wsr.search import COSTS, WsrConfig, WsrEpoch, run_wsr

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "shared" / "data" / "cifar10" / "cifar10_exact_subset.npz"
KINDS = ("wsr-nas", "wsr-naive")


def pass_model(config: WsrConfig, n_train: int, n_valid: int) -> dict[str, float]:
    """Forward+backward passes (in images) of one search epoch, by part: PGD-k costs k passes
    per image per strength, a training step one more; the evaluation forwards and the AN-E
    are left out (cheap next to PGD). Valid for both kinds: the naive one attacks six
    strengths and collects no noises; wsr-nas attacks 3 (+1 random-eps) and collects
    ``noise_batches + 1`` batches at 4 strengths."""
    b, k = config.batch_size, config.pgd_steps
    train = min(n_train, (config.train_batches or 10**9) * b)
    valid = min(n_valid, (config.valid_batches or 10**9) * b)
    out = {"train (PGD-AT)": train * (k + 1)}
    if config.naive:
        out["valid PGD"] = valid * 6 * k
    else:
        out["valid PGD"] = valid * (3 + int(config.valid_random_eps)) * k
        out["noise PGD"] = min(n_train, (config.noise_batches + 1) * b) * 4 * k
    out["total"] = sum(out.values())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("--images", type=int, default=1024, help="a seeded subset of the training split; 0: all")
    parser.add_argument("--C", type=int, default=8)
    parser.add_argument("--layers", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--train-batches", type=int, default=4, help="0: the whole training half")
    parser.add_argument("--valid-batches", type=int, default=12, help="0: the whole validation half")
    parser.add_argument("--noise-batches", type=int, default=1, help="AN-E memory batches (reference 10, +1 in search)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--memory", type=int, default=2)
    parser.add_argument("--search", type=int, default=4)
    parser.add_argument("--predictor-passes", type=int, default=501)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", default=str(HERE / "results" / "wsr_search_cost.md"))
    args = parser.parse_args()

    images = data.load(args.data, "train")
    base = WsrConfig(
        warmup_epochs=args.warmup, memory_epochs=args.memory, search_epochs=args.search, C=args.C,
        layers=args.layers, batch_size=args.batch_size, images=args.images or None,
        train_batches=args.train_batches or None, valid_batches=args.valid_batches or None,
        noise_batches=args.noise_batches, predictor_warmup_passes=max(1, args.predictor_passes - 1),
        predictor_passes=args.predictor_passes,
    )  # fmt: skip
    configs = {"wsr-nas": base, "wsr-naive": dataclasses.replace(base, naive=True)}
    for c in configs.values():
        c.check(images)
    n = len(images) if base.images is None else min(base.images, len(images))
    n_train = round(n * base.train_fraction)
    n_valid = n - n_train

    root = Path(tempfile.mkdtemp(prefix="wsr-cost-"))
    epochs: dict[str, list[WsrEpoch]] = {k: [] for k in KINDS}
    walls: dict[str, list[float]] = {k: [] for k in KINDS}
    total_steps = base.warmup_epochs + base.memory_epochs + 1 + base.search_epochs
    t_start = time.perf_counter()
    try:
        for step in range(total_steps):
            order = KINDS if step % 2 == 0 else KINDS[::-1]
            for kind in order:
                t0 = time.perf_counter()
                result = run_wsr(
                    configs[kind], images, root / kind, seed=args.seed, device=args.device, resume=True,
                    stop_after=1,
                )  # fmt: skip
                walls[kind].append(time.perf_counter() - t0)
                epochs[kind].append(result.epochs[-1])
                e = result.epochs[-1]
                print(f"{kind:9s} {e.phase:9s} {e.epoch}: {walls[kind][-1]:7.2f} s wall, parts {sum(e.cost.values()):7.2f} s",
                      flush=True)  # fmt: skip
    finally:
        shutil.rmtree(root, ignore_errors=True)
    t_all = time.perf_counter() - t_start

    def phase_rows(kind: str, phase: str) -> list[int]:
        return [i for i, e in enumerate(epochs[kind]) if e.phase == phase]

    def parts(kind: str, i: int) -> float:
        return sum(epochs[kind][i].cost.values())

    lines = [
        "# Wsr-NAS search cost: AN-E (wsr-nas) against all six strengths by PGD (wsr-naive)",
        "",
        f"Command: `OMP_NUM_THREADS=1 python benchmarks/wsr_search_cost.py --images {args.images} --C {args.C} "
        f"--layers {args.layers} --batch-size {args.batch_size} --train-batches {args.train_batches} "
        f"--valid-batches {args.valid_batches} --noise-batches {args.noise_batches} --warmup {args.warmup} "
        f"--memory {args.memory} --search {args.search} --predictor-passes {args.predictor_passes} "
        f"--device {args.device}` ({platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} torch thread(s), {args.device}); whole run {t_all:.0f} s.",
        "",
        f"Setting: DARTS supernet C={args.C}, {args.layers} cells; {n} CIFAR-10 training images of "
        f"`{Path(args.data).name}` split {n_train} / {n_valid}; batch {args.batch_size}; per epoch "
        f"{args.train_batches or 'all'} training batches of PGD-7 adversarial training, "
        f"{args.valid_batches or 'all'} validation batches attacked, {args.noise_batches} (+1 in search) "
        f"batches of AN-E noises; {args.warmup} warm-up, {args.memory} memory-building, {args.search} search "
        f"epochs; predictor {args.predictor_passes - 1} warm-up passes, {args.predictor_passes} per search "
        f"epoch. Both searches interleaved epoch by epoch in this one process, same seed {args.seed}.",
        "",
        "## Seconds per epoch (median over the phase's epochs; sum of the recorded parts, then wall with "
        "checkpointing)",
        "",
        "| phase | epochs | wsr-nas parts | wsr-naive parts | ratio nas/naive | wsr-nas wall | wsr-naive wall "
        "| ratio |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for phase in ("warmup", "memory", "predictor", "search"):
        rows = {k: phase_rows(k, phase) for k in KINDS}
        if not rows["wsr-nas"]:
            continue
        p = {k: statistics.median(parts(k, i) for i in rows[k]) for k in KINDS}
        w = {k: statistics.median(walls[k][i] for i in rows[k]) for k in KINDS}
        lines.append(
            f"| {phase} | {len(rows['wsr-nas'])} | {p['wsr-nas']:.2f} | {p['wsr-naive']:.2f} | "
            f"{p['wsr-nas'] / p['wsr-naive']:.3f} | {w['wsr-nas']:.2f} | {w['wsr-naive']:.2f} | "
            f"{w['wsr-nas'] / w['wsr-naive']:.3f} |"
        )
    tot_p = {k: sum(parts(k, i) for i in range(len(epochs[k]))) for k in KINDS}
    tot_w = {k: sum(walls[k]) for k in KINDS}
    lines.append(
        f"| **total** | {total_steps} | {tot_p['wsr-nas']:.1f} | {tot_p['wsr-naive']:.1f} | "
        f"**{tot_p['wsr-nas'] / tot_p['wsr-naive']:.3f}** | {tot_w['wsr-nas']:.1f} | {tot_w['wsr-naive']:.1f} | "
        f"**{tot_w['wsr-nas'] / tot_w['wsr-naive']:.3f}** |"
    )
    lines += [
        "",
        "## Cost split (seconds summed over all epochs, from each epoch's recorded `cost`)",
        "",
        "| part | " + " | ".join(f"{k} (s) | {k} (share)" for k in KINDS) + " |",
        "|---|" + "---|---|" * len(KINDS),
    ]
    for part in COSTS:
        cells = []
        for k in KINDS:
            s = sum(e.cost.get(part, 0.0) for e in epochs[k])
            cells.append(f"{s:.1f} | {100 * s / tot_p[k]:.1f}%")
        lines.append(f"| {part} | " + " | ".join(cells) + " |")
    search_rows = {k: phase_rows(k, "search") for k in KINDS}
    if search_rows["wsr-nas"]:
        lines += [
            "",
            "Search epochs only, median seconds per part:",
            "",
            "| part | wsr-nas | wsr-naive |",
            "|---|---|---|",
        ]
        for part in COSTS:
            cells = [statistics.median(epochs[k][i].cost.get(part, 0.0) for i in search_rows[k]) for k in KINDS]
            lines.append(f"| {part} | {cells[0]:.2f} | {cells[1]:.2f} |")

    ref = WsrConfig()
    lines += [
        "",
        "## Cost model: forward+backward passes (images) per search epoch",
        "",
        "| setting | kind | train (PGD-AT) | valid PGD | noise PGD | total | nas/naive |",
        "|---|---|---|---|---|---|---|",
    ]
    settings = [
        ("this run", base, n_train, n_valid),
        ("reference (25k / 25k, batch 64)", ref, 25000, 25000),
        ("reference without the unused random-eps run", WsrConfig(valid_random_eps=False), 25000, 25000),
    ]
    for label, config, nt, nv in settings:
        models = {
            k: pass_model(dataclasses.replace(config, naive=k == "wsr-naive"), nt, nv) for k in KINDS
        }
        for k in KINDS:
            m = models[k]
            ratio = models["wsr-nas"]["total"] / models["wsr-naive"]["total"]
            lines.append(
                f"| {label} | {k} | {m['train (PGD-AT)']:,.0f} | {m['valid PGD']:,.0f} | "
                f"{m.get('noise PGD', 0):,.0f} | {m['total']:,.0f} | {ratio:.3f} |"
            )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
