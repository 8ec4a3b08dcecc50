"""A tiny robustness dataset in the official layout, written on the fly for tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from robnas import spaces
from robnas.benchmarks.robustness import CORRUPTIONS

EPSILONS = {
    "fgsm@Linf": [0.1, 1.0, 8.0],
    "pgd@Linf": [1.0, 8.0],
    "aa_apgd-ce@Linf": [1.0, 8.0],
    "aa_square@Linf": [1.0, 8.0],
}


def write_robustness(root: Path, n_archs: int = 80, seed: int = 0) -> Path:
    """``root/meta.json`` and ``root/cifar10/*_accuracy.json`` for the first ``n_archs`` NB201 archs."""
    space = spaces.get("nb201")
    archs = space.all()[:n_archs]
    first: dict[str, int] = {}
    ids = {}
    for i, arch in enumerate(archs):
        key = space.isomorphism_key(arch)
        first.setdefault(key, i)
        ids[str(i)] = {"nb201-string": space.format(arch), "isomorph": str(first[key])}
    keys = sorted(set(first.values()))
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    (root / "meta.json").write_text(json.dumps({"ids": ids, "epsilons": EPSILONS}))
    folder = root / "cifar10"
    folder.mkdir(exist_ok=True)

    def write(measure: str, values: dict) -> None:
        (folder / f"{measure}_accuracy.json").write_text(
            json.dumps({"cifar10": {measure: {"accuracy": values}}})
        )

    clean = {str(k): round(float(rng.uniform(0.1, 0.95)), 3) for k in keys}
    write("clean", clean)
    for measure, eps in EPSILONS.items():
        write(
            measure,
            {str(k): [round(float(clean[str(k)] * rng.uniform(0, 1)), 3) for _ in eps] for k in keys},
        )
    for corruption in CORRUPTIONS:
        write(corruption, {str(k): [round(float(rng.uniform(0, 1)), 3) for _ in range(5)] for k in keys})
    return root


def demo_search_section(budget: int) -> str:
    """A pipeline ``[search]`` TOML section: ``budget`` random candidates of the demo's robustness
    excerpt, valued by its ``pgd@8`` (searched within the excerpt, so every lookup finds its row)."""
    from robnas import demo

    bench = demo.ASSETS / "robustness"
    return (
        '[search]\nstrategy = "random"\nobjective = "bench:pgd@8"\n'
        f'budget = {budget}\nbenchmark = "{bench}"\nscores = "{demo.ASSETS / "nb201_cifar10.csv"}"\n'
        "within_scores = true\n"
    )
