"""RobNets' search on a trained supernet: the oneshot: objectives and the robnets strategy."""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from robnas import data, objectives, spaces
from robnas.cli import app
from robnas.errors import ConfigError, UnknownName
from robnas.models import normalized
from robnas.objectives import ObjectiveContext, needs_data
from robnas.objectives.oneshot import source
from robnas.oneshot import load_supernet, recalibrate_bn, train_supernet
from robnas.oneshot.robnets.objective import parse_target
from robnas.search import run_search

DATA = "synthetic:48"
OPTIONS = {
    "candidates": 3,
    "finetune_epochs": 1,
    "finetune_images": 16,
    "eval_images": 4,
    "fsp_keep": 0.67,
    "fsp_steps": 2,
}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A tiny robnet supernet (C=4, 3 cells) trained one epoch of PGD-AT on 32x32 synthetic images."""
    out = tmp_path_factory.mktemp("supernet")
    train_supernet(
        "robnet", data.load(DATA), "pgd-at", out, epochs=1, batch_size=16, C=4, layers=3,
        bn="recalibrate", overrides={"steps": 2},
    )  # fmt: skip
    return str(out / "last.pt")


def _context(checkpoint: str, **oneshot) -> ObjectiveContext:
    return ObjectiveContext(data=DATA, supernet=checkpoint, oneshot={"eval_images": 4, **oneshot})


def test_oneshot_objectives_need_data():
    assert needs_data("oneshot:pgd@8,-params,oneshot-finetune:clean") == [
        "oneshot:pgd@8",
        "oneshot-finetune:clean",
    ]


def test_targets_parse():
    assert parse_target("clean").level is None
    target = parse_target("pgd@8")
    assert (target.name, target.eps) == ("pgd", 8 / 255)
    assert parse_target("fgsm@4").eps == 4 / 255
    for bad in ("pgd", "pgd@x", "cw@8", "pgd@-1"):
        with pytest.raises(UnknownName, match="expected clean, fgsm@EPS or pgd@EPS"):
            parse_target(bad)


def test_oneshot_clean_is_the_recalibrated_subnet_accuracy(checkpoint):
    space = spaces.get("robnet")
    context = _context(checkpoint)
    objective = objectives.make("oneshot:clean", space, context)
    arch = space.sample(np.random.default_rng(3))
    value = objective.evaluate(arch)
    assert 0.0 <= value <= 1.0

    src = source(context, space)
    net = load_supernet(checkpoint)
    mean, std = src.mean_std
    norm = normalized(torch.nn.Identity(), mean, std).normalize
    recalibrate_bn(net, arch, src.recalibration, transform=norm)
    sub = normalized(net.subnet(arch), mean, std).eval()
    with torch.no_grad():
        expected = (sub(src.val_x).argmax(1) == src.val_y).float().mean().item()
    assert len(src.val_x) == 4
    assert value == pytest.approx(expected)

    pgd = objectives.make("oneshot:pgd@8", space, context)
    assert 0.0 <= pgd.evaluate(arch) <= value + 1e-9


def test_robnets_filters_by_fsp_fine_tunes_and_resumes(checkpoint, tmp_path, monkeypatch):
    search = functools.partial(
        run_search, "robnet", "robnets", "oneshot-finetune:pgd@8", 10,
        out=tmp_path / "runs.db", options=OPTIONS, context=_context(checkpoint),
    )  # fmt: skip
    result = search()
    assert result.status == "done"
    assert len(result.history) == 2  # round(0.67 * 3) candidates kept
    for row in result.history:
        assert 0.0 <= row.value <= 1.0 and not row.error
        assert math.isfinite(row.info["fsp"]) and row.info["fsp_rank"] in (0, 1)
        assert row.cost.wall > 0
    assert "fsp filter" in result.setup
    folders = sorted((tmp_path / "runs-finetune").iterdir())
    assert len(folders) == 2 and all((f / "last.pt").is_file() for f in folders)

    from robnas import train

    def no_training(*args, **kwargs):
        raise AssertionError("a resumed run fine-tuned a candidate again")

    monkeypatch.setattr(train, "fit", no_training)
    again = search()
    assert again.run == result.run
    assert [(r.arch, r.value, r.step) for r in again.history] == [
        (r.arch, r.value, r.step) for r in result.history
    ]


@pytest.mark.parametrize("strategy, options", [("robnets", {"candidates": 8, "eval_images": 4})])
def test_one_shot_strategies_spend_their_budget_on_distinct_archs(strategy, options, checkpoint):
    """The budget contract of tests/test_search.py, for strategies that need a trained supernet."""
    result = run_search(
        "robnet", strategy, "oneshot:clean", 5, seed=2, options=options, context=_context(checkpoint)
    )
    assert result.status == "done"
    assert len(result.history) == 5 == len({r.arch for r in result.history})
    assert [r.step for r in result.history] == [1, 2, 3, 4, 5]
    assert all(0.0 <= r.value <= 1.0 and "fsp" not in r.info for r in result.history)
    assert result.best(1)[0].value == max(r.value for r in result.history)


def test_cell_free_candidates_have_one_code_per_cell(checkpoint):
    options = {"candidates": 2, "eval_images": 4, "cell_free": "true"}
    result = run_search(
        "robnet", "robnets", "oneshot:clean", 2, options=options, context=_context(checkpoint)
    )
    space = spaces.get("robnet")
    assert [len(space.parse(r.arch)) for r in result.history] == [3, 3]  # the supernet's 3 cells


def test_a_killed_fine_tuning_resumes_from_its_folder(checkpoint, tmp_path, monkeypatch):
    from robnas import train

    space = spaces.get("robnet")
    arch = space.sample(np.random.default_rng(5))
    fit = train.fit

    def killed_after_one_epoch(*args, **kwargs):
        fit(*args, **{**kwargs, "stop_after": 1})
        raise KeyboardInterrupt

    def finetuned(workdir):
        context = _context(checkpoint, finetune_epochs=2, finetune_images=16, workdir=str(workdir))
        return objectives.make("oneshot-finetune:clean", space, context)

    monkeypatch.setattr(train, "fit", killed_after_one_epoch)
    with pytest.raises(KeyboardInterrupt):
        finetuned(tmp_path / "killed").evaluate(arch)
    monkeypatch.setattr(train, "fit", fit)
    epochs = []
    run_epoch = train.Trainer.run_epoch
    monkeypatch.setattr(
        train.Trainer, "run_epoch", lambda self, epoch, *a: epochs.append(epoch) or run_epoch(self, epoch, *a)
    )
    resumed = finetuned(tmp_path / "killed").evaluate(arch)
    assert epochs == [1]  # only the epoch the kill left undone
    (folder,) = (tmp_path / "killed").iterdir()
    assert len((folder / "log.csv").read_text().strip().splitlines()) == 3  # header + 2 epochs
    assert resumed == finetuned(tmp_path / "whole").evaluate(arch)


def test_the_cli_searches_with_a_oneshot_objective(checkpoint, tmp_path):
    args = ["search", "--space", "robnet", "--strategy", "random", "--objective", "oneshot:clean",
            "--supernet", checkpoint, "--data", DATA, "--budget", "2", "--out", str(tmp_path / "r.db")]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "(2 evaluations)" in " ".join(result.output.split())


def _errors(output: str) -> list[str]:
    """The output's lines but the warning that synthetic data says nothing about real data."""
    return [
        line
        for line in output.splitlines()
        if line.strip() and not line.startswith("warning: --data synthetic")
    ]


