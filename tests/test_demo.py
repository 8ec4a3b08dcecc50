import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from robnas import correlate as corr
from robnas import demo
from robnas.benchmarks.nas_robbench import NASRobBench201
from robnas.benchmarks.robustness import RobustnessDataset
from robnas.cli import app
from robnas.errors import ConfigError

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def test_packaged_excerpt_is_consistent():
    rob = RobustnessDataset(demo.ASSETS / "robustness")
    archs = demo.pick_architectures(rob, None)
    assert len(archs) == 200 and len({rob.isomorph(a) for a in archs}) == 200
    assert len(demo.pick_architectures(rob, 10, seed=1)) == 10
    # the NAS-RobBench-201 excerpt covers the same 200 cells, in the same order
    adv = NASRobBench201(demo.ASSETS / "nas_robbench201")
    assert adv.arch_strings == rob.arch_strings and len(adv.keys) == 200


@pytest.mark.skipif(
    not (SHARED / "nas_robbench201" / "ops.json").is_file(), reason=f"NAS-RobBench-201 absent ({SHARED})"
)
def test_packaged_adversarial_excerpt_equals_the_official_files():
    full = NASRobBench201(SHARED / "nas_robbench201")
    excerpt = NASRobBench201(demo.ASSETS / "nas_robbench201")
    meta = json.loads((demo.ASSETS / "robustness" / "meta.json").read_text())
    indices = [meta["ids"][str(n)]["nb201-index"] for n in range(200)]
    assert [full.arch_strings[i] for i in indices] == excerpt.arch_strings
    for dataset in full.datasets():
        for target in full.target_names(dataset):
            assert (full.target(indices, dataset, target) == excerpt.target_values(dataset, target)).all()


def test_demo_cli_small(tmp_path):
    out = tmp_path / "demo"
    args = [
        "demo",
        "--out",
        str(out),
        "--archs",
        "16",
        "--proxies",
        "params,synflow,grad_norm",
        "--workers",
        "1",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(open(out / "correlations.csv")))
    assert {r["proxy"] for r in rows} >= {"params", "synflow", "grad_norm"}
    assert {"clean", "fgsm@8", "cc_mean"} <= {r["target"] for r in rows}
    assert all(r["n"] == "16" for r in rows)
    assert list(out.glob("*.png"))
    assert "| params |" in result.output
    # the last line answers the question: the best proxy, its margins, the population, the files
    last = result.output.strip().splitlines()[-1]
    rho = {r["proxy"]: float(r["spearman"]) for r in rows if r["target"] == "fgsm@8"}
    best, second = sorted(rho, key=rho.get, reverse=True)[:2]
    assert last.startswith("Answer: on 16 NAS-Bench-201 architectures (one per isomorphism class")
    assert f"cifar10 fgsm@8 accuracy, {best} ranks robustness best: Spearman rho {rho[best]:.3f}" in last
    assert f"{rho[best] - rho[second]:+.3f} over the runner-up {second} ({rho[second]:.3f})" in last
    if best != "params":
        assert f"{rho[best] - rho['params']:+.3f} over params ({rho['params']:.3f})" in last
    for name in ("correlations.csv", "correlations_adversarial.csv", "correlations.md", "heatmap.png", "scores.csv", "demo.json"):
        assert str(out / name) in last
    assert json.loads((out / "demo.json").read_text())["answer"] == last
    # and after adversarial training: the best proxy for NAS-RobBench-201's pgd@8
    adv = list(csv.DictReader(open(out / "correlations_adversarial.csv")))
    assert {r["target"] for r in adv} == {"clean", "fgsm@8", "pgd@8", "aa@8"} and all(r["n"] == "16" for r in adv)
    adv_rho = {r["proxy"]: float(r["spearman"]) for r in adv if r["target"] == "pgd@8"}
    adv_best = max(adv_rho, key=adv_rho.get)
    assert (
        f"; after adversarial training (NAS-RobBench-201, cifar10 pgd@8 accuracy), {adv_best} ranks robustness "
        f"best: Spearman rho {adv_rho[adv_best]:.3f}" in last
    )
    assert "After adversarial training (NAS-RobBench-201, CIFAR-10)" in result.output


def test_answer_names_margins_and_edge_cases():
    import pandas as pd

    table = pd.DataFrame(
        [
            ("croze", "fgsm@8", "rows", 50, 0.6, 0.5, 0.7, 0.4, 0.3, 0.1),
            ("synflow", "fgsm@8", "rows", 50, 0.5, 0.4, 0.6, 0.3, 0.2, 0.1),
            ("params", "fgsm@8", "rows", 50, 0.45, 0.3, 0.6, 0.3, 0.2, 0.1),
            ("jacov", "fgsm@8", "rows", 50, *[float("nan")] * 6),
            ("croze", "clean", "rows", 50, 0.1, 0.0, 0.2, 0.1, 0.1, 0.0),
        ],
        columns=list(corr.COLUMNS),
    )
    line = demo.answer(table, "fgsm@8", [Path("o/c.csv")], unique=False)
    assert line == (
        "Answer: on 50 NAS-Bench-201 architectures (every cell, isomorphs weighted by their count), "
        "cifar10 fgsm@8 accuracy, croze ranks robustness best: Spearman rho 0.600 (95% CI 0.500 to 0.700), "
        "+0.100 over the runner-up synflow (0.500), +0.150 over params (0.450); wrote o/c.csv."
    )
    assert "no proxy beats params" in demo.answer(table[table["proxy"] == "params"], "fgsm@8")
    assert "params not scored" in demo.answer(table[table["proxy"] != "params"], "fgsm@8")
    with pytest.raises(ConfigError, match="pgd@8"):
        demo.answer(table, "pgd@8")
    adversarial = table.assign(target=table["target"].replace({"fgsm@8": "pgd@8"}))
    adversarial.loc[adversarial["proxy"] == "params", "spearman"] = 0.8
    line = demo.answer(table, "fgsm@8", [Path("o/c.csv")], adversarial=adversarial)
    assert line.endswith(
        "+0.150 over params (0.450); after adversarial training (NAS-RobBench-201, cifar10 pgd@8 accuracy), "
        "params ranks robustness best: Spearman rho 0.800 (95% CI 0.300 to 0.600), +0.200 over the runner-up "
        "croze (0.600), no proxy beats params; wrote o/c.csv."
    )
