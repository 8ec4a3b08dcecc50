"""A tiny NAS-RobBench-201 in the official web format, written on the fly for tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from robnas import spaces
from robnas.benchmarks.nas_robbench import COLUMNS, OPERATIONS


def write_nas_robbench(root: Path, n_archs: int = 60, seed: int = 0) -> Path:
    """``root/NAS-RobBench-201_html.json`` and ``root/ops.json`` for ``n_archs`` NB201 cells.

    Each isomorphism class's first cell holds 18 values (clean > fgsm > pgd > aa per dataset);
    the others refer to it by index, as the official file does.
    """
    space = spaces.get("nb201")
    archs = space.all()[:n_archs]
    rng = np.random.default_rng(seed)
    first: dict[str, int] = {}
    codes, acc = [], {"": list(COLUMNS)}
    for i, arch in enumerate(archs):
        ops = [part.split("~")[0] for part in space.format(arch).replace("+", "").split("|") if part]
        codes.append("".join(str(OPERATIONS.index(op)) for op in ops))
        key = space.isomorphism_key(arch)
        if key in first:
            acc[str(i)] = str(first[key])
            continue
        first[key] = i
        values = []
        for _ in range(3):
            clean = float(rng.uniform(0.3, 0.8))
            attacked = sorted((round(clean * float(f), 6) for f in rng.uniform(0.2, 1.0, 5)), reverse=True)
            values += [round(clean, 6), *attacked]
        acc[str(i)] = values
    root.mkdir(parents=True, exist_ok=True)
    (root / "NAS-RobBench-201_html.json").write_text("acc=" + json.dumps(acc))
    (root / "ops.json").write_text("arch=" + json.dumps(codes))
    return root
