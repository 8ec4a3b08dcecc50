"""A pipeline on an image folder with baselines trained beside the winner and compared in the report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from robnas.errors import UnknownName
from robnas.pipeline import load_config, run_pipeline
from robustness_fixture import demo_search_section

CONFIG = """
out = "run"
{search}[train]
recipe = "standard"
epochs = 1
data = "imagefolder@16:pets"
batch_size = 6
device = "cpu"
model = {{ C = 4, N = 1 }}
baselines = {baselines}
[evaluate]
data = "imagefolder@16:pets"
attacks = ["fgsm@2", "fgsm@8"]
corruptions = ["gaussian_noise@3"]
limit = 6
batch_size = 6
device = "cpu"
corruption_preset = "cifar"
"""


def _folder(root: Path) -> None:
    rng = np.random.default_rng(0)
    for split, n in (("train", 4), ("val", 2)):
        for c in ("a", "b", "c"):
            (root / split / c).mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(root / split / c / f"{i}.png")


def test_baselines_beside_the_winner(tmp_path: Path) -> None:
    _folder(tmp_path / "pets")
    config = tmp_path / "p.toml"
    config.write_text(CONFIG.format(search=demo_search_section(3), baselines='["resnet18"]'))
    assert load_config(config)["train"]["data"] == f"imagefolder@16:{tmp_path / 'pets'}"
    lines: list[str] = []
    report = run_pipeline(config, log=lines.append).read_text()
    out = tmp_path / "run"
    assert "baseline resnet18: training" in lines and "baseline resnet18: evaluating" in lines
    for name in ("baselines/resnet18/train.json", "baselines/resnet18/evaluate.json", "baselines_vs_eps.png"):
        assert (out / name).is_file(), name
    assert "## Winner and baselines" in report
    head = "| model | params (M) | training (s) | clean (%) | fgsm@2 (%) | fgsm@8 (%) | corruptions, mean (%) |"
    assert head in report
    row = next(line for line in report.splitlines() if line.startswith("| resnet18 |"))
    assert "| 11.172 |" not in row and row.split(" | ")[1] == "11.170"  # 3 classes: 11,170,371 weights
    table = json.loads((out / "baselines/resnet18/evaluate.json").read_text())["table"]
    assert [r["label"] for r in table] == ["clean", "fgsm@2", "fgsm@8", "gaussian_noise@3"]
    assert "| gaussian_noise@3 |" in report
    trained = json.loads((out / "baselines/resnet18/train.json").read_text())
    assert trained["seconds"] > 0 and trained["num_classes"] == 3

    # adding a baseline to the finished pipeline trains only that one, and keeps the rest
    config.write_text(CONFIG.format(search=demo_search_section(3), baselines='["resnet18", "preact_resnet18"]'))
    lines.clear()
    report = run_pipeline(config, log=lines.append).read_text()
    assert "baseline resnet18: training" not in lines and "baseline preact_resnet18: training" in lines
    assert "| preact_resnet18 |" in report and "| resnet18 |" in report

    config.write_text(CONFIG.format(search=demo_search_section(3), baselines='["resnet_18"]'))
    with pytest.raises(UnknownName, match="resnet18"):
        load_config(config)
