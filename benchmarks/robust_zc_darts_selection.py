"""Can a label-free ``robust_zc`` beat the parameter count in the DARTS space? Chosen by cross-validation.

Ground truth: Tiny-RobustBench (Feng et al., ICLR 2025), 110 DARTS-space networks (C=16, 8 cells)
after PGD-7 adversarial training, target ``pgd@8``; and, so that the NB201 figures hold,
NAS-RobBench-201 (Wu et al., ICLR 2024) CIFAR-10 ``pgd@8`` on the halves of
``benchmarks/results/nb201_split.json`` (each class once).

Candidates are per-network formulas of label-free signals, fixed before any figure was read
(a few, simple ones): the current ``robust_zc`` (MeCo's channel decorrelation, ``meco``), the
parameter count, ``zc_act_flip`` of ``robust_zc_candidates.py`` (the fraction of ReLU input signs
that flip under Gaussian pixel noise of sd 8/255), and log-linear combinations
``log meco + a log params + b log flip`` on a small grid. Signals on DARTS networks: one batch of
32 real CIFAR-10 training images, networks built as Tiny-RobustBench trained them, initialised
from ``stable_seed(0, arch)`` (``benchmarks/results/darts_tiny_robustbench_scores.csv`` and
``robust_zc_darts_scores.csv``); on NB201: the full sweep (batch of 8,
``nb201_cifar10_full_scores.csv.gz``, ``nb201_cifar10_act_flip_scores.csv.gz``).

Protocol. DARTS: repeated 5-fold cross-validation of the 110 networks (20 repeats): on the four
training folds the candidate with the highest Kendall tau is chosen among the admissible ones
(NB201 development half: Spearman >= 0.93), and measured on the held-out fold, beside params on
the same networks; the mean held-out figure is the one to quote (other networks of the dataset
are what checks outside the tests use). NB201: the chosen formula's test-half figures (Spearman,
top-1% precision: the share of its top 1% that is in the true top 1%).

Commands::

    nice -n 10 env OMP_NUM_THREADS=1 python benchmarks/robust_zc_darts_selection.py score
    python benchmarks/robust_zc_darts_selection.py select
"""

from __future__ import annotations

import argparse
import collections
import itertools
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "benchmarks" / "results"
DARTS_SCORES = RESULTS / "darts_tiny_robustbench_scores.csv"
DARTS_EXTRA = RESULTS / "robust_zc_darts_scores.csv"
NB201_SCORES = RESULTS / "nb201_cifar10_full_scores.csv.gz"
NB201_FLIP = RESULTS / "nb201_cifar10_act_flip_scores.csv.gz"
SPLIT = RESULTS / "nb201_split.json"
OUT = RESULTS / "robust_zc_darts_selection.md"
NB201_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
MIN_NB201_SPEARMAN = 0.93


# ------------------------------------------------------------------------------ ground truth
def _js_assignment(path: Path) -> object:
    text = path.read_text()
    return json.loads(text[text.index("=") + 1 :].strip().rstrip(";"))


def nas_robbench201(folder: Path, column: str = "cifar10#val_pgd_8_acc") -> tuple[dict[str, int], dict[int, float]]:
    """A minimal reader of NAS-RobBench-201's web files: NB201 string -> representative index,
    and representative index -> the value of ``column`` (a fraction)."""
    acc = _js_assignment(folder / "NAS-RobBench-201_html.json")
    ops = _js_assignment(folder / "ops.json")
    index = acc[""].index(column)
    strings = {}
    for i, digits in enumerate(ops):
        o = [NB201_OPS[int(c)] for c in digits]
        strings[f"|{o[0]}~0|+|{o[1]}~0|{o[2]}~1|+|{o[3]}~0|{o[4]}~1|{o[5]}~2|"] = i
    rep = {i: (i if isinstance(acc[str(i)], list) else int(acc[str(i)])) for i in range(len(ops))}
    values = {i: float(acc[str(i)][index]) for i in set(rep.values())}
    return {s: rep[i] for s, i in strings.items()}, values


