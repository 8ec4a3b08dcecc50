"""Simulated search on NAS-Bench-201 (CIFAR-10) against a benchmark as ground truth.

Ground truth: the robustness dataset (Jung et al., ICLR 2023; standard training; ``--robustness``,
truth ``fgsm@8``) or, with ``--benchmark nas-robbench-201:DIR``, NAS-RobBench-201 (Wu et al., ICLR
2024; after PGD adversarial training; truth ``pgd@8``). Every table reports, per strategy and
objective, the regret of the pick: the best class's truth accuracy in the whole benchmark minus the
pick's (percentage points; 0 = the best class found).

Every strategy x objective pair searches the architectures that a precomputed scores table
covers (the proxies are read, not computed), for several budgets (distinct evaluations) and
seeds. For the architecture each search returns (its best by the objective) we look up its
accuracies in the robustness dataset (Jung et al., ICLR 2023): clean, FGSM and PGD at eps =
8/255, and the mean over the 15 corruptions x 5 severities; and its percentile by FGSM@8
among all searched-over architectures (100 = the best). The proxy cost is the sum of the
table's measured seconds column over the evaluated architectures (when the table has one).

Two references use no proxy: ``random pick`` (the first uniformly drawn architecture, i.e.
no selection) and ``random search on bench:fgsm@8`` (random search with oracle queries of
the target itself).

Target (docs/TARGETS.md): with 100 evaluations, a proxy-guided search finds on average an
architecture in the top 5% by fgsm@8 accuracy (mean percentile >= 95).

HNAS (Shu et al., NeurIPS 2022) runs with its own objective, as the reference's NAS-Bench-201
script does (hnas_and_proxies.md 1.3): the BO target is the NAS-Bench-201 12-epoch CIFAR-10
validation accuracy (``nb201:valid@12``, read from ``--nb201``), the criterion uses the NTK
trace norm and condition number of a pool (read from ``--hnas-scores``, or computed on
``--hnas-data`` when that is given), and the pick (best 12-epoch accuracy among the queried) is
reported by its 200-epoch test accuracies against the published 94.04 / 71.75 / 45.91
(CIFAR-10 / 100 / ImageNet16-120; TARGETS.md). ``--hnas-budgets 20`` is the reference's 20
queries (5 probes + 15 BO steps).

    python benchmarks/search_nb201.py --scores scores.csv [--robustness ../shared/data/robustness]

After adversarial training (the committed ``search_nb201_adversarial.md``)::

    python benchmarks/search_nb201.py --scores benchmarks/results/nb201_cifar10_full_scores.csv.gz \
        --benchmark nas-robbench-201:../shared/data/nas_robbench201 --budgets 50,100,200 --seeds 10 \
        --hnas-budgets '' --out benchmarks/results/search_nb201_adversarial.md
"""

from __future__ import annotations

