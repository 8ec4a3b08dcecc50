"""Cut the small excerpts that ``robnas demo`` ships from the full public data.

Usage: python scripts/make_demo_assets.py ../shared/data src/robnas/assets/demo

* 80 real CIFAR-10 training images (8 per class, bit-exact from the official batches);
* the robustness dataset of Jung et al. (ICLR 2023) in its official layout, restricted to
  the sampled architectures (CIFAR-10 accuracies only; ids renumbered 0..N-1, the original
  NAS-Bench-201 index kept as ``nb201-index``);
* NAS-RobBench-201 (Wu et al., ICLR 2024; after adversarial training) in its official web format,
  restricted to the same architectures and numbered as the robustness excerpt (``ops.json`` lists
  their cells in that order; every entry holds its class's 18 values: three datasets);
* the NAS-Bench-201 CIFAR-10 accuracy and parameter columns of the same architectures.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np

NUM_ARCHS = 200
IMAGES_PER_CLASS = 8


def main(src: Path, dst: Path, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    dst.mkdir(parents=True, exist_ok=True)

    cifar = np.load(src / "cifar10" / "cifar10_exact_subset.npz")
    x, y = cifar["x_train"], cifar["y_train"]
    idx = np.concatenate([np.flatnonzero(y == c)[:IMAGES_PER_CLASS] for c in range(10)])
    np.savez_compressed(dst / "cifar10_images.npz", x_train=x[idx], y_train=y[idx], classes=cifar["classes"])

    meta = json.loads((src / "robustness" / "meta.json").read_text())
    # one NB201 index per isomorphism class, so the sample has no duplicates
    first: dict[str, str] = {}
    for i, v in meta["ids"].items():
        first.setdefault(v["isomorph"], i)
    chosen = sorted(rng.choice(sorted(first.values(), key=int), NUM_ARCHS, replace=False).tolist(), key=int)
    keys = {meta["ids"][i]["isomorph"] for i in chosen}
    # the official layout numbers ids 0..N-1; the original NB201 index is kept as "nb201-index"
    out_ids = {str(n): {**meta["ids"][i], "nb201-index": int(i)} for n, i in enumerate(chosen)}
    out_meta = {"ids": out_ids, "epsilons": meta["epsilons"]}
    rob = dst / "robustness"
    (rob / "cifar10").mkdir(parents=True, exist_ok=True)
    (rob / "meta.json").write_text(json.dumps(out_meta))
    for f in sorted((src / "robustness" / "cifar10").glob("*_accuracy.json")):
        full = json.loads(f.read_text())
        for measure in full["cifar10"].values():
            measure["accuracy"] = {k: v for k, v in measure["accuracy"].items() if k in keys}
        (rob / "cifar10" / f.name).write_text(json.dumps(full, separators=(",", ":")))

    # NAS-RobBench-201: an isomorphic copy holds its representative's index; the excerpt holds values only
    acc_text = (src / "nas_robbench201" / "NAS-RobBench-201_html.json").read_text()
    acc = json.loads(acc_text[acc_text.index("=") + 1 :])
    ops_text = (src / "nas_robbench201" / "ops.json").read_text()
    ops = json.loads(ops_text[ops_text.index("=") + 1 :])
    adv = dst / "nas_robbench201"
    adv.mkdir(parents=True, exist_ok=True)
    excerpt = {"": acc[""]}
    for n, i in enumerate(chosen):
        value = acc[i]
        excerpt[str(n)] = acc[value] if isinstance(value, str) else value
    (adv / "NAS-RobBench-201_html.json").write_text("acc=" + json.dumps(excerpt, separators=(",", ":")))
    (adv / "ops.json").write_text("arch=" + json.dumps([ops[int(i)] for i in chosen], separators=(",", ":")))

    with open(src / "nb201" / "nb201_merged_by_index.csv") as fh:
        rows = {r["nb201_index"]: r for r in csv.DictReader(fh)}
    with open(dst / "nb201_cifar10.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["nb201_index", "arch_str", "c10_test_acc_200ep", "params_M"])
        for i in chosen:
            r = rows[i]
            w.writerow([i, r["arch_str"], r["c10_test_acc_200ep"], r["params_M"]])


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
