"""The main job: which zero-cost proxy predicts robustness on NAS-Bench-201?

``robnas demo`` scores a sample of NAS-Bench-201 architectures with ``robust_zc``, CRoZe and
the main baseline proxies on real CIFAR-10 images, correlates the scores with the robustness
dataset of Jung et al. (ICLR 2023; networks trained without adversarial training) and with
NAS-RobBench-201 (Wu et al., ICLR 2024; the same cells after PGD adversarial training), prints the
tables and writes figures. Offline, it uses the small excerpts that ship with the package (80
CIFAR-10 training images; the robustness and NAS-RobBench-201 values of 200 architectures); with
``data``, ``benchmark`` and ``adversarial`` paths it runs the same at full scale.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path

import numpy as np
import pandas as pd

from robnas import correlate as corr
from robnas import data as data_lib
from robnas import report, scoring
from robnas.benchmarks.nas_robbench import NASRobBench201
from robnas.benchmarks.robustness import RobustnessDataset
from robnas.errors import ConfigError
from robnas.store import RunStore

ASSETS = Path(str(files("robnas") / "assets" / "demo"))
DEFAULT_PROXIES: tuple[str, ...] = (
    "robust_zc",
    "croze",
    "croze_fixed",
    "synflow",
    "snip",
    "grad_norm",
    "jacov",
    "nwot",
    "params",
)
DEFAULT_TARGETS: tuple[str, ...] = (
    "clean",
    "fgsm@8",
    "fgsm@4",
    "pgd@8",
    "pgd@1",
    "apgd@8",
    "square@8",
    "hrs_fgsm@8",
    "cc_weather",
    "cc_noise",
    "cc_blur",
    "cc_digital",
    "cc_mean",
)
#: Targets after adversarial training (NAS-RobBench-201).
ADVERSARIAL_TARGETS: tuple[str, ...] = ("clean", "fgsm@8", "pgd@8", "aa@8")


@dataclass
class DemoResult:
    """What the demo produced: the correlation table, the files written and the one-line answer."""

    correlations: pd.DataFrame
    markdown: str
    files: list[Path] = field(default_factory=list)
    answer: str = ""


def answer(
    result: pd.DataFrame,
    target: str,
    files: Sequence[Path] = (),
    dataset: str = "cifar10",
    unique: bool = True,
    baseline: str = "params",
    adversarial: pd.DataFrame | None = None,
    adversarial_target: str = "pgd@8",
) -> str:
    """One line: the proxy whose Spearman rho with ``target`` is highest, its margin over the
    runner-up and over ``baseline`` (the parameter count), the population, and ``files``; with
    ``adversarial`` (correlations against NAS-RobBench-201), the same for ``adversarial_target``
    after adversarial training."""
    population = (
        f"{int(_ranked(result, target).iloc[0]['n'])} NAS-Bench-201 architectures "
        + ("(one per isomorphism class, each counted once)" if unique else "(every cell, isomorphs weighted by their count)")
        + f", {dataset} {target} accuracy"
    )
    text = f"on {population}, " + _ranking(result, target, baseline)
    if adversarial is not None:
        text += (
            f"; after adversarial training (NAS-RobBench-201, {dataset} {adversarial_target} accuracy), "
            + _ranking(adversarial, adversarial_target, baseline)
        )
    if files:
        text += "; wrote " + ", ".join(str(f) for f in files)
    return "Answer: " + text + "."


def _ranked(result: pd.DataFrame, target: str) -> pd.DataFrame:
    rows = result[(result["target"] == target) & result["spearman"].notna()]
    if rows.empty:
        raise ConfigError(f"no finite Spearman rho for target {target!r} in the correlations")
    return rows.sort_values("spearman", ascending=False, kind="stable")


def _ranking(result: pd.DataFrame, target: str, baseline: str) -> str:
    """``X ranks robustness best: Spearman rho R (95% CI ...), +d over the runner-up ..., +d over params``."""
    ranked = _ranked(result, target)
    best = ranked.iloc[0]
    rho = float(best["spearman"])
    text = f"{best['proxy']} ranks robustness best: Spearman rho {rho:.3f}"
    if not (math.isnan(best["spearman_lo"]) or math.isnan(best["spearman_hi"])):
        text += f" (95% CI {best['spearman_lo']:.3f} to {best['spearman_hi']:.3f})"
    comparisons = []
    if len(ranked) > 1:
        second = ranked.iloc[1]
        comparisons.append(f"{rho - float(second['spearman']):+.3f} over the runner-up {second['proxy']} ({second['spearman']:.3f})")
    base = ranked[ranked["proxy"] == baseline]
    if best["proxy"] == baseline:
        comparisons.append(f"no proxy beats {baseline}")
    elif not base.empty:
        comparisons.append(f"{rho - float(base['spearman'].iloc[0]):+.3f} over {baseline} ({base['spearman'].iloc[0]:.3f})")
    else:
        comparisons.append(f"{baseline} not scored")
    return text + ", " + ", ".join(comparisons)


def pick_architectures(benchmark: RobustnessDataset, count: int | None, seed: int = 0) -> list[str]:
    """One NB201 string per isomorphism class of the benchmark; ``count`` of them drawn with ``seed``."""
    if count is not None and count < 1:
        raise ConfigError(f"the number of architectures must be >= 1, got {count}")
    first: dict[str, str] = {}
    for arch in benchmark.arch_strings:
        first.setdefault(benchmark.isomorph(arch), arch)
    archs = list(first.values())
    if count is not None and count < len(archs):
        rng = np.random.default_rng(seed)
        archs = [archs[i] for i in sorted(rng.choice(len(archs), count, replace=False))]
    return archs


def run(
    out: str | Path,
    data: str | Path | None = None,
    benchmark: str | Path | None = None,
    adversarial: str | Path | None = None,
    num_archs: int | None = None,
    proxies: Sequence[str] = DEFAULT_PROXIES,
    targets: Sequence[str] = DEFAULT_TARGETS,
    ensembles: Sequence[str] | None = None,
    batch_size: int = 8,
    seed: int = 0,
    workers: int = 2,
    device: str = "cpu",
    scatter_target: str = "fgsm@8",
    progress: Callable[[int, int], None] | None = None,
) -> DemoResult:
    """Score, correlate, and write ``scores.csv``, ``correlations.csv``,
    ``correlations_adversarial.csv``, ``correlations.md``, figures and ``demo.json``.

    Scores are kept in ``out/scores.sqlite``: a second run reuses them. The result's ``answer``
    names the proxy that ranks ``scatter_target`` best (:func:`answer`), the target of the
    scatter figure too, and the proxy that ranks pgd@8 best after adversarial training.
    ``adversarial`` is the NAS-RobBench-201 folder (default: the packaged excerpt, which covers the
    packaged robustness excerpt; with another ``benchmark`` and no ``adversarial`` there is no
    adversarial-training answer).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if ensembles is None:  # the default ensemble, when its members are scored
        ensembles = [e for e in ("croze+synflow+nwot",) if set(e.split("+")) <= set(proxies)]
    images = data_lib.load_npz(data or ASSETS / "cifar10_images.npz", name="cifar10")
    rob = RobustnessDataset(benchmark or ASSETS / "robustness")
    packaged_adversarial = adversarial is None and benchmark is None
    if packaged_adversarial:
        adversarial = ASSETS / "nas_robbench201"
    adv = NASRobBench201(adversarial) if adversarial is not None else None
    archs = pick_architectures(rob, num_archs, seed)
    with RunStore(out / "scores.sqlite") as store:
        scoring.score(
            "nb201",
            archs,
            list(proxies),
            images,
            store,
            batch_size=batch_size,
            seed=seed,
            device=device,
            workers=workers,
            progress=(lambda n: progress(n, len(archs))) if progress else None,
        )
        rows = store.rows()
        store.export_csv(out / "scores.csv", rows)
    wanted = set(archs)
    scores = pd.DataFrame(  # sorted: the bootstrap intervals do not depend on the workers' finishing order
        sorted((r.arch, r.proxy, r.value) for r in rows if r.arch in wanted and r.proxy in proxies),
        columns=["arch", "proxy", "value"],
    )
    result = corr.correlate(scores, rob, "cifar10", targets=list(targets), unique=True, ensembles=ensembles)
    written = [corr.write_csv(result, out / "correlations.csv")]
    table = corr.markdown_table(result, list(targets))
    text = (
        f"Spearman rho of proxy scores against CIFAR-10 robustness, {len(archs)} NAS-Bench-201 "
        f"architectures (one per isomorphism class), proxy batch {batch_size} real CIFAR-10 images, "
        f"seed {seed}.\n\n{table}\n"
    )
    adv_result = None
    if adv is not None:
        adv_result = corr.correlate(
            scores, adv, "cifar10", targets=list(ADVERSARIAL_TARGETS), population="classes", ensembles=ensembles
        )
        written.append(corr.write_csv(adv_result, out / "correlations_adversarial.csv"))
        adv_table = corr.markdown_table(adv_result, list(ADVERSARIAL_TARGETS))
        table += f"\n\nAfter adversarial training (NAS-RobBench-201, CIFAR-10):\n\n{adv_table}"
        text += (
            "\nThe same scores against the same cells after PGD-7 adversarial training (NAS-RobBench-201, "
            f"Wu et al., ICLR 2024), CIFAR-10; aa = AutoAttack.\n\n{adv_table}\n"
        )
    (out / "correlations.md").write_text(text)
    written.append(out / "correlations.md")
    written.append(report.heatmap(result, out / "heatmap.png"))
    written.append(
        report.scatter(
            scores, rob, out / report.scatter_name(scatter_target), target=scatter_target, ensembles=ensembles
        )
    )
    written.append(out / "scores.csv")
    written.append(out / "demo.json")
    line = answer(result, scatter_target, written, "cifar10", unique=True, adversarial=adv_result)
    (out / "demo.json").write_text(
        json.dumps(
            {
                "answer": line,
                "archs": len(archs),
                "proxies": list(proxies),
                "batch_size": batch_size,
                "seed": seed,
                "data": str(data or "packaged excerpt"),
                "benchmark": str(benchmark or "packaged excerpt"),
                "adversarial": "packaged excerpt" if packaged_adversarial else (str(adversarial) if adv else None),
            },
            indent=2,
        )
    )
    return DemoResult(result, table, written, line)
