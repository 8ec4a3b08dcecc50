"""Speed of ``robnas.correlate``: load the robustness dataset and correlate 15,625 architectures
with every target (CIFAR-10), bootstrap 1000, every row kept (``unique=False``).

Scores: NAS-Bench-201's parameter count and NASWOT score of all 15,625 indices (from
``../shared/data/nb201/nb201_merged_by_index.csv``). Each run opens a fresh reader, so reading the
JSON files is timed too. Writes ``benchmarks/results/correlate_speed.md``.

    python benchmarks/correlate_speed.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "2")
os.environ.setdefault("MKL_NUM_THREADS", "2")

import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from robnas import correlate as corr
from robnas.benchmarks import RobustnessDataset

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--data", type=Path, default=DATA)
    args = parser.parse_args()
    load_before = os.getloadavg()
    table = pd.read_csv(args.data / "nb201" / "nb201_merged_by_index.csv")
    scores = pd.concat(
        [
            pd.DataFrame({"arch": table["arch_str"], "proxy": "params", "value": table["params_M"]}),
            pd.DataFrame(
                {"arch": table["arch_str"], "proxy": "naswot", "value": table["naswot_v1_score_c10"]}
            ),
        ],
        ignore_index=True,
    )
    cases = [
        ("1 proxy, all rows (n=15,625)", scores[scores["proxy"] == "params"], False),
        ("2 proxies, all rows (n=15,625)", scores, False),
        ("2 proxies, unique (n=6,466)", scores, True),
    ]
    lines = []
    for label, frame, unique in cases:
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            rob = RobustnessDataset(args.data / "robustness")
            result = corr.correlate(frame, rob, "cifar10", unique=unique, bootstrap=1000, seed=0)
            times.append(time.perf_counter() - start)
        n_targets = result["target"].nunique()
        lines.append(
            f"| {label} | {n_targets} | {statistics.median(times):.2f} | {', '.join(f'{t:.2f}' for t in times)} |"
        )
        print(lines[-1], flush=True)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import robnas.correlate"], check=True)
    import_seconds = time.perf_counter() - start

    out = ROOT / "benchmarks" / "results" / "correlate_speed.md"
    out.write_text(
        "# correlate speed\n\n"
        "`python benchmarks/correlate_speed.py`: fresh `RobustnessDataset` (reads meta.json and the\n"
        "CIFAR-10 accuracy JSON files) + `robnas.correlate.correlate(..., bootstrap=1000)` against every\n"
        "target (clean, 4 attacks x every eps, HRS of each, 15 corruptions, 4 CRoZe groups, croze_mean15,\n"
        "cc_mean), Spearman + bootstrap interval + Kendall tau-b + top-10% precision.\n"
        f"Median of {args.repeats} runs, in seconds; target: under 10 s.\n\n"
        "| case | targets | median s | runs |\n|---|---|---|---|\n"
        + "\n".join(lines)
        + f"\n\nPython start-up plus `import robnas.correlate` (imports torch through `robnas`): "
        f"{import_seconds:.1f} s, not included above.\n\n"
        f"Machine: {platform.platform()}, {os.cpu_count()} CPUs, BLAS threads "
        f"{os.environ.get('OPENBLAS_NUM_THREADS')}, load average (1, 5, 15 min) before the runs "
        f"{', '.join(f'{x:.1f}' for x in load_before)} (a shared machine; an idle one is faster).\n"
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
