"""Choose the ``robust_zc`` proxy on the development half; report the test half of the choice once.

Reads the 18 registered proxies' scores (``nb201_cifar10_scores.csv``), the candidate signals and
the ``robust_zc`` rows (``nb201_cifar10_robust_zc_scores.csv``, from ``robust_zc_candidates.py``)
and the development / test split (``nb201_split.json``), and writes
``benchmarks/results/robust_zc_selection.md``.

Every candidate is a label-free score of one architecture: a registered proxy, a candidate signal,
a rank sum of proxies (needs the whole population: listed for reference, not eligible as a
per-network proxy), or a per-network formula: a sum of terms ``sign * g(proxy) / sd``, ``g`` the
log (or the identity), ``sd`` the standard deviation of ``g(proxy)`` over the development half (no
accuracy is read to set it). Figures: Spearman rho against ``clean``, ``fgsm@8`` and ``cc_mean``
(the mean accuracy over 15 corruptions x 5 severities) on the CIFAR-10 robustness dataset, for
two populations: each isomorphism class once (``classes``), and classes weighted by their number
of NB201 strings (``strings``: rho over the strings).

Rule, fixed before the test half is read: among per-network candidates, the one with the highest
mean of the six development figures on the development classes where every candidate is scored.
The test half is then read once, for the registered ``robust_zc`` and ``params`` only.

    python benchmarks/robust_zc_selection.py
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from robnas import holdout
from robnas.benchmarks.robustness import RobustnessDataset
from robnas.correlate import correlate

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
RESULTS = Path(__file__).resolve().parent / "results"
TARGETS = ("clean", "fgsm@8", "cc_mean")
POPULATIONS = ("classes", "strings")
SINGLE_NEGATED = ("ntk_condnum",)


def spearman(x: np.ndarray, y: np.ndarray, w: np.ndarray | None = None) -> float:
    """Spearman rho; with integer weights ``w``, over the sample where item i appears w[i] times."""
    if w is not None:
        x, y = np.repeat(x, w), np.repeat(y, w)
    return float(stats.spearmanr(x, y).statistic)


def figures(score: np.ndarray, frame: pd.DataFrame) -> dict[str, float]:
    """The six figures (population:target) of ``score`` over the rows of ``frame``."""
    out = {}
    for pop in POPULATIONS:
        w = None if pop == "classes" else frame["strings"].to_numpy()
        for t in TARGETS:
            out[f"{pop}:{t}"] = spearman(score, frame[t].to_numpy(), w)
    return out


def bootstrap(score: np.ndarray, frame: pd.DataFrame, n: int = 1000, seed: int = 0) -> dict[str, tuple[float, float]]:
    """Percentile 95% intervals of the six figures over resamples of the classes."""
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {}
    for _ in range(n):
        idx = rng.integers(0, len(frame), len(frame))
        for key, value in figures(score[idx], frame.iloc[idx]).items():
            draws.setdefault(key, []).append(value)
    return {k: (float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))) for k, v in draws.items()}


def load_frame(scores: list[Path], rob: RobustnessDataset, split: holdout.Split) -> pd.DataFrame:
    """One row per architecture: every proxy's value, its class, half, string count and targets."""
    long = pd.concat([pd.read_csv(p) for p in scores])
    wide = long.pivot_table(index="arch", columns="proxy", values="value", aggfunc="first")
    rows = rob.rows(list(wide.index))
    keys = [rob.keys[r] for r in rows]
    counts = holdout.string_counts(rob)
    wide["class"] = keys
    wide["strings"] = [counts[k] for k in keys]
    wide["half"] = ["dev" if k in split.dev else "test" for k in keys]
    for t in TARGETS:
        wide[t] = rob.target_values("cifar10", t)[rows]
    return wide


def log(v: pd.Series) -> pd.Series:
    return np.log(v.astype(float))


def jacobian_excess(v: pd.Series) -> pd.Series:
    """``log(D / B)`` from jacov on a batch of 8: ``D = -jacov - 8`` (see robnas.proxies.robust)."""
    return np.log(np.maximum((-v.astype(float) - 8) / 8, 1e-12))


#: Transforms a formula term may apply, by name.
TRANSFORMS: dict[str, Callable[[pd.Series], pd.Series]] = {
    "": lambda v: v.astype(float),
    "log": log,
    "logD": jacobian_excess,
}


