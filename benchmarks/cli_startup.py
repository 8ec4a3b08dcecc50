"""Start-up time of the ``robnas`` command line.

The verbs import the library inside their command, so ``robnas --help`` (and a typo's error)
loads no torch, pandas, scipy or matplotlib. Measured side by side, interleaved in every
repeat: ``python -m robnas --help``; ``import robnas.cli``; the same import plus the libraries
the command line used to load eagerly (the cost before); and ``import torch`` alone (the floor
of any verb that computes). Each figure is the median wall time of a fresh interpreter.
Writes ``benchmarks/results/cli_startup.md``.

    python benchmarks/cli_startup.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
CASES = {
    "robnas --help": ["-m", "robnas", "--help"],
    "import robnas.cli": ["-c", "import robnas.cli"],
    "import robnas.cli + torch, pandas, scipy.stats, matplotlib (before)": [
        "-c",
        "import robnas.cli, torch, pandas, scipy.stats, matplotlib.pyplot",
    ],
    "import torch": ["-c", "import torch"],
}


def wall(args: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, *args], check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    for case in CASES.values():  # warm the file cache
        wall(case)
    times: dict[str, list[float]] = {name: [] for name in CASES}
    for _ in range(args.repeats):
        for name, case in CASES.items():
            times[name].append(wall(case))
    median = {name: statistics.median(t) for name, t in times.items()}
    before = median["import robnas.cli + torch, pandas, scipy.stats, matplotlib (before)"]
    lines = [
        "# Start-up time of the command line",
        "",
        f"Command: `python benchmarks/cli_startup.py --repeats {args.repeats}`; "
        f"{platform.processor() or platform.machine()}, Python {platform.python_version()}; "
        "median wall seconds of a fresh interpreter, the cases interleaved in every repeat.",
        "",
        "| case | median s | min s | max s |",
        "|:--|--:|--:|--:|",
        *[f"| {name} | {median[name]:.2f} | {min(t):.2f} | {max(t):.2f} |" for name, t in times.items()],
        "",
        f"`robnas --help` takes {median['robnas --help'] / before:.2f} of the time the eager imports cost "
        f"({before / median['robnas --help']:.1f}x faster).",
        "",
    ]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "cli_startup.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
