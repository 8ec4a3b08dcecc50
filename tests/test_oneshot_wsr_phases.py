"""Wsr-NAS (robnets_wsrnas.md B5): resume from inside every phase, bad input as one CLI line, and the
pipeline taking the search's own answer (``winner = "final"``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from robnas import data as data_lib
from robnas.cli import app
from robnas.errors import ConfigError
from robnas.oneshot.wsr import WsrConfig, run_wsr
from robnas.search.history import HistoryStore

TINY = {
    "warmup_epochs": "1", "memory_epochs": "1", "search_epochs": "1", "C": "4", "layers": "3",
    "batch_size": "8", "train_batches": "1", "valid_batches": "1", "noise_batches": "1",
    "predictor_warmup_passes": "2", "predictor_passes": "2", "pgd_steps": "1",
}  # fmt: skip


@pytest.fixture(scope="module")
def images():
    return data_lib.synthetic(32, num_classes=10, size=16, seed=0)


@pytest.fixture()
def npz(images, tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, x_train=images.x, y_train=images.y)
    return path


def test_resume_inside_every_phase_equals_an_uninterrupted_run(tmp_path):
    images = data_lib.synthetic(16, num_classes=10, size=12, seed=0)
    config = WsrConfig(
        warmup_epochs=2, memory_epochs=2, search_epochs=1, C=4, layers=3, batch_size=4, train_batches=1,
        valid_batches=1, noise_batches=1, estimator_batch=8, predictor_warmup_passes=2, predictor_passes=2,
        pgd_steps=1,
    )  # fmt: skip
    full = run_wsr(config, images, tmp_path / "full", seed=3)
    resumed_at = []
    for stop in (1, 2, 1, 1, None):  # every session but the first resumes from the checkpoint
        part = run_wsr(config, images, tmp_path / "part", seed=3, resume=True, stop_after=stop)
        resumed_at.append((part.phase, len(part.epochs)))
    # stopped mid warm-up, mid memory building, before the predictor warm-up and before the search
    assert resumed_at == [("warmup", 1), ("memory", 3), ("predictor", 4), ("search", 5), ("done", 6)]
    assert [e.genotype for e in part.epochs] == [e.genotype for e in full.epochs]
    for a, b in zip(part.alphas, full.alphas, strict=True):
        assert torch.equal(a, b)
    for mine, theirs in zip(part.epochs, full.epochs, strict=True):
        assert mine.measured == pytest.approx(theirs.measured)
        assert mine.predicted == pytest.approx(theirs.predicted)


def _lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.strip()]


@pytest.mark.parametrize(
    ("strategy", "options", "message"),
    [
        ("wsr-nas", {"pgd_eps": "15.3,7.65,22.95"}, "pgd_eps must be 3 positive, strictly increasing"),
        ("wsr-nas", {"pgd_eps": "0.03,0.06,0.09"}, "strengths are in 1/255 as every eps of the command line; for the fractions 0.03,0.06,0.09 write pgd_eps=7.65,15.3,22.95"),
        ("wsr-naive", {"naive_eps": "7.65,15.3"}, "naive_eps must be 6 positive, strictly increasing"),
        ("wsr-nas", {"estimator": "plus"}, "the plus AN-E takes 32x32 images, the data has 16x16"),
        ("wsr-nas", {"memory_epochs": "0"}, "the loss predictor trains on its memory"),
    ],
)
def test_cli_bad_input_is_one_line(npz, tmp_path, strategy, options, message):
    args = ["search", "--space", "darts", "--strategy", strategy, "--objective", "params", "--budget", "2"]
    args += ["--data", str(npz), "--out", str(tmp_path / "s.db")]
    for key, value in {**TINY, **options}.items():
        args += ["-o", f"{key}={value}"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    (line,) = _lines(result.output)
    assert line.startswith("error: ") and message in line


def test_pipeline_takes_the_searchs_final_answer(npz, tmp_path):
    from robnas.pipeline import load_config, stage_search

    options = ", ".join(f"{k} = {v}" for k, v in TINY.items())
    config_file = tmp_path / "p.toml"
    config_file.write_text(
        f'out = "run"\n[search]\nspace = "darts"\nstrategy = "wsr-nas"\nobjective = "params"\nbudget = 5\n'
        f'winner = "final"\ndata = "{npz}"\nbatch_size = 8\noptions = {{ {options} }}\n[train]\n[evaluate]\n'
    )
    config = load_config(config_file)
    summary = stage_search(config, tmp_path / "run")
    assert len(summary["history"]) == 2  # the one search epoch's path, then the genotype of softmax(alpha)
    with HistoryStore(tmp_path / "run" / "search.sqlite") as store:
        rows = store.history(summary["run"])
    assert rows[-1].info.get("final") is True and not rows[0].info.get("final")
    assert summary["winner"] == rows[-1].arch
    config["search"]["winner"] = "top"
    with pytest.raises(ConfigError, match="winner must be 'best' or 'final'"):
        stage_search(config, tmp_path / "other")
    config["search"] = {"strategy": "random", "budget": 2, "objective": "params", "winner": "final"}
    with pytest.raises(ConfigError, match="marked no final answer"):
        stage_search(config, tmp_path / "random")
