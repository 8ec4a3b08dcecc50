"""Simulated search on NAS-Bench-201 (CIFAR-10) against the robustness dataset as ground truth.

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

    python benchmarks/search_nb201.py --scores scores.csv [--robustness ../shared/data/robustness]
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from robnas import objectives, spaces
from robnas.search import SubsetSpace, run_search

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_ROBUSTNESS = ROOT.parent / "shared" / "data" / "robustness"
DEFAULT_SCORES = ROOT.parent / "shared" / "data" / "zc_reference" / "nb201_zc_proxies_cifar10.csv"
TARGETS = ("clean", "fgsm@8", "pgd@8", "cc_mean")
STRATEGIES = {
    "random": {},
    "evolution": {"init_pool": 20, "sample_pool": 5},
    "regularized-evolution": {"population": 20, "sample_size": 5},
    "optuna": {"sampler": "tpe", "n_startup_trials": 10},
}
PREFERRED = ("croze", "croze_fixed", "synflow", "nwot", "jacov", "snip", "flops")


def ground_truth(rob, space, archs: list[str]) -> dict[str, np.ndarray]:
    """Accuracies (fractions) of every candidate for each target, via the dataset's tables."""
    from robnas.benchmarks.robustness import CORRUPTIONS

    listed = {}
    for text in rob.arch_strings:
        listed.setdefault(space.canonical_string(text), text)
    rows = rob.rows([listed[a] for a in archs])
    eps_f = rob.epsilons("fgsm").index(8.0)
    eps_p = rob.epsilons("pgd").index(8.0)
    cc = np.mean([rob.table("cifar10", c)[rows].mean(axis=1) for c in CORRUPTIONS], axis=0)
    return {
        "clean": rob.table("cifar10", "clean")[rows],
        "fgsm@8": rob.table("cifar10", "fgsm@Linf")[rows, eps_f],
        "pgd@8": rob.table("cifar10", "pgd@Linf")[rows, eps_p],
        "cc_mean": cc,
    }


def percentile(values: np.ndarray, v: float) -> float:
    """Percent of candidates with a value <= v (100: the best)."""
    return 100.0 * float(np.mean(values <= v))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--scores", default=str(DEFAULT_SCORES), help="Scores CSV (long arch,proxy,value[,seconds] or wide)."
    )
    ap.add_argument("--robustness", default=str(DEFAULT_ROBUSTNESS), help="Robustness dataset folder.")
    ap.add_argument("--objectives", default="", help="Comma-separated objectives (default: from the table).")
    ap.add_argument("--strategies", default=",".join(STRATEGIES))
    ap.add_argument("--budgets", default="50,100,500")
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "search_nb201.md"))
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    space = spaces.get("nb201")
    ctx = objectives.ObjectiveContext(scores=args.scores, benchmark=args.robustness)
    table = ctx.table(space)
    rob = ctx.robustness()
    archs = table.archs
    truth = ground_truth(rob, space, archs)
    index = {a: i for i, a in enumerate(archs)}
    subset = SubsetSpace(space, archs)

    if args.objectives:
        objs = [o.strip() for o in args.objectives.split(",") if o.strip()]
    else:
        single = [p for p in PREFERRED if p in table.proxies]
        ensemble = "+".join(
            ([p for p in ("croze",) if p in table.proxies] + ["synflow", "nwot", "jacov"])[:3]
        )
        objs = [*single, ensemble]
    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    budgets = [int(b) for b in args.budgets.split(",")]
    has_seconds = table.has_seconds

    results: dict[tuple[int, str, str], list[dict[str, float]]] = defaultdict(list)
    started = time.perf_counter()

    def record(budget: int, strategy: str, objective: str, arch: str, proxy_seconds: float) -> None:
        i = index[arch]
        row = {t: float(truth[t][i]) for t in TARGETS}
        row["pct"] = percentile(truth["fgsm@8"], truth["fgsm@8"][i])
        row["proxy_s"] = proxy_seconds
        results[(budget, strategy, objective)].append(row)

    for budget in budgets:
        for seed in range(args.seeds):
            rng = np.random.default_rng([seed, budget])
            record(budget, "random pick", "-", archs[int(rng.integers(len(archs)))], 0.0)
            oracle = run_search(subset, "random", "bench:fgsm@8", budget, seed=seed, context=ctx)
            record(budget, "random search", "bench:fgsm@8 (oracle)", oracle.best(1)[0].arch, 0.0)
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

    lines = [
        "# Simulated search on NAS-Bench-201 (CIFAR-10), robustness dataset as ground truth",
        "",
        f"Command: `python benchmarks/search_nb201.py --scores {Path(args.scores).name} "
        f"--budgets {args.budgets} --seeds {args.seeds} --strategies {args.strategies}`",
        f"Scores table: `{Path(args.scores).name}` ({len(archs)} non-isomorphic architectures searched over; "
        f"proxies read from the table, not computed). Ground truth: `{Path(args.robustness).name}` "
        "(Jung et al., ICLR 2023), CIFAR-10.",
        f"Seeds: {args.seeds} per cell; the architecture returned is the best by the objective. "
        "pct = percentile of its FGSM@8 accuracy among the searched architectures (100 = best); "
        "top5% = share of seeds whose pick is in the top 5%; accuracies in %, means over seeds. "
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
            "| strategy | objective | pct fgsm@8 (mean ± sd) | top5% | clean | fgsm@8 | pgd@8 | cc mean | proxy cost (s) |",
            "|---|---|---|---|---|---|---|---|---|",
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
            lines.append(
                f"| {strategy} | {objective} | {pct.mean():.1f} ± {pct.std():.1f} | {np.mean(pct >= 95):.0%} | "
                + " | ".join(f"{100 * np.mean([r[t] for r in rows]):.1f}" for t in TARGETS)
                + f" | {cost_text} |"
            )
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
            f"by fgsm@8 accuracy. Best proxy-guided cell: {best_strategy} with {best_objective}, mean percentile "
            f"{best_pct:.1f}: **{'met' if met else 'not met'}**.",
            "",
        ]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