import argparse
import gzip
import platform
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from robnas import objectives, spaces
from robnas.search import SubsetSpace, run_search

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_ROBUSTNESS = ROOT.parent / "shared" / "data" / "robustness"
DEFAULT_SCORES = ROOT.parent / "shared" / "data" / "zc_reference" / "nb201_zc_proxies_cifar10.csv"
DEFAULT_NB201 = ROOT.parent / "shared" / "data" / "nb201" / "nb201_merged_by_index.csv"
DEFAULT_HNAS_SCORES = ROOT / "benchmarks" / "results" / "nb201_cifar10_scores.csv"
EMPTY = "''"
#: HNAS's published NAS-Bench-201 test accuracies (TARGETS.md; RoBoT's Table 2), mean ± sd.
HNAS_PUBLISHED = {"cifar10": (94.04, 0.21), "cifar100": (71.75, 1.04), "ImageNet16-120": (45.91, 0.88)}
#: The best 200-epoch test accuracy in the whole NAS-Bench-201 space (same table).
SPACE_OPTIMUM = {"cifar10": 94.37, "cifar100": 73.51, "ImageNet16-120": 47.31}
#: Targets reported per benchmark, and the ground truth of pct and regret unless --truth says.
TARGETS_OF = {
    "RobustnessDataset": ("clean", "fgsm@8", "pgd@8", "cc_mean"),
    "NASRobBench201": ("clean", "fgsm@8", "pgd@8", "aa@8"),
}
TRUTH_OF = {"RobustnessDataset": "fgsm@8", "NASRobBench201": "pgd@8"}
TARGETS = TARGETS_OF["RobustnessDataset"]
STRATEGIES = {
    "random": {},
    "evolution": {"init_pool": 20, "sample_pool": 5},
    "regularized-evolution": {"population": 20, "sample_size": 5},
    "optuna": {"sampler": "tpe", "n_startup_trials": 10},
}
PREFERRED = ("croze", "croze_fixed", "synflow", "nwot", "jacov", "snip", "flops")
#: The objectives of the adversarial-training search (robust_zc and params are in the full sweep).
PREFERRED_AT = ("robust_zc", "croze", "croze_fixed", "params", "synflow", "nwot", "jacov")


def listed_strings(rob, space, archs: list[str]) -> list[str]:
    """For each canonical architecture, a string the robustness dataset lists (an isomorphic one)."""
    listed: dict[str, str] = {}
    for text in rob.arch_strings:
        listed.setdefault(space.canonical_string(text), text)
    return [listed[a] for a in archs]


def ground_truth(rob, space, archs: list[str], targets=TARGETS) -> dict[str, np.ndarray]:
    """Values (fractions) of every candidate for each target name (the benchmark's grammar)."""
    strings = listed_strings(rob, space, archs)
    return {t: np.asarray(rob.target(strings, "cifar10", t)) for t in targets}


def result_row(strategy: str, objective: str, rows: list[dict], targets=TARGETS) -> str:
    """One table row: percentile of the picks' truth (mean ± sd), share in the top 5%, regret to the
    best class (mean ± sd, percentage points), share of seeds that found it, and the mean accuracy (%)
    of the picks on every target."""
    pct = np.array([r["pct"] for r in rows])
    regret_cells = ""
    if all("regret" in r for r in rows):
        regret = np.array([r["regret"] for r in rows])
        regret_cells = f"{regret.mean():.2f} ± {regret.std():.2f} | {np.mean(regret <= 1e-9):.0%} | "
    return (
        f"| {strategy} | {objective} | {pct.mean():.1f} ± {pct.std():.1f} | {np.mean(pct >= 95):.0%} | "
        + regret_cells
        + " | ".join(f"{100 * np.mean([r[t] for r in rows]):.1f}" for t in targets)
        + " |"
    )


def percentile(values: np.ndarray, v: float) -> float:
    """Percent of candidates with a value <= v (100: the best)."""
    return 100.0 * float(np.mean(values <= v))