def test_bad_input_gives_one_clear_error(checkpoint, tmp_path):
    out = str(tmp_path / "r.db")
    result = CliRunner().invoke(
        app, ["search", "--space", "robnet", "--strategy", "robnets", "--data", DATA, "--out", out]
    )
    assert result.exit_code == 2, result.output
    assert _errors(result.output) == [
        "error: strategy 'robnets' needs a trained supernet checkpoint (--supernet PATH)"
    ]
    result = CliRunner().invoke(
        app, ["search", "--space", "nb201", "--strategy", "robnets", "--supernet", checkpoint, "--data", DATA,
              "--out", out],
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    lines = _errors(result.output)
    assert len(lines) == 1 and "holds a robnet supernet, not a nb201 one" in lines[0]
    with pytest.raises(ConfigError, match="objective is oneshot-finetune:TARGET"):
        run_search("robnet", "robnets", "params", 2, options=OPTIONS, context=_context(checkpoint))
    with pytest.raises(ConfigError, match="one-shot objectives need a trained supernet"):
        objectives.make("oneshot:clean", spaces.get("robnet"), ObjectiveContext(data=DATA))
    with pytest.raises(ConfigError, match="fsp_keep must be in"):
        run_search(
            "robnet",
            "robnets",
            "oneshot-finetune:pgd@8",
            2,
            options={"fsp_keep": 0},
            context=_context(checkpoint),
        )
