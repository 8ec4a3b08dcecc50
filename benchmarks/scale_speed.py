"""Throughput of ``robnas.scoring.score`` on the process pool and on Ray, and Ray's per-task cost.

A fixed set of NAS-Bench-201 architectures (distinct isomorphism classes drawn with seed 0) x
cheap proxies (``params``, ``synflow``, ``snip``; batch of 8 synthetic images) is scored into a
fresh in-memory run store by each backend with 1 and 2 workers, the cases interleaved in every
repeat so that they share the machine's load; the figure is the median over repeats of
architectures per second. Ray runs on a local instance with 2 CPUs, started once (its start-up
time is reported apart) and warmed up (every worker has imported robnas) before timing.

Ray's per-task overhead: the median round trip of an empty task (``ray.get(f.remote())``, one
at a time) and the median seconds per architecture of the ``params`` proxy alone (build the
network, count its parameters: the cheapest real item) through the Ray executor with one task
in flight, paired with the same work in this process. Writes ``benchmarks/results/scale_speed.md``
with a projection of the full NAS-Bench-201 sweep and a DARTS-space CRoZe search on N machines.

    OMP_NUM_THREADS=1 python benchmarks/scale_speed.py [--archs 40] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import math
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from robnas import data, scoring, spaces
from robnas.parallel import open_executor
from robnas.parallel.ray import connect
from robnas.store import RunStore, ScoreRow

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "scale_speed.md"
PROXIES = ("params", "synflow", "snip")
CASES = (("process", 1), ("process", 2), ("ray", 1), ("ray", 2))
#: Per-architecture seconds of all 18 proxies on one core (nb201_cifar10_correlations.md).
FULL_SWEEP_SECONDS = 3.5
FULL_SWEEP_ARCHS = 6466


def _archs(n: int) -> list[str]:
    return spaces.get("nb201").sample_distinct(n, rng=0)


def _nothing(item: object) -> object:
    return item


def _throughput(archs: list[str], images: data.ImageArrays, backend: str, workers: int) -> float:
    with RunStore(":memory:") as store:
        start = time.perf_counter()
        scoring.score(
            "nb201", archs, PROXIES, images, store, batch_size=8, workers=workers, backend=backend
        )
        seconds = time.perf_counter() - start
        assert len(store.rows()) == len(archs) * len(PROXIES)
    return len(archs) / seconds


def _params_item(arch: str) -> float:
    space = spaces.get("nb201")
    torch.manual_seed(0)
    net = space.build(space.parse(arch), num_classes=10)
    return float(sum(p.numel() for p in net.parameters()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--archs", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--empty-tasks", type=int, default=200)
    parser.add_argument("--commits", type=int, default=200)
    args = parser.parse_args()
    torch.set_num_threads(1)
    load_before = os.getloadavg()
    archs = _archs(args.archs)
    images = data.load("synthetic:64", "train")

    start = time.perf_counter()
    ray = connect(None, 2)  # a local Ray with 2 CPUs
    ray_start = time.perf_counter() - start
    with open_executor("ray", _nothing, 2) as warm:  # every worker imports robnas and torch once
        list(warm.map_unordered(range(8)))
    _throughput(archs[:4], images, "ray", 2)

    rates: dict[tuple[str, int], list[float]] = {case: [] for case in CASES}
    for repeat in range(args.repeats):
        order = CASES if repeat % 2 == 0 else tuple(reversed(CASES))
        for backend, workers in order:
            rate = _throughput(archs, images, backend, workers)
            rates[(backend, workers)].append(rate)
            print(f"repeat {repeat}: {backend} x{workers}: {rate:.2f} archs/s", flush=True)

    @ray.remote(num_cpus=1)
    def empty() -> None:
        return None

    ray.get(empty.remote())
    trips = []
    for _ in range(args.empty_tasks):
        t0 = time.perf_counter()
        ray.get(empty.remote())
        trips.append(time.perf_counter() - t0)
    ray_params, local_params = [], []
    with open_executor("ray", _params_item, 1) as ex:
        list(ex.map_unordered(archs[:2]))
        for arch in archs + archs:  # paired: the same item in this process, then as a Ray task
            t0 = time.perf_counter()
            _params_item(arch)
            t1 = time.perf_counter()
            list(ex.map_unordered([arch]))
            local_params.append(t1 - t0)
            ray_params.append(time.perf_counter() - t1)
    commits = []
    with tempfile.TemporaryDirectory() as tmp, RunStore(Path(tmp) / "run.sqlite") as store:
        for i in range(args.commits):  # one architecture's 18 rows per transaction, as scoring commits
            rows = [ScoreRow(f"arch{i}", f"proxy{j}", 0.5, 0.1, 0, 8) for j in range(18)]
            t0 = time.perf_counter()
            store.add_many(rows)
            commits.append(time.perf_counter() - t0)
    commit_ms = 1000 * statistics.median(commits)
    load_after = os.getloadavg()

    med = {case: statistics.median(v) for case, v in rates.items()}
    empty_ms = 1000 * statistics.median(trips)
    params_ray_ms = 1000 * statistics.median(ray_params)
    params_local_ms = 1000 * statistics.median(local_params)
    paired_ms = 1000 * statistics.median(np.subtract(ray_params, local_params))
    overhead_s = max(0.0, paired_ms / 1000)
    speedup_ray = med[("ray", 2)] / med[("ray", 1)]
    speedup_process = med[("process", 2)] / med[("process", 1)]

    rows = "\n".join(
        f"| {backend} | {workers} | {med[(backend, workers)]:.2f} | "
        f"{', '.join(f'{r:.2f}' for r in rates[(backend, workers)])} | "
        f"{med[(backend, workers)] / med[('process', 1)]:.2f} |"
        for backend, workers in CASES
    )
    serial_hours = FULL_SWEEP_ARCHS * FULL_SWEEP_SECONDS / 3600
    sweep_lines = []
    for machines, cores in ((1, 1), (1, 16), (4, 16), (16, 16)):
        slots = machines * cores
        hours = FULL_SWEEP_ARCHS * (FULL_SWEEP_SECONDS + overhead_s) / slots / 3600
        sweep_lines.append(f"| {machines} | {cores} | {slots} | {hours:.2f} |")
    search_lines = []
    for per in (7.0, 30.0):
        for slots in (1, 5, 16, 64):
            init = math.ceil(50 / slots) * (per + overhead_s)
            rounds = 10 * math.ceil(5 / slots) * (per + overhead_s)
            search_lines.append(
                f"| {per:g} | {slots} | {init / 60:.1f} | {rounds / 60:.1f} | {(init + rounds) / 60:.1f} |"
            )

    OUT.write_text(
        f"""# Scaling: process pool and Ray

