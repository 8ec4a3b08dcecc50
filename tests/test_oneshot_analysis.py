"""RobNets' analyses of a finished search: features, statistics, figures and the CLI."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from typer.testing import CliRunner

from robnas import data
from robnas.cli import app
from robnas.errors import ConfigError, DataError
from robnas.objectives import ObjectiveContext
from robnas.oneshot import train_supernet
from robnas.oneshot.robnets import analysis
from robnas.search import run_search
from robnas.search.robnets import measure_run

OPTIONS = {"candidates": 4, "finetune_epochs": 1, "finetune_images": 8, "eval_images": 4, "fsp_steps": 1}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A tiny robnet supernet and a finished robnets search of 4 candidates on it."""
    tmp = tmp_path_factory.mktemp("analysis")
    images = data.synthetic(40, size=16)
    x = images.x  # uint8 (40, 16, 16, 3)
    npz = str(tmp / "tiny.npz")
    np.savez(npz, x_train=x, y_train=images.y, x_test=x[:8], y_test=images.y[:8])
    train_supernet(
        "robnet", data.load(npz, "train"), "pgd-at", tmp / "supernet", epochs=1, batch_size=16, C=4, layers=3,
        overrides={"steps": 1},
    )  # fmt: skip
    checkpoint = str(tmp / "supernet" / "last.pt")
    context = ObjectiveContext(data=npz, supernet=checkpoint)
    result = run_search("robnet", "robnets", "oneshot-finetune:pgd@8", 4, out=tmp / "r.db", options=OPTIONS,
                        context=context)  # fmt: skip
    assert result.status == "done" and len(result.history) == 4
    return tmp, checkpoint, npz, result


def test_features_of_a_hand_written_code():
    cell = ("11", "01", "10", "00", "01", "00", "00", "00", "01", "00", "00", "00", "00", "11")
    got = analysis.architecture_features((cell,))
    assert got["density"] == 8 / 28
    assert got["convolutions"] == 5  # positions 0, 1, 4, 8, 13
    assert got["direct_convolutions"] == 4  # chain positions 1, 4, 8, 13
    assert analysis.architecture_features((cell,), direct="inputs")["direct_convolutions"] == 2  # 0, 1
    free = analysis.architecture_features((cell, ("00",) * 14))
    assert free["density"] == 8 / 56 and free["convolutions"] == 2.5
    with pytest.raises(ConfigError, match="direct edges must be one of"):
        analysis.architecture_features((cell,), direct="diagonal")


def test_rank_statistics_match_scipy_and_cover_rho():
    rng = np.random.default_rng(0)
    x = rng.normal(size=60)
    y = x + rng.normal(size=60)
    r = analysis.rank_statistics(x, y, bootstrap=300)
    assert r["spearman"] == pytest.approx(stats.spearmanr(x, y).statistic)
    assert r["kendall"] == pytest.approx(stats.kendalltau(x, y).statistic)
    assert r["spearman_lo"] < r["spearman"] < r["spearman_hi"]
    assert math.isnan(analysis.rank_statistics([1, 2], [2, 1])["spearman"])
    assert analysis.rank_statistics([1, 2, np.nan, 4], [1, 2, 3, 4], bootstrap=0)["n"] == 3


def test_the_cli_measures_and_analyses_a_finished_run(finished, tmp_path):
    tmp, checkpoint, npz, result = finished
    args = [
        "supernet",
        "analyse",
        "--store",
        str(tmp / "r.db"),
        "--supernet",
        checkpoint,
        "--bootstrap",
        "20",
    ]
    out = CliRunner().invoke(app, [*args, "--data", npz, "--out", str(tmp_path)])
    assert out.exit_code == 0, out.output
    assert "4 candidates" in out.output and "| 1 density | density | score |" in out.output
    frame = pd.read_csv(tmp_path / "candidates.csv")
    assert list(frame.columns) == list(analysis.COLUMNS) and len(frame) == 4
    assert sorted(frame["arch"]) == sorted(r.arch for r in result.history)
    assert (
        frame["clean"].between(0, 1).all() and np.isfinite(frame["fsp"]).all() and (frame["fsp"] >= 0).all()
    )
    assert np.allclose(frame["gap"], frame["clean"] - frame["score"])
    table = pd.read_csv(tmp_path / "analysis.csv")
    assert {"1 density", "2 convolutions", "3 FSP"} <= set(table["finding"])
    for name in ("density.png", "convolutions.png", "fsp_gap.png", "analysis.md"):
        assert (tmp_path / name).stat().st_size > 0


def test_analyses_rescore_and_refuse_another_runs_data_and_a_missing_store(finished, tmp_path):
    tmp, checkpoint, npz, result = finished
    other = tmp_path / "other.npz"
    other.write_bytes(Path(npz).read_bytes())
    with pytest.raises(ConfigError, match="pass the search's own --data and --supernet"):
        measure_run(tmp / "r.db", ObjectiveContext(data=str(other), supernet=checkpoint))
    again = measure_run(
        tmp / "r.db", ObjectiveContext(data=npz, supernet=checkpoint), fsp=False, eval_images=3
    )
    assert again["score"].between(0, 1).all() and again["clean"].between(0, 1).all()
    assert sorted(again["search_score"]) == sorted(r.value for r in result.history)
    assert np.allclose(np.round(again["score"] * 3), again["score"] * 3) and again["fsp"].isna().all()
    with pytest.raises(DataError, match="run store not found"):
        measure_run(tmp_path / "none.db", ObjectiveContext(data=npz, supernet=checkpoint))


def test_robnet_supernet_refuses_architectures_of_other_spaces():
    import torch

    from robnas.errors import InvalidArchitecture
    from robnas.oneshot import supernet

    net = supernet("robnet", C=2, layers=3)
    x = torch.rand(1, 3, 8, 8)
    for other in ("|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|", ("nor_conv_3x3",) * 6):
        with pytest.raises(InvalidArchitecture) as err:
            net(x, other)
        assert "\n" not in str(err.value)


def test_a_pipeline_search_stage_takes_a_supernet(tmp_path):
    from robnas.pipeline import load_config

    config = tmp_path / "p.toml"
    config.write_text(
        'out = "run"\n[search]\nspace = "robnet"\nstrategy = "robnets"\nsupernet = "sn/last.pt"\n'
        "[train]\n[evaluate]\n"
    )
    assert load_config(config)["search"]["supernet"] == str(tmp_path / "sn" / "last.pt")


def test_search_help_documents_the_one_shot_search():
    result = CliRunner().invoke(app, ["search", "--help"], env={"COLUMNS": "200"})
    text = " ".join(result.output.split())
    assert result.exit_code == 0
    for phrase in ("robnets: RobNets' one-shot search", "oneshot:TARGET (any strategy, needs --supernet)",
                   "oneshot-finetune:TARGET", "DIR/last.pt of robnas supernet train"):  # fmt: skip
        assert phrase in text, phrase