def hnas_section(args: argparse.Namespace, space, rob) -> list[str]:
    """HNAS with its own objective (12-epoch validation accuracy) against its published result."""
    started = time.perf_counter()
    nb201 = str(Path(args.nb201))
    if args.hnas_data:
        ctx = objectives.ObjectiveContext(
            data=args.hnas_data, batch_size=args.hnas_batch_size, nb201=nb201, benchmark=args.robustness
        )
        everything = sorted({space.canonical_string(a) for a in space.all()})
        size = min(args.hnas_pool or 1000, len(everything))
        chosen = np.random.default_rng(0).choice(len(everything), size=size, replace=False)
        archs = sorted(everything[int(i)] for i in chosen)
        source = (
            f"NTK metrics computed on `{args.hnas_data}`, batch {args.hnas_batch_size}, over {len(archs)} "
            f"of the {len(everything)} isomorphism classes, drawn with seed 0"
        )
    else:
        ctx = objectives.ObjectiveContext(scores=args.hnas_scores, nb201=nb201, benchmark=args.robustness)
        table = ctx.table(space)
        metrics = [table.values(p) for p in ("ntk_trace", "ntk_condnum")]
        archs = sorted(set(metrics[0]) & set(metrics[1]))
        source = (
            f"NTK metrics read from `{Path(args.hnas_scores).name}` ({len(archs)} architectures, one per "
            "isomorphism class; computed by robnas, see nb201_cifar10_correlations.md for their batch)"
        )
    subset = SubsetSpace(space, archs)
    datasets = ("cifar10", "cifar100", "ImageNet16-120")
    tests = {d: objectives.make(f"nb201:{d}/test@200", space, ctx) for d in datasets}
    pool_c10 = np.array([tests["cifar10"].evaluate(a) for a in archs])
    strings = listed_strings(rob, space, archs)
    pool_fgsm = np.asarray(rob.target(strings, "cifar10", "fgsm@8"))
    index = {a: i for i, a in enumerate(archs)}
    options = {"metric": "ntk_trace", "condition": "ntk_condnum", "pool_size": len(archs), "probes": 5}
    seeds = args.hnas_seeds or args.seeds
    budgets = [int(b) for b in args.hnas_budgets.split(",") if b.strip()]
    rows: dict[tuple[int, str], list[dict[str, float]]] = defaultdict(list)
    moved = 0
    for budget in budgets:
        for seed in range(seeds):
            runs = {
                "hnas": run_search(
                    subset, "hnas", "nb201:valid@12", budget, seed=seed, context=ctx, options=options
                ),
                "random": run_search(subset, "random", "nb201:valid@12", budget, seed=seed, context=ctx),
            }
            bo = [r.info for r in runs["hnas"].history[options["probes"] :]]
            moved += any(abs(i["c"] - (-2.0)) > 1e-9 for i in bo)
            for name, result in runs.items():
                pick = result.best(1)[0]
                i = index[pick.arch]
                row = {d: tests[d].evaluate(pick.arch) for d in datasets}
                row["val12"] = pick.value
                row["pct"] = percentile(pool_c10, pool_c10[i])
                row["fgsm"] = 100 * pool_fgsm[i]
                row["pct_fgsm"] = percentile(pool_fgsm, pool_fgsm[i])
                rows[(budget, name)].append(row)
        print(f"hnas budget {budget} done after {time.perf_counter() - started:.0f} s", file=sys.stderr)

    def cell(values: list[float]) -> str:
        return f"{np.mean(values):.2f} ± {np.std(values):.2f}"

    lines = [
        "## HNAS with its own objective (NAS-Bench-201 12-epoch validation accuracy)",
        "",
        "As the reference's NAS-Bench-201 script (hnas_and_proxies.md 1.3): BO over (t, c) of the criterion "
        "mu·|M² − nu²| + kappa/M (M = NTK trace norm, kappa = NTK condition number; scale 5e3, c in [−4, 0], "
        "5 probes at t = linspace(0, 1, 5), c = −2, then GP-BO) with the objective `nb201:valid@12` "
        "(cifar10-valid, 12-epoch schedule); the pick is the queried architecture with the best 12-epoch "
        "accuracy, reported by its 200-epoch test accuracies (`nb201:DATASET/test@200`, "
        f"`{Path(nb201).name}`). Pool: {source}. The reference instead adds 2,000 random NAS-Bench-201 "
        "indices to its pool at every query and computes M and kappa on 64 images; its BO is bayes_opt's GP "
        "(here Optuna's GPSampler). `random` = random search over the same pool with the same objective "
        f"and queries. {seeds} seeds per row; mean ± sd; pct = percentile of the pick's CIFAR-10 test "
        "accuracy (pct fgsm = of its FGSM@8 accuracy) within the pool; fgsm@8 in %, from the robustness "
        f"dataset. BO left c = −2 after the probes in {moved} of {seeds * len(budgets)} HNAS runs. "
        f"Wall time of this section {time.perf_counter() - started:.0f} s.",
        "",
        "Paper scale (the reference's pool grows to nearly all of NAS-Bench-201, metrics on 64 images): "
        "`python benchmarks/search_nb201.py --hnas-data cifar10_exact_subset.npz --hnas-pool 6466 "
        "--hnas-batch-size 64 --hnas-budgets 20` computes both NTK metrics for every isomorphism class "
        "(about 0.8 s per architecture on one CPU thread by proxy_speed.md, so about 1.5 hours).",
        "",
        "| method | queries | C10 test | C100 test | IN16-120 test | 12-ep valid | pct C10 | fgsm@8 | pct fgsm |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for (budget, name), found in rows.items():
        lines.append(
            f"| {name} | {budget} | "
            + " | ".join(cell([r[k] for r in found]) for k in (*datasets, "val12"))
            + f" | {np.mean([r['pct'] for r in found]):.1f} | {np.mean([r['fgsm'] for r in found]):.1f} | "
            f"{np.mean([r['pct_fgsm'] for r in found]):.1f} |"
        )
    best = int(np.argmax(pool_c10))
    lines.append(
        f"| best in pool | - | {pool_c10[best]:.2f} | {tests['cifar100'].evaluate(archs[best]):.2f} | "
        f"{tests['ImageNet16-120'].evaluate(archs[best]):.2f} | | 100.0 | {100 * pool_fgsm[best]:.1f} | "
        f"{percentile(pool_fgsm, pool_fgsm[best]):.1f} |"
    )
    lines.append(
        "| HNAS published (RoBoT's Table 2) | 20 | "
        + " | ".join(f"{m:.2f} ± {sd:.2f}" for m, sd in HNAS_PUBLISHED.values())
        + " | | | | |"
    )
    lines.append(
        "| optimum of NAS-Bench-201 | - | "
        + " | ".join(f"{v:.2f}" for v in SPACE_OPTIMUM.values())
        + " | | | | |"
    )
    lines.append("")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--scores", default=str(DEFAULT_SCORES), help="Scores CSV (long arch,proxy,value[,seconds] or wide)."
    )
    ap.add_argument("--robustness", default=str(DEFAULT_ROBUSTNESS), help="Robustness dataset folder.")
    ap.add_argument(
        "--benchmark",
        default="",
        help="Ground truth as NAME:PATH (nas-robbench-201:DIR: after adversarial training); default --robustness.",
    )
    ap.add_argument("--truth", default="", help="Target of pct and regret (default: fgsm@8, or pgd@8 on NAS-RobBench-201).")
    ap.add_argument("--objectives", default="", help="Comma-separated objectives (default: from the table).")
    ap.add_argument("--strategies", default=",".join(STRATEGIES))
    ap.add_argument("--budgets", default="50,100,500")
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "search_nb201.md"))
    ap.add_argument("--nb201", default=str(DEFAULT_NB201), help="NAS-Bench-201 table (HNAS's objective).")
    ap.add_argument(
        "--hnas-scores",
        default=str(DEFAULT_HNAS_SCORES),
        help="Scores table with ntk_trace and ntk_condnum: HNAS's pool (ignored with --hnas-data).",
    )
    ap.add_argument(
        "--hnas-data",
        default="",
        help="Compute the pool's NTK metrics on these images (robnas.data spec) instead of reading them.",
    )
    ap.add_argument("--hnas-pool", type=int, default=0, help="Pool size with --hnas-data (default 1000).")
    ap.add_argument(
        "--hnas-batch-size", type=int, default=64, help="Proxy batch with --hnas-data (HNAS: 64)."
    )
    ap.add_argument("--hnas-budgets", default="20", help="HNAS queries (the reference: 20); empty: no HNAS.")
    ap.add_argument("--hnas-seeds", type=int, default=0, help="HNAS seeds (default: --seeds).")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    space = spaces.get("nb201")
    scores_path = args.scores
    if scores_path.endswith(".gz"):  # the committed sweep is gzipped; the scores table reads plain CSV
        scratch = tempfile.mkdtemp(prefix="search-nb201-")
        scores_path = str(Path(scratch) / Path(scores_path).name[: -len(".gz")])
        with gzip.open(args.scores, "rb") as src, open(scores_path, "wb") as dst:
            shutil.copyfileobj(src, dst)
    benchmark = args.benchmark or args.robustness
    ctx = objectives.ObjectiveContext(scores=scores_path, benchmark=benchmark)
    table = ctx.table(space)
    rob = ctx.robustness()
    targets = TARGETS_OF.get(type(rob).__name__, TARGETS)
    truth_name = rob.canonical_target(args.truth or TRUTH_OF.get(type(rob).__name__, "fgsm@8"))
    targets = targets if truth_name in targets else (*targets, truth_name)
    archs = table.archs
    truth = ground_truth(rob, space, archs, targets)
    best_class = float(np.max(rob.target_values("cifar10", truth_name)))
    index = {a: i for i, a in enumerate(archs)}
    subset = SubsetSpace(space, archs)

    if args.objectives:
        objs = [o.strip() for o in args.objectives.split(",") if o.strip()]
    else:
        preferred = PREFERRED if type(rob).__name__ == "RobustnessDataset" else PREFERRED_AT
        single = [p for p in preferred if p in table.proxies]
        ensemble = "+".join(
            ([p for p in ("croze",) if p in table.proxies] + ["synflow", "nwot", "jacov"])[:3]
        )
        objs = [*single, ensemble]
    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    budgets = [int(b) for b in args.budgets.split(",")]
    has_seconds = table.has_seconds

    results: dict[tuple[int, str, str], list[dict[str, float]]] = defaultdict(list)
    started = time.perf_counter()
    hnas_lines = hnas_section(args, space, rob) if args.hnas_budgets.strip() else []

    def record(budget: int, strategy: str, objective: str, arch: str, proxy_seconds: float) -> None:
        i = index[arch]
        row = {t: float(truth[t][i]) for t in targets}
        row["pct"] = percentile(truth[truth_name], truth[truth_name][i])
        row["regret"] = 100.0 * (best_class - truth[truth_name][i])
        row["proxy_s"] = proxy_seconds
        results[(budget, strategy, objective)].append(row)

    for budget in budgets:
        for seed in range(args.seeds):
            rng = np.random.default_rng([seed, budget])
            record(budget, "random pick", "-", archs[int(rng.integers(len(archs)))], 0.0)
            oracle = run_search(subset, "random", f"bench:{truth_name}", budget, seed=seed, context=ctx)
            record(budget, "random search", f"bench:{truth_name} (oracle)", oracle.best(1)[0].arch, 0.0)
            for strategy in strategies:
                for objective in objs:
                    result = run_search(
                        subset,
                        strategy,
                        objective,
                        budget,
                        seed=seed,
                        context=ctx,
                        options=STRATEGIES.get(strategy, {}),
                    )
                    reported = result.evaluation_cost.reported
                    record(budget, strategy, objective, result.best(1)[0].arch, reported)
        print(f"budget {budget} done after {time.perf_counter() - started:.0f} s", file=sys.stderr)

    command = (
        f"python benchmarks/search_nb201.py --scores {Path(args.scores).name} "
        + (f"--benchmark {args.benchmark.split(':')[0]}:DIR " if args.benchmark else "")
        + (f"--truth {args.truth} " if args.truth else "")
        + f"--budgets {args.budgets} --seeds {args.seeds} --strategies {args.strategies} "
        f"--hnas-budgets {args.hnas_budgets or EMPTY}"
    )
    if Path(args.out).name != "search_nb201.md":
        command += f" --out {Path(args.out).name}"
    if args.hnas_seeds:
        command += f" --hnas-seeds {args.hnas_seeds}"
    if args.hnas_data:
        command += f" --hnas-data {args.hnas_data} --hnas-pool {args.hnas_pool} --hnas-batch-size {args.hnas_batch_size}"
    adversarial = type(rob).__name__ == "NASRobBench201"
    source = (
        "NAS-RobBench-201 (Wu et al., ICLR 2024), every class after PGD-7 adversarial training, CIFAR-10"
        if adversarial
        else f"`{Path(args.robustness).name}` (Jung et al., ICLR 2023; standard training), CIFAR-10"
    )
    lines = [
        "# Simulated search on NAS-Bench-201 (CIFAR-10), "
        + ("NAS-RobBench-201 (after adversarial training)" if adversarial else "robustness dataset")
        + " as ground truth",
        "",
        f"Command: `{command}` (DIR: the benchmark's folder, `../shared/data/nas_robbench201`)"
        if args.benchmark
        else f"Command: `{command}`",
        f"Scores table: `{Path(args.scores).name}` ({len(archs)} non-isomorphic architectures searched over; "
        f"proxies read from the table, not computed). Ground truth: {source}; truth target `{truth_name}`.",
        f"Seeds: {args.seeds} per cell; the architecture returned is the best by the objective. "
        f"pct = percentile of its {truth_name} accuracy among the searched architectures (100 = best); "
        "top5% = share of seeds whose pick is in the top 5%; regret = the best class's "
        f"{truth_name} accuracy in the whole benchmark ({100 * best_class:.2f}%) minus the pick's, percentage "
        "points, mean ± sd over seeds; found = share of seeds whose pick is that best class; accuracies in %, "
        "means over seeds. "
        "Proxy cost = sum of the table's measured seconds over the evaluated architectures"
        + ("" if has_seconds else " (this table has no seconds column: n/a)")
        + ".",
        f"Strategy options: {STRATEGIES}. Machine: {platform.machine()}, wall time "
        f"{time.perf_counter() - started:.0f} s.",
    ]
    missing = [p for p in PREFERRED[:2] if p not in table.proxies]
    if missing and not args.objectives:
        lines.append(
            f"Not in this table, so not searched: {', '.join(missing)} (rerun with a scores CSV that has them, "
            "e.g. from `robnas score --csv`)."
        )
    lines.append("")
    target_rows = []
    for budget in budgets:
        lines += [
            f"## Budget {budget} evaluations",
            "",
            f"| strategy | objective | pct {truth_name} (mean ± sd) | top5% | regret (pp) | found | "
            + " | ".join(targets)
            + " | proxy cost (s) |",
            "|---|---|---|---|---|---|" + "---|" * len(targets) + "---|",
        ]
        for (b, strategy, objective), rows in results.items():
            if b != budget:
                continue
            pct = np.array([r["pct"] for r in rows])
            cost = np.array([r["proxy_s"] for r in rows])
            cost_text = (
                f"{np.mean(cost):.1f}"
                if np.isfinite(cost).all() and objective not in ("-",) and "oracle" not in objective
                else "n/a"
            )
            lines.append(result_row(strategy, objective, rows, targets) + f" {cost_text} |")
            if budget == 100 and objective != "-" and "oracle" not in objective:
                target_rows.append((pct.mean(), strategy, objective))
        lines.append("")
    if target_rows:
        best_pct, best_strategy, best_objective = max(target_rows)
        met = best_pct >= 95.0
        lines += [
            "## Target",
            "",
            "With 100 evaluations a proxy-guided search should find, on average, an architecture in the top 5% "
            f"by {truth_name} accuracy. Best proxy-guided cell: {best_strategy} with {best_objective}, mean percentile "
            f"{best_pct:.1f}: **{'met' if met else 'not met'}**.",
            "",
        ]
    lines += hnas_lines
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