def formula(frame: pd.DataFrame, dev: pd.DataFrame, terms: list[tuple[float, str, str]]) -> np.ndarray:
    """``sum sign * g(proxy) / sd_dev(g(proxy))`` for ``terms`` = [(sign, transform, proxy)]."""
    total = np.zeros(len(frame))
    for sign, transform, proxy in terms:
        g = TRANSFORMS[transform]
        total += sign * g(frame[proxy]).to_numpy() / float(g(dev[proxy]).std())
    return total


def formula_name(terms: list[tuple[float, str, str]]) -> str:
    parts = []
    for sign, transform, proxy in terms:
        text = f"{transform}({proxy})" if transform else proxy
        weight = "" if abs(sign) == 1 else f"{abs(sign):g}*"
        parts.append(("- " if sign < 0 else "+ ") + weight + text)
    return " ".join(parts).removeprefix("+ ") + " (z)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scores", type=Path, default=RESULTS / "nb201_cifar10_scores.csv")
    parser.add_argument("--candidates", type=Path, default=RESULTS / "nb201_cifar10_robust_zc_scores.csv")
    parser.add_argument("--robustness", type=Path, default=SHARED / "robustness")
    parser.add_argument("--split", type=Path, default=RESULTS / "nb201_split.json")
    parser.add_argument("--out", type=Path, default=RESULTS / "robust_zc_selection.md")
    args = parser.parse_args()

    rob = RobustnessDataset(args.robustness)
    split = holdout.load_split(args.split)
    frame = load_frame([args.scores, args.candidates], rob, split)
    signals = sorted(p for p in frame.columns if p.startswith("zc_"))
    registered = [p for p in pd.read_csv(args.scores)["proxy"].unique()]
    dev_all = frame[frame["half"] == "dev"]
    dev = dev_all.dropna(subset=signals)  # the development classes where every candidate is scored

    candidates: dict[str, tuple[str, Callable[[pd.DataFrame], np.ndarray]]] = {}
    for p in registered + signals:
        sign = -1.0 if p in SINGLE_NEGATED else 1.0
        name = f"-{p}" if sign < 0 else p
        candidates[name] = ("single", lambda f, p=p, s=sign: s * f[p].to_numpy(dtype=float))
    for base in ("croze", "params", "synflow", "nwot"):  # size-decorrelated: residual after params
        if base != "params":
            candidates[f"{base} given params (rank residual)"] = (
                "single", lambda f, b=base: _rank_residual(f[b].to_numpy(float), f["params"].to_numpy(float)))
    rank_sums = [
        ("croze", "synflow", "nwot"), ("croze", "jacov"), ("params", "jacov"), ("croze", "params"),
        ("params", "croze", "jacov", "-ntk_condnum"), ("croze", "zc_meco"), ("params", "zc_meco"),
        ("croze", "jacov", "zc_meco"), ("croze", "zc_zico"), ("croze", "jacov", "zc_zico"),
    ]
    for combo in rank_sums:
        candidates["rank sum " + "+".join(combo)] = (
            "rank sum", lambda f, c=combo: sum(_rank(f, p) for p in c))
    weighted = [
        [(1, "log", "croze"), (-1, "logD", "jacov")],
        [(1, "log", "croze"), (-0.5, "logD", "jacov")],
        [(1, "log", "croze"), (-1.5, "logD", "jacov")],
        [(1, "log", "params"), (-1, "logD", "jacov")],
        [(1, "log", "synflow"), (-1, "logD", "jacov")],
        [(1, "log", "croze_fixed"), (-1, "logD", "jacov")],
        [(1, "", "nwot"), (-1, "logD", "jacov")],
        [(1, "log", "croze"), (1, "", "zc_meco")],
        [(1, "log", "params"), (1, "", "zc_meco")],
        [(1, "log", "croze"), (-1, "logD", "jacov"), (1, "", "zc_meco")],
        [(1, "log", "croze"), (-1, "logD", "jacov"), (1, "", "zc_zico")],
        [(1, "log", "croze"), (-1, "logD", "jacov"), (1, "", "zc_act_flip")],
        [(1, "log", "croze"), (-1, "logD", "jacov"), (-1, "", "zc_act_flip")],
        [(1, "log", "croze"), (-1, "logD", "jacov"), (1, "", "zc_input_grad")],
        [(1, "log", "croze"), (-1, "logD", "jacov"), (-1, "", "zc_input_grad")],
    ]
    for terms in weighted:
        if all(p in frame.columns for _, _, p in terms):
            candidates[formula_name(terms)] = ("formula", lambda f, t=terms: formula(f, dev_all, t))

    rows = []
    for name, (kind, score) in candidates.items():
        row = {"candidate": name, "kind": kind}
        row.update({f"dev{len(dev)}:{k}": v for k, v in figures(score(dev), dev).items()})
        if not np.isnan(score(dev_all)).any():
            row.update({f"dev{len(dev_all)}:{k}": v for k, v in figures(score(dev_all), dev_all).items()})
        rows.append(row)
    table = pd.DataFrame(rows)
    common = [c for c in table.columns if c.startswith(f"dev{len(dev)}:")]
    table["mean"] = table[common].mean(axis=1)
    table = table.sort_values("mean", ascending=False, kind="stable")
    chosen = table[table["kind"] != "rank sum"].iloc[0]

    # the registered proxy against the chosen candidate, on the development half
    if "robust_zc" not in frame.columns or frame["robust_zc"].isna().any():
        raise SystemExit("robust_zc is not scored on every architecture: run robust_zc_candidates.py first")
    same = figures(frame.loc[dev.index, "robust_zc"].to_numpy(float), dev)
    check = max(abs(same[k] - chosen[f"dev{len(dev)}:{k}"]) for k in same)
    registered_dev = {p: figures(dev_all[p].to_numpy(float), dev_all) for p in ("robust_zc", "params")}

    # the test half, read once: robust_zc and params
    test = frame[frame["half"] == "test"]
    result = {}
    for proxy in ("robust_zc", "params"):
        score = test[proxy].to_numpy(float)
        result[proxy] = (figures(score, test), bootstrap(score, test))
    partial = {
        f"{pop}:{t}": holdout.partial_spearman(
            test["robust_zc"], test[t], np.log(test["params"].astype(float)),
            None if pop == "classes" else test["strings"].to_numpy(float))
        for pop in POPULATIONS for t in TARGETS
    }
    long = test[["robust_zc", "params"]].reset_index().melt(id_vars="arch", var_name="proxy", value_name="value")
    mean15 = correlate(long, rob, "cifar10", targets=["croze_mean15"], unique=True, bootstrap=0)
    partial["croze_mean15"] = {r.proxy: r.spearman for r in mean15.itertuples()}
    write_report(args, table, chosen, check, len(dev), len(dev_all), test, result, partial, registered_dev)