Command: `OMP_NUM_THREADS=1 python benchmarks/scale_speed.py --archs {args.archs} --repeats {args.repeats}`

{args.archs} NAS-Bench-201 architectures (distinct isomorphism classes, seed 0) x {len(PROXIES)} proxies
({", ".join(PROXIES)}; batch of 8 synthetic 32x32 images) scored by `robnas.scoring.score` into a fresh
in-memory run store; one torch thread per worker. `process` x1 runs in this process; `process` x2 forks
two workers; `ray` runs one task per architecture (one CPU each) on a local Ray with 2 CPUs, x1 / x2 tasks
in flight. Median over {args.repeats} interleaved repeats.

Machine: {platform.platform()}, {os.cpu_count()} CPUs, shared with other jobs: load average (1, 5, 15 min)
{", ".join(f"{x:.1f}" for x in load_before)} before and {", ".join(f"{x:.1f}" for x in load_after)} after
the runs. An idle machine gives higher figures; the ratios, measured side by side, are the point.

| backend | workers | archs/s (median) | runs | vs process x1 |
|:--|--:|--:|:--|--:|
{rows}

Ray's costs:

- starting a local Ray (`ray.init`, 2 CPUs): {ray_start:.1f} s, once per process (joining a running
  cluster with `--address` skips it);
- an empty task, one at a time (`ray.get(f.remote())`, median of {args.empty_tasks}): {empty_ms:.2f} ms;
- the `params` proxy alone (build an NB201 network, count its parameters), each architecture computed
  in this process and then as a Ray task (one in flight), {2 * args.archs} pairs: medians {params_local_ms:.1f} ms
  in this process and {params_ray_ms:.1f} ms through Ray; median paired difference {paired_ms:.1f} ms,
  the Ray overhead per task (submission, scheduling, the result's return; the shared batch is fetched
  once per worker, before these tasks).

The driver commits each architecture's rows in one SQLite transaction (WAL) as they arrive: 18 rows
took {commit_ms:.2f} ms (median of {args.commits}, a file on this machine's disk), so one driver keeps up
with about {1000 / commit_ms:,.0f} architectures per second, far above what any cluster below delivers.

With 2 workers, the process pool gave {speedup_process:.2f}x and Ray {speedup_ray:.2f}x the throughput of
one. The load average above says why it is not 2x here: about {load_before[0] / (os.cpu_count() or 1):.0f}
runnable processes per core, so a second worker mostly competes for the same CPU time. This run measures the costs of each backend, not
the scaling itself; the projection below assumes what a dedicated cluster gives, one free core per task
(`ray start --num-cpus` equal to the machine's cores, nothing else running).

## What this means at scale

The full NAS-Bench-201 sweep is {FULL_SWEEP_ARCHS:,} isomorphism classes x 18 proxies, about
{FULL_SWEEP_SECONDS} s per architecture for all proxies on one core (`nb201_cifar10_correlations.md`):
{serial_hours:.1f} hours on one core. One task per architecture adds about {1000 * overhead_s:.0f} ms to
{FULL_SWEEP_SECONDS} s ({100 * overhead_s / FULL_SWEEP_SECONDS:.1f}%), so with a core per task the sweep
time is {FULL_SWEEP_ARCHS:,} x ({FULL_SWEEP_SECONDS} s + {overhead_s:.3f} s) / tasks in flight, plus the
cluster's start (once):

| machines | cores each | tasks in flight | hours (projected) |
|--:|--:|--:|--:|
{chr(10).join(sweep_lines)}

A DARTS-space CRoZe search (`robnas search --space darts-croze --strategy evolution`, 7-30 s per candidate,
budget 100 = an initial pool of 50, then 10 rounds of 5 mutants) evaluates each batch of independent
candidates together (`SearchContext.evaluate_many`): the pool spreads over every CPU, a round over at
most 5, so beyond 5 CPUs only the initial pool gets faster. Per-task overhead is negligible at this cost:

| s per candidate | tasks in flight | initial pool (min) | 10 rounds (min) | total (min) |
|--:|--:|--:|--:|--:|
{chr(10).join(search_lines)}

Wider rounds (`-o sample_pool=16`) or `random` / `topk` screening use a cluster fully;
`regularized-evolution` is sequential after its initial population (one child per step).
"""
    )
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
