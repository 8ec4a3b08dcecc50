"""NAS-Bench-201 space checks against the benchmark's own tables.

* parameter count of ``space.build(arch)`` against ``params_M`` of every one of the 15,625
  architectures (``nb201_merged_by_index.csv``);
* ``space.canonical`` against the ``isomorph`` grouping of the robustness dataset's ``meta.json``.

    python benchmarks/nb201_space_checks.py   # writes benchmarks/results/nb201_space_checks.md
"""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import torch

import robnas
from robnas.spaces.nb201 import count_parameters

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    space = robnas.spaces.get("nb201")
    start = time.perf_counter()
    with open(SHARED / "nb201" / "nb201_merged_by_index.csv") as fh:
        rows = list(csv.DictReader(fh))
    mismatched = []
    with torch.device("meta"):  # shapes only: nothing is allocated
        for r in rows:
            ours = count_parameters(space.build(r["arch_str"])) / 1e6
            if abs(ours - float(r["params_M"])) > 1e-6:
                mismatched.append((r["nb201_index"], r["arch_str"], ours, float(r["params_M"])))
    params_ok = 1 - len(mismatched) / len(rows)

    ids = json.loads((SHARED / "robustness" / "meta.json").read_text())["ids"]
    ours: dict = {}
    theirs: dict = {}
    for i, v in ids.items():
        ours.setdefault(space.canonical(space.parse(v["nb201-string"])), set()).add(i)
        theirs.setdefault(v["isomorph"], set()).add(i)
    mine = {i: frozenset(g) for g in ours.values() for i in g}
    ref = {i: frozenset(g) for g in theirs.values() for i in g}
    iso_ok = sum(mine[i] == ref[i] for i in ids) / len(ids)
    seconds = time.perf_counter() - start

    lines = [
        "# NAS-Bench-201 space against the benchmark",
        "",
        "Command: `python benchmarks/nb201_space_checks.py`",
        "",
        "| check | architectures | agreement |",
        "|:--|--:|--:|",
        f"| parameters equal `params_M` (within 1e-6 M) | {len(rows)} | {params_ok:.4%} |",
        f"| `canonical` classes equal the robustness dataset's `isomorph` classes | {len(ids)} | {iso_ok:.4%} |",
        f"| isomorphism classes | {len(ours)} (ours) | {len(theirs)} (dataset) |",
        "",
        f"Mismatched parameter counts ({len(mismatched)}; the benchmark's value is not that of the network "
        "its string describes, e.g. a mean over differently counted entries):",
        "",
        "| index | arch | ours (M) | params_M |",
        "|--:|:--|--:|--:|",
        *[f"| {i} | `{a}` | {o:.6f} | {p:.6f} |" for i, a, o, p in mismatched[:20]],
        "",
        f"({seconds:.1f} s)",
        "",
    ]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "nb201_space_checks.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
