"""``robnas pipeline`` (robnas.pipeline): search -> train -> evaluate -> report, each stage skipped once done."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import robnas
from robnas.errors import ConfigError
from robnas.pipeline import check_config, load_config, run_pipeline
from robustness_fixture import demo_search_section

CONFIG = """
out = "run"
{search}[train]
recipe = "standard"
epochs = 1
data = "synthetic:24"
batch_size = 12
device = "cpu"
[evaluate]
data = "synthetic:24"
attacks = ["fgsm@8"]
corruptions = ["gaussian_noise@3"]
limit = 8
batch_size = 8
device = "cpu"
"""


def test_search_package_imports_no_stage_above_it():
    """The pipeline orchestrates search, training, evaluation and reporting; search needs none of them."""
    code = (
        "import importlib.util, sys, robnas.search\n"
        "assert importlib.util.find_spec('robnas.search.pipeline') is None\n"
        "above = ('robnas.train', 'robnas.evaluate', 'robnas.report', 'robnas.pipeline', 'robnas.cli')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[:2] in [a.split('.') for a in above]))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_pipeline_runs_every_stage_then_skips_them(tmp_path):
    config = tmp_path / "p.toml"
    config.write_text(CONFIG.format(search=demo_search_section(4)))
    lines: list[str] = []
    report = run_pipeline(config, log=lines.append)
    out = tmp_path / "run"
    assert lines[0] == "search: running" and lines[-1].startswith("evaluate: done in")
    assert sum(line.startswith("search ") and "/4: " in line for line in lines) == 4
    assert "evaluate fgsm@8: done" in lines
    for name in (
        "search.json",
        "train.json",
        "evaluate.json",
        "report.md",
        "search_history.png",
        "accuracy_vs_eps.png",
        "corruptions.png",
        "evaluate/evaluation.json",
    ):
        assert (out / name).is_file(), name
    searched = json.loads((out / "search.json").read_text())
    assert searched["evaluated"] == 4 and searched["winner"] in report.read_text()
    labels = [r["label"] for r in json.loads((out / "evaluate.json").read_text())["table"]]
    assert labels == ["clean", "fgsm@8", "gaussian_noise@3"]
    from robnas import models  # the trained winner loads by its run folder alone, as robnas evaluate does

    trained, info = models.load_model(out / "train")
    assert info["arch"] == f"{searched['space']}:{searched['winner']}"
    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("*.json")}
    lines.clear()
    run_pipeline(config, log=lines.append)  # every stage's output exists: nothing is recomputed
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.json")} == stamps
    assert lines == [f"{stage}: already done, kept" for stage in ("search", "train", "evaluate")]
    report_text = report.read_text()
    assert "![accuracy_vs_eps](accuracy_vs_eps.png)" in report_text and "![corruptions](corruptions.png)" in report_text
    table = json.loads((out / "evaluate.json").read_text())["table"]
    (out / "evaluate.json").unlink()  # as if killed after the last row: the rows are kept, not recomputed
    lines.clear()
    run_pipeline(config, log=lines.append)
    assert f"{out / 'evaluate' / 'evaluation.json'}: kept 3 finished rows, computing 0" in lines
    assert json.loads((out / "evaluate.json").read_text())["table"] == table
    config.write_text(CONFIG.format(search=demo_search_section(5)))
    with pytest.raises(ConfigError, match="different config"):
        run_pipeline(config)  # a changed config never reuses the stale stages


def test_pipeline_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[search]\nbudget = 3\n[train]\n[evaluate]\n[extra]\n")
    with pytest.raises(ConfigError, match="unknown keys"):
        load_config(bad)
    bad.write_text("[search]\nbudgte = 3\n[train]\n[evaluate]\n")
    with pytest.raises(ConfigError, match="budgte"):
        load_config(bad)
    bad.write_text("[search]\n[train]\n")
    with pytest.raises(ConfigError, match=r"\[evaluate\]"):
        load_config(bad)
    bad.write_text('[search]\n[train]\n[evaluate]\ncorruption_preset = "imagenet"\n')
    assert load_config(bad)["evaluate"]["corruption_preset"] == "imagenet"  # for sizes without a default


def test_a_search_that_depends_on_images_needs_data_as_robnas_search_does(tmp_path):
    """No silent random images: a [search] whose objective reads images names ``data`` or fails
    before any work; ``data = "synthetic"`` is a choice, and size proxies need nothing."""
    config = tmp_path / "p.toml"
    no_data = SMALL.replace('data = "synthetic:16"\nbatch_size = 4\n', "")
    config.write_text(no_data.replace('objective = "synflow"', 'objective = "nwot"'))
    with pytest.raises(ConfigError, match=r"\[search\] nwot depends on the images: set data"):
        run_pipeline(config)
    assert not (tmp_path / "small").exists()
    config.write_text(no_data)  # synflow reads no image
    check_config(load_config(config))


SMALL = """
out = "small"
[search]
space = "nb201"
strategy = "random"
objective = "synflow"
budget = 2
data = "synthetic:16"
batch_size = 4
model = { C = 4, N = 1 }
[train]
recipe = "standard"
epochs = 1
data = "synthetic:40"
subset = 20
batch_size = 10
device = "cpu"
model = { C = 4, N = 1 }
[evaluate]
data = "synthetic:16"
attacks = ["fgsm@8"]
limit = 8
device = "cpu"
"""


def test_pipeline_build_options_and_training_subset(tmp_path):

    config = tmp_path / "p.toml"
    config.write_text(SMALL)
    report = run_pipeline(config).read_text()
    out = tmp_path / "small"
    searched = json.loads((out / "search.json").read_text())
    assert "model=C=4,N=1" in searched["objectives"][0]  # the search history knows the network size
    trained = json.loads((out / "train.json").read_text())
    net = robnas.spaces.get("nb201").build(searched["winner"], C=4, N=1)
    assert trained["model"] == {"C": 4, "N": 1} and trained["images"] == 20
    assert trained["parameters"] == sum(p.numel() for p in net.parameters())
    assert "build options" in report and "20 training images" in report

    config.write_text(SMALL.replace('out = "small"', 'out = "bad"').replace("N = 1 }\n[evaluate]", "depth = 2 }\n[evaluate]"))
    with pytest.raises(ConfigError, match=r"\[train\] model"):
        run_pipeline(config)
    config.write_text(SMALL.replace('out = "small"', 'out = "bad2"').replace("N = 1 }\n[train]", "depth = 2 }\n[train]"))
    with pytest.raises(ConfigError, match="network build options .*depth"):
        run_pipeline(config)


def test_pipeline_search_on_workers_gives_the_serial_history(tmp_path):
    from robnas.pipeline import stage_search

    histories = []
    for name, extra in (("serial", ""), ("pool", "workers = 2\nbackend = \"process\"\n")):
        config = tmp_path / f"{name}.toml"
        config.write_text(SMALL.replace("budget = 2\n", "budget = 4\n" + extra))
        histories.append(stage_search(load_config(config), tmp_path / name)["history"])
    assert histories[0] == histories[1] and len(histories[0]) == 4
    config = tmp_path / "bad.toml"
    config.write_text(SMALL.replace("budget = 2\n", "budget = 2\nworkers = 0\n"))
    with pytest.raises(ConfigError, match="workers must be an integer >= 1"):
        stage_search(load_config(config), tmp_path / "bad")


def test_pipeline_benchmark_name_and_relative_path(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('[search]\nbenchmark = "nas-robbench-201:data/nrb"\n[train]\n[evaluate]\n')
    assert load_config(config)["search"]["benchmark"] == f"nas-robbench-201:{tmp_path / 'data' / 'nrb'}"
    config.write_text('[search]\nbenchmark = "data/rob"\n[train]\n[evaluate]\n')
    assert load_config(config)["search"]["benchmark"] == str(tmp_path / "data" / "rob")
