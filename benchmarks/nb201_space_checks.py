"""NAS-Bench-201 space checks against the benchmark's own tables.

* parameter count of ``space.build(arch)`` against ``params_M`` of every one of the 15,625
  architectures (``nb201_merged_by_index.csv``);
* the same count against NAS-Bench-Suite-Zero's published ``params`` proxy
  (``zc_reference/nb201_zc_proxies_cifar10.csv``, 9,445 architectures, each network built and
  counted by that code), an independent count of the network each string describes;
* ``space.canonical`` against the ``isomorph`` grouping of the robustness dataset's ``meta.json``;
* for every mismatched count, whether ``params_M`` is a mean over three (or two) counts of
  which one or two belong to another cell: an NB201 network's count depends only on how many
  of its six edges hold a 3x3 and a 1x1 convolution, ``base + n3 * a + n1 * b``, so the odd
  count (``3 * params_M - 2 * ours``, ``(3 * params_M - ours) / 2`` or ``2 * params_M - ours``)
  is solved for ``(n3, n1)``.

    python benchmarks/nb201_space_checks.py   # writes benchmarks/results/nb201_space_checks.md
"""

from __future__ import annotations

import csv
import json
import time
from collections import Counter
from pathlib import Path

import torch

import robnas
from robnas.spaces.network import count_parameters

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
RESULTS = Path(__file__).resolve().parent / "results"


def _conv_edges(arch: str) -> tuple[int, int]:
    return arch.count("nor_conv_3x3"), arch.count("nor_conv_1x1")


def _cell_count_model(space: robnas.spaces.base.SearchSpace) -> tuple[int, int, int]:
    """``(base, a, b)``: a network with n3 3x3 and n1 1x1 conv edges has ``base + n3*a + n1*b``."""
    none = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
    with torch.device("meta"):
        counts = [
            count_parameters(space.build(none.replace("|none~0|+", f"|{op}~0|+", 1)))
            for op in ("none", "nor_conv_3x3", "nor_conv_1x1")
        ]
    return counts[0], counts[1] - counts[0], counts[2] - counts[0]


def _explain(model: tuple[int, int, int], ours_m: float, table_m: float) -> tuple[str, str]:
    """(how many of three counts are odd, their conv edges ``(n3, n1)``) making ``table_m`` a mean."""
    base, a, b = model
    ours, table = round(ours_m * 1e6), table_m * 1e6
    means = (
        ("1 of 3 counts", 3 * table - 2 * ours),
        ("2 of 3 counts", (3 * table - ours) / 2),
        ("1 of 2 counts", 2 * table - ours),
    )
    for label, odd in means:
        for n3 in range(7):
            for n1 in range(7 - n3):
                if abs(base + n3 * a + n1 * b - odd) <= 3:  # 6 decimals in params_M: +-1.5 per count
                    return label, f"({n3}, {n1})"
    return "unexplained", "-"


def main() -> None:
    space = robnas.spaces.get("nb201")
    start = time.perf_counter()
    with open(SHARED / "nb201" / "nb201_merged_by_index.csv") as fh:
        rows = list(csv.DictReader(fh))
    mismatched = []
    counts: dict[str, float] = {}
    with torch.device("meta"):  # shapes only: nothing is allocated
        for r in rows:
            ours = counts[r["arch_str"]] = count_parameters(space.build(r["arch_str"])) / 1e6
            if abs(ours - float(r["params_M"])) > 1e-6:
                mismatched.append((r["nb201_index"], r["arch_str"], ours, float(r["params_M"])))
    params_ok = 1 - len(mismatched) / len(rows)
    with open(SHARED / "zc_reference" / "nb201_zc_proxies_cifar10.csv") as fh:
        published = {r["net_str"]: float(r["params"]) for r in csv.DictReader(fh)}
    zc_ok = sum(abs(counts[a] - p) <= 1e-6 for a, p in published.items()) / len(published)
    covered = [m for m in mismatched if m[1] in published]
    covered_ok = sum(abs(published[a] - o) <= 1e-6 for _, a, o, _ in covered)
    model = _cell_count_model(space)
    explained = [_explain(model, o, p) for _, _, o, p in mismatched]

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
        f"| parameters equal NAS-Bench-Suite-Zero's published `params` | {len(published)} | {zc_ok:.4%} |",
        f"| `canonical` classes equal the robustness dataset's `isomorph` classes | {len(ids)} | {iso_ok:.4%} |",
        f"| isomorphism classes | {len(ours)} (ours) | {len(theirs)} (dataset) |",
        "",
        f"Mismatched parameter counts ({len(mismatched)}; the benchmark's value is not that of the network "
        "its string describes, e.g. a mean over differently counted entries). NAS-Bench-Suite-Zero publishes "
        f"a count for {len(covered)} of them and it equals ours for {covered_ok}:",
        "",
        "| index | arch | ours (M) | params_M |",
        "|--:|:--|--:|--:|",
        *[f"| {i} | `{a}` | {o:.6f} | {p:.6f} |" for i, a, o, p in mismatched[:20]],
        "",
        "Is `params_M` a mean over three (or two) counts of which some are another cell's? The odd count is "
        "solved for the numbers of 3x3 and 1x1 convolution edges `(n3, n1)` it would need:",
        "",
        "| explanation | mismatches |",
        "|:--|--:|",
        *[f"| {k} | {v} |" for k, v in sorted(Counter(kind for kind, _ in explained).items())],
        "",
        "| index | explanation | odd count's (n3, n1) | ours |",
        "|--:|:--|:--|:--|",
        *[
            f"| {m[0]} | {kind} | {edges} | {_conv_edges(m[1])} |"
            for m, (kind, edges) in list(zip(mismatched, explained, strict=True))[:20]
        ],
        "",
        f"({seconds:.1f} s)",
        "",
    ]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "nb201_space_checks.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
