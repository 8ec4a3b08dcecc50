import csv

from typer.testing import CliRunner

from robnas import demo
from robnas.benchmarks.robustness import RobustnessDataset
from robnas.cli import app


def test_packaged_excerpt_is_consistent():
    rob = RobustnessDataset(demo.ASSETS / "robustness")
    archs = demo.pick_architectures(rob, None)
    assert len(archs) == 200 and len({rob.isomorph(a) for a in archs}) == 200
    assert len(demo.pick_architectures(rob, 10, seed=1)) == 10


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
