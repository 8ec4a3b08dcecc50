"""Stress of a stop at an early moment: one SIGTERM or SIGINT to the process group of
``robnas search --strategy evolution --workers 2``, started with its own session, at a random
moment of the first seconds after robnas installed its handler (during the imports, before the
verb, during worker start-up). Before that moment a signal meets CPython's own start-up and
its default actions, which robnas cannot change.

Every trial must end within 15 s with 128 + the signal number and the ``stopped`` line, and
leave no process of its session. Trials run one after another. Writes
``benchmarks/results/early_signals.md`` (the counts and every bad trial).

    python benchmarks/early_signals.py [--trials 48] [--max-delay 2.5] [--seed 0]
"""

from __future__ import annotations

import argparse
import collections
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
TIMEOUT = 15.0


def catches_sigterm(pid: int) -> bool:
    """Whether process ``pid`` has a SIGTERM handler (robnas's: Python installs none of its own)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    mask = next(int(line.split()[1], 16) for line in status.splitlines() if line.startswith("SigCgt:"))
    return bool(mask & (1 << (signal.SIGTERM - 1)))


def trial(out: Path, sig: signal.Signals, delay: float) -> tuple[str, float]:
    """One run stopped after ``delay`` s: (outcome, seconds from the signal to the exit)."""
    cmd = [sys.executable, "-m", "robnas", "search", "--strategy", "evolution", "--objective", "params",
           "--budget", "100000", "--workers", "2", "--out", str(out)]  # fmt: skip
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    while not catches_sigterm(proc.pid) and proc.poll() is None:
        time.sleep(0.002)
    time.sleep(delay)
    os.killpg(proc.pid, sig)
    sent = time.monotonic()
    try:
        code = proc.wait(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return "no exit within 15 s", TIMEOUT
    seconds = time.monotonic() - sent
    stderr = proc.stderr.read().decode()
    time.sleep(0.2)
    try:
        os.killpg(proc.pid, 0)
        left = True
    except ProcessLookupError:
        left = False
    if left:
        os.killpg(proc.pid, signal.SIGKILL)
        return "left a process alive", seconds
    if (
        code == 128 + sig
        and f"stopped ({sig.name})" in stderr
        and "Traceback" not in stderr
        and "error" not in stderr
    ):
        return f"stopped, exit {128 + sig}", seconds
    return f"exit {code}: {' '.join(stderr.split())[-200:]}", seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=48)
    parser.add_argument("--max-delay", type=float, default=2.5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    outcomes: collections.Counter[str] = collections.Counter()
    bad: list[str] = []
    exit_seconds: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.trials):
            sig = signal.SIGTERM if i % 2 else signal.SIGINT
            delay = rng.uniform(0.0, args.max_delay)
            outcome, seconds = trial(Path(tmp) / f"s{i}.sqlite", sig, delay)
            outcomes[outcome] += 1
            exit_seconds.append(seconds)
            if not outcome.startswith("stopped"):
                bad.append(f"| {sig.name} | {delay:.2f} | {outcome} |")
            print(
                f"{i + 1}/{args.trials} {sig.name} {delay:.2f} s after the handler: {outcome} ({seconds:.1f} s)",
                flush=True,
            )
    load = os.getloadavg()
    lines = [
        "# A stop at an early moment",
        "",
        f"Command: `python benchmarks/early_signals.py --trials {args.trials} --max-delay {args.max_delay} "
        f"--seed {args.seed}`; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, {os.cpu_count()} CPUs.",
        "",
        "Delays are counted from the moment the process has robnas's SIGTERM handler.",
        "",
        "| outcome | trials |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in sorted(outcomes.items())],
        "",
        f"Seconds from the signal to the exit: median {sorted(exit_seconds)[len(exit_seconds) // 2]:.2f}, "
        f"max {max(exit_seconds):.2f}.",
        "",
    ]
    if bad:
        lines += ["Bad trials:", "", "| signal | delay (s) | outcome |", "|---|---|---|", *bad, ""]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "early_signals.md").write_text("\n".join(lines))
    print("\n".join(lines))
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