def write_report(args, table, chosen, check, n_dev, n_dev_all, test, result, partial, registered_dev) -> None:
    """``robust_zc_selection.md``."""
    keys = [f"{p}:{t}" for p in POPULATIONS for t in TARGETS]

    def cells(row: pd.Series, prefix: str) -> str:
        return " | ".join("" if pd.isna(row.get(f"{prefix}:{k}")) else f"{row[f'{prefix}:{k}']:.3f}" for k in keys)

    head = " | ".join(keys)
    lines = [
        "# robust_zc: the zero-cost robustness proxy, chosen on the development half",
        "",
        "Commands: `nice -n 5 env OMP_NUM_THREADS=1 python benchmarks/robust_zc_candidates.py --archs 1000 "
        "--half dev --first 300 --proxies zc_input_grad,zc_act_flip,zc_meco,zc_zico`, "
        "`... robust_zc_candidates.py --archs 1000 --proxies robust_zc`, "
        "then `python benchmarks/robust_zc_selection.py`.",
        "",
        "Population: the 1,000 NB201 isomorphism classes of `nb201_cifar10_correlations.md` (batch of 8 real "
        "CIFAR-10 images, networks from `stable_seed(0, arch)`), split by `nb201_split.json` into "
        f"{n_dev_all} development and {len(test)} test classes. The candidate signals "
        "(`robust_zc_candidates.py`) were scored on the first "
        f"{n_dev} development classes only (CPU budget); every candidate is compared on those {n_dev} "
        f"(`dev{n_dev}`), and where it exists on all {n_dev_all} development classes (`dev{n_dev_all}`). "
        "Spearman rho against CIFAR-10 `clean`, `fgsm@8` and `cc_mean` (mean accuracy over 15 corruptions "
        "x 5 severities) of the robustness dataset; `classes`: each class once; `strings`: classes "
        "weighted by their number of NB201 strings. `(z)` formulas sum per-network terms divided by "
        "their development-half standard deviation (label-free constants); `logD(jacov)` is "
        "`log((-jacov - 8) / 8)`; rank sums need the whole population and are listed for reference only.",
        "",
        f"Rule (fixed before the test half was read): the per-network candidate with the highest mean of "
        f"the six `dev{n_dev}` figures. Chosen: **{chosen['candidate']}**, registered as `robust_zc` "
        f"(`src/robnas/proxies/robust.py`); its registered values reproduce the candidate's development "
        f"figures to {check:.1e}.",
        "",
        f"## Development half: every candidate (sorted by the mean of the six dev{n_dev} figures)",
        "",
        f"| candidate | kind | {' | '.join(f'dev{n_dev} ' + k for k in keys)} | mean | "
        f"{' | '.join(f'dev{n_dev_all} ' + k for k in keys)} |",
        "|:--|:--|" + "--:|" * (2 * len(keys) + 1),
    ]
    for _, row in table.iterrows():
        lines.append(f"| {row['candidate']} | {row['kind']} | {cells(row, f'dev{n_dev}')} | {row['mean']:.3f} | "
                     f"{cells(row, f'dev{n_dev_all}')} |")
    lines += [
        "",
        f"The registered `robust_zc` on all {n_dev_all} development classes, against params:",
        "",
        f"| proxy | {head} |",
        "|:--|" + "--:|" * len(keys),
        *[f"| {p} | " + " | ".join(f"{registered_dev[p][k]:.3f}" for k in keys) + " |" for p in registered_dev],
    ]
    goal = {k: result["robust_zc"][0][k] - result["params"][0][k] for k in keys}
    lines += [
        "",
        f"## Test half ({len(test)} classes), read once: robust_zc against params",
        "",
        "Spearman rho with percentile-bootstrap 95% intervals (1,000 resamples of the test classes); "
        "goal: robust_zc >= params + 0.05 on clean, fgsm@8 and cc_mean.",
        "",
        f"| proxy | {head} |",
        "|:--|" + "--:|" * len(keys),
    ]
    for proxy in ("robust_zc", "params"):
        fig, ci = result[proxy]
        lines.append(f"| {proxy} | " + " | ".join(f"{fig[k]:.3f} ({ci[k][0]:.3f} to {ci[k][1]:.3f})" for k in keys)
                     + " |")
    lines.append("| robust_zc - params | " + " | ".join(f"{goal[k]:+.3f}" for k in keys) + " |")
    lines.append("| partial rho of robust_zc given log(params) | " + " | ".join(f"{partial[k]:.3f}" for k in keys)
                 + " |")
    m15 = partial["croze_mean15"]
    lines += [
        "",
        "`cc_mean` above is the target (mean corruption accuracy). The column printed as `cc_mean` in "
        "`nb201_cifar10_correlations.md` is CRoZe's averaged statistic `croze_mean15` (rho against each "
        f"corruption's severity mean, averaged over the 15): on the test classes robust_zc "
        f"{m15['robust_zc']:.3f}, params {m15['params']:.3f} ({m15['robust_zc'] - m15['params']:+.3f}).",
    ]
    reached = [k for k in keys if goal[k] >= 0.05]
    lines += [
        "",
        f"Goal (+0.05 over params) reached on {len(reached)} of 6: {', '.join(reached) or 'none'}.",
        "",
    ]
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))


def _rank(frame: pd.DataFrame, proxy: str) -> np.ndarray:
    sign = -1.0 if proxy.startswith("-") else 1.0
    return stats.rankdata(sign * frame[proxy.lstrip("-")].to_numpy(dtype=float)) / len(frame)


def _rank_residual(x: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Ranks of ``x`` minus their least-squares fit on the ranks of ``z`` (over the rows given)."""
    rx, rz = stats.rankdata(x), stats.rankdata(z)
    slope, intercept = np.polyfit(rz, rx, 1)
    return rx - (slope * rz + intercept)


if __name__ == "__main__":
    main()