def wide(path: Path) -> pd.DataFrame:
    table = pd.read_csv(path)
    return table.pivot_table(index="arch", columns="proxy", values="value", aggfunc="first")


def darts_table() -> tuple[pd.DataFrame, np.ndarray]:
    from robnas import benchmarks

    bench = benchmarks.open("tiny-robustbench", SHARED / "tiny_robustbench")
    table = wide(DARTS_SCORES).join(wide(DARTS_EXTRA), how="outer")
    table = table.loc[[k for k in bench.keys if k in table.index]]
    y = bench.target_values("cifar10", "pgd@8")[bench.rows(list(table.index))]
    return table, y


def nb201_table() -> tuple[pd.DataFrame, np.ndarray, dict[str, set[int]]]:
    classes, values = nas_robbench201(SHARED / "nas_robbench201")
    table = wide(NB201_SCORES)
    if NB201_FLIP.is_file():
        table = table.join(wide(NB201_FLIP), how="left")
    table["class"] = [classes[a] for a in table.index]
    table = table.groupby("class").first()
    split = json.loads(SPLIT.read_text())
    halves = {h: {int(k) for k in split[h]} for h in ("dev", "test")}
    return table, np.array([values[c] for c in table.index]), halves


# --------------------------------------------------------------------------------- candidates
def _log(v: pd.Series) -> np.ndarray:
    x = v.to_numpy(dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(x > 0, np.log(np.where(x > 0, x, 1.0)), -np.inf)
    return np.where(np.isnan(x), np.nan, out)


Formula = Callable[[pd.DataFrame], np.ndarray]


def candidates() -> dict[str, Formula]:
    out: dict[str, Formula] = {
        "robust_zc (meco)": lambda t: t["robust_zc"].to_numpy(dtype=np.float64),
        "params": lambda t: t["params"].to_numpy(dtype=np.float64),
        "zc_act_flip": lambda t: t["zc_act_flip"].to_numpy(dtype=np.float64),
    }
    for a, b in itertools.product((0.0, 0.5, 1.0), (0.0, 0.5, 1.0, 2.0)):
        if a == b == 0.0:
            continue

        def formula(t: pd.DataFrame, a: float = a, b: float = b) -> np.ndarray:
            out = _log(t["robust_zc"])
            if a:
                out = out + a * _log(t["params"])
            if b:
                out = out + b * _log(t["zc_act_flip"])
            return out

        out[f"log meco + {a:g} log params + {b:g} log flip"] = formula
    for a in (0.5, 1.0, 2.0):

        def sized(t: pd.DataFrame, a: float = a) -> np.ndarray:
            return _log(t["zc_act_flip"]) + a * _log(t["params"])

        out[f"log flip + {a:g} log params"] = sized
    return out


def kendall(x: np.ndarray, y: np.ndarray) -> float:
    keep = np.isfinite(x)
    return float(stats.kendalltau(x[keep], y[keep]).statistic)


def top_share(x: np.ndarray, y: np.ndarray, fraction: float = 0.01) -> float:
    """Share of the top ``fraction`` by ``x`` that is in the top ``fraction`` by ``y``."""
    k = max(1, round(len(y) * fraction))
    x = np.where(np.isfinite(x), x, -np.inf)
    return len(set(np.argsort(-x, kind="stable")[:k]) & set(np.argsort(-y, kind="stable")[:k])) / k


def nb201_figures(formula: Formula, table: pd.DataFrame, y: np.ndarray, half: set[int]) -> dict[str, float]:
    """Spearman and top-1% / top-5% precision on the classes of ``half`` where the formula's
    signals are scored (``n``); ``-inf`` (a log of a non-positive value) ranks last."""
    rows = np.array([c in half for c in table.index])
    x = formula(table.loc[rows])
    truth = y[rows]
    keep = ~np.isnan(x)
    x, truth = x[keep], truth[keep]
    return {
        "n": int(keep.sum()),
        "spearman": float(stats.spearmanr(np.where(np.isfinite(x), x, -1e300), truth).statistic),
        "top1": top_share(x, truth),
        "top5": top_share(x, truth, 0.05),
    }


# ---------------------------------------------------------------------------------------- steps
def score(workers: int, which: Sequence[str]) -> None:
    """Score ``zc_act_flip`` on the Tiny-RobustBench networks and on the NB201 sweep (resumable stores)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import robust_zc_candidates  # noqa: F401  (registers zc_act_flip)
    from robnas import benchmarks, scoring
    from robnas.data import load_npz
    from robnas.store import RunStore

    images = load_npz(SHARED / "cifar10" / "cifar10_exact_subset.npz", name="cifar10")
    bench = benchmarks.open("tiny-robustbench", SHARED / "tiny_robustbench")
    runs = ROOT / "runs"
    runs.mkdir(exist_ok=True)
    if "darts" in which:
        with RunStore(runs / "robust_zc_darts.sqlite") as store:
            scoring.score("darts", bench.keys, ["zc_act_flip"], images, store, batch_size=32, seed=0,
                          workers=workers, build_options=bench.build_options(0))
            store.export_csv(DARTS_EXTRA)
    if "nb201" in which:
        archs = list(pd.unique(pd.read_csv(NB201_SCORES, usecols=["arch"])["arch"]))
        with RunStore(runs / "nb201_cifar10_act_flip.sqlite") as store:
            scoring.score("nb201", archs, ["zc_act_flip"], images, store, batch_size=8, seed=0, workers=workers)
            rows = pd.DataFrame([(r.arch, r.proxy, r.value, r.seconds, r.error) for r in store.rows()],
                                columns=["arch", "proxy", "value", "seconds", "error"])
        rows.to_csv(NB201_FLIP, index=False, float_format="%.9g")


def select(repeats: int) -> None:
    from robnas import holdout

    start = time.time()
    darts, y = darts_table()
    nb, nb_y, halves = nb201_table()
    forms = candidates()
    values = {name: f(darts) for name, f in forms.items()}
    dev = {name: nb201_figures(f, nb, nb_y, halves["dev"]) for name, f in forms.items()}
    test = {name: nb201_figures(f, nb, nb_y, halves["test"]) for name, f in forms.items()}
    admissible = [n for n in forms if dev[n]["spearman"] >= MIN_NB201_SPEARMAN]
    parts = holdout.repeated_folds(len(y), 5, repeats)
    held: dict[str, list[float]] = collections.defaultdict(list)
    chosen, chosen_held, base = collections.Counter(), [], []
    for tr, te in parts:
        for name in forms:
            held[name].append(kendall(values[name][te], y[te]))
        best = max(admissible, key=lambda n: kendall(values[n][tr], y[tr]))
        chosen[best] += 1
        chosen_held.append(held[best][-1])
        base.append(held["params"][-1])
    full_best = max(admissible, key=lambda n: kendall(values[n], y))

    def mean_se(v: Sequence[float]) -> str:
        a = np.asarray(v)
        return f"{a.mean():.3f} ± {a.std(ddof=1) / np.sqrt(len(a)):.3f}"

    gain = np.asarray(chosen_held) - np.asarray(base)
    lines = [
        "# robust_zc in the DARTS space: candidates chosen by cross-validation on Tiny-RobustBench",
        "",
        f"Commands: `nice -n 10 env OMP_NUM_THREADS=1 python benchmarks/robust_zc_darts_selection.py score`, then "
        f"`python benchmarks/robust_zc_darts_selection.py select --repeats {repeats}` ({time.time() - start:.0f} s, "
        f"load average {os.getloadavg()[0]:.1f}).",
        "",
        "Candidates: per-network formulas of label-free signals, fixed before any figure was read: the current "
        "`robust_zc` (MeCo's channel decorrelation, `meco`), the parameter count, `zc_act_flip` of "
        "`robust_zc_candidates.py` (`flip`: the fraction of ReLU input signs that flip under Gaussian pixel noise "
        "of sd 8/255), and `log meco + a log params + b log flip` on a small grid. DARTS signals: one batch of "
        "32 real CIFAR-10 training images, networks built as Tiny-RobustBench trained them (C=16, 8 cells), "
        "initialised from `stable_seed(0, arch)`; NB201 signals: the full sweep (batch of 8).",
        "",
        "Protocol: repeated 5-fold cross-validation of the Tiny-RobustBench networks: on the four training folds "
        "the admissible candidate (NB201 development half, NAS-RobBench-201 CIFAR-10 pgd@8, each class once: "
        f"Spearman >= {MIN_NB201_SPEARMAN}) with the highest Kendall tau against pgd@8 is chosen, and measured on "
        "the held-out fold beside params on the same networks. NB201 test half: Spearman and top-1% precision "
        "(the share of a score's top 1% that is in the true top 1%).",
        "",
        f"DARTS: {len(y)} networks, {repeats} x 5-fold ({len(parts)} held-out folds). NB201: "
        f"{sum(c in halves['dev'] for c in nb.index)} development and {sum(c in halves['test'] for c in nb.index)} "
        "test classes, every class of the sweep scored for `zc_act_flip` too (where a signal misses classes, "
        "its figures are over the classes it has: last column). `flip` is `zc_act_flip`; `log` of a "
        "non-positive value ranks last.",
        "",
        "## Every candidate",
        "",
        "| candidate | DARTS Kendall, all 110 | DARTS held-out Kendall (mean over folds) | NB201 dev Spearman | NB201 dev top-1% | "
        "NB201 test Spearman | NB201 test top-1% | NB201 test top-5% | NB201 classes (dev / test) |",
        "|:--|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for name in sorted(forms, key=lambda n: -np.mean(held[n])):
        lines.append(
            f"| {name}{'' if name in admissible else ' (NB201 dev < 0.93)'} | {kendall(values[name], y):.3f} | "
            f"{mean_se(held[name])} | {dev[name]['spearman']:.3f} | {dev[name]['top1']:.3f} | "
            f"{test[name]['spearman']:.3f} | {test[name]['top1']:.3f} | {test[name]['top5']:.3f} | "
            f"{dev[name]['n']} / {test[name]['n']} |"
        )
    lines += [
        "",
        "## The choice, held out",
        "",
        f"- Candidate chosen on the training folds, measured on the held-out fold: Kendall {mean_se(chosen_held)}; "
        f"params on the same held-out networks {mean_se(base)}; difference {mean_se(list(gain))} (goal: +0.10).",
        "- Chosen per fold: " + ", ".join(f"{n} {k}x" for n, k in chosen.most_common()) + ".",
        f"- Chosen on all {len(y)} networks: {full_best}; NB201 test half ({test[full_best]['n']} classes): "
        f"Spearman {test[full_best]['spearman']:.3f} (goal >= 0.93), top-1% precision {test[full_best]['top1']:.3f} "
        f"(goal 0.50); the current robust_zc ({test['robust_zc (meco)']['n']} classes): "
        f"{test['robust_zc (meco)']['spearman']:.3f} and {test['robust_zc (meco)']['top1']:.3f}.",
        f"- Held out against the current robust_zc on the same networks: {mean_se(held['robust_zc (meco)'])}.",
        "",
    ]
    if gain.mean() < 0.10:
        lines += [
            "Outcome: no candidate reaches params + 0.10 held out, so the registered `robust_zc` keeps its "
            "definition (MeCo). The size-combined formulas gain over MeCo in the DARTS space but only match "
            "the parameter count there, and on the whole NB201 test half none of them lifts the top-1% "
            "precision to 0.50 (with `flip` it was 0.50 on the first 565 test classes scored, 3 of 6 "
            "classes: a small-sample figure that the whole half does not confirm).",
            "",
        ]
    OUT.write_text("\n".join(lines))
    print("\n".join(lines))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    sub = parser.add_subparsers(dest="step", required=True)
    s = sub.add_parser("score")
    s.add_argument("--workers", type=int, default=1)
    s.add_argument("--spaces", default="darts,nb201", help="darts, nb201 or both")
    t = sub.add_parser("select")
    t.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args(argv)
    if args.step == "score":
        score(args.workers, args.spaces.split(","))
    else:
        select(args.repeats)


if __name__ == "__main__":
    main()
