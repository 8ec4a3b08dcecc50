"""The ``robnas train`` contract, resume after a kill (bit-identical on CPU), and bad input."""

from __future__ import annotations

import csv

import pytest
import torch
from typer.testing import CliRunner

from robnas import data, spaces
from robnas.cli import app
from robnas.train import checkpoint, fit

ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"


def _cli(npz, out, *extra: str) -> None:
    args = [
        "train", "--arch", f"nb201:{ARCH}", "--recipe", "standard", "--data", str(npz),
        "--subset", "256", "--batch-size", "64", "--seed", "3", "--out", str(out),
        "--arch-opt", "C=8", "--arch-opt", "N=1", "--no-progress", *extra,
    ]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output


def _same_weights(a, b) -> bool:
    wa, wb = checkpoint.load(a)["model"], checkpoint.load(b)["model"]
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def _rows(path):
    with open(path) as fh:
        return list(csv.DictReader(fh))


def test_cli_resume_matches_an_uninterrupted_run(shared_data, tmp_path):
    npz = shared_data / "cifar10" / "cifar10_exact_subset.npz"
    _cli(npz, tmp_path / "full", "--epochs", "2")
    _cli(npz, tmp_path / "cut", "--epochs", "1")
    _cli(npz, tmp_path / "cut", "--epochs", "2", "--resume")
    full, cut = checkpoint.load(tmp_path / "full" / "last.pt"), checkpoint.load(tmp_path / "cut" / "last.pt")
    assert full["epoch"] == cut["epoch"] == 2
    assert _same_weights(tmp_path / "full" / "last.pt", tmp_path / "cut" / "last.pt")
    assert [r["epoch"] for r in _rows(tmp_path / "cut" / "log.csv")] == ["1", "2"]
    assert _rows(tmp_path / "full" / "log.csv")[1]["loss"] == _rows(tmp_path / "cut" / "log.csv")[1]["loss"]
    assert (tmp_path / "full" / "meta.json").is_file()


def test_stop_after_then_resume_is_bit_identical_for_adversarial_training(shared_data, tmp_path):
    cifar = data.load(shared_data / "cifar10" / "cifar10_exact_subset.npz").subset(range(192))
    options = dict(epochs=2, batch_size=32, seed=1, overrides={"val_steps": 1})

    def run(out, **extra):
        torch.manual_seed(1)
        net = spaces.get("nb201").build(ARCH, 10, C=8, N=1)
        return fit(net, cifar, "fast-at", out, **options, **extra)

    run(tmp_path / "full")
    stopped = run(tmp_path / "cut", stop_after=1)
    assert stopped.epochs_done == 1 and checkpoint.load(tmp_path / "cut" / "last.pt")["epoch"] == 1
    run(tmp_path / "cut", resume=True)
    assert _same_weights(tmp_path / "full" / "last.pt", tmp_path / "cut" / "last.pt")
    # the cyclic schedule is defined by the 2-epoch budget, not by the stop point
    lrs = [float(r["lr"]) for r in _rows(tmp_path / "cut" / "log.csv")]
    assert lrs == [float(r["lr"]) for r in _rows(tmp_path / "full" / "log.csv")]


def test_best_checkpoint_follows_validation_accuracy(shared_data, tmp_path):
    npz = shared_data / "cifar10" / "cifar10_exact_subset.npz"
    _cli(npz, tmp_path, "--epochs", "3", "--val-fraction", "0.2")
    rows = _rows(tmp_path / "log.csv")
    val = [float(r["val_clean_acc"]) for r in rows]
    best = checkpoint.load(tmp_path / "best.pt")
    assert best["epoch"] == val.index(max(val)) + 1
    assert best["meta"]["n_val"] == round(256 * 0.2)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--arch", "nb201:|bad|", "--data", "synthetic:64", "--out", "OUT"], "NAS-Bench-201"),
        (["--data", "synthetic:64", "--out", "OUT"], "missing --arch"),
        (["--arch", f"nb201:{ARCH}", "--recipe", "pgd", "--data", "synthetic:64", "--out", "OUT"], "recipe"),
        (["--arch", f"nb201:{ARCH}", "--data", "/nonexistent.npz", "--out", "OUT"], "not found"),
        (["--arch", f"nb201:{ARCH}", "--data", "synthetic:64", "--out", "OUT", "--set", "bogus=1"], "bogus"),
        (["--arch", f"nb201:{ARCH}", "--data", "synthetic:64", "--out", "OUT", "--set", "steps=abc"],
         "setting steps='abc' should be an integer"),
        (["--arch", f"nb201:{ARCH}", "--data", "synthetic:64", "--out", "OUT", "--set", "eps=0.031"],
         "looks like a fraction"),
        (["--arch", f"nb201:{ARCH}", "--data", "synthetic:64", "--out", "OUT", "--set", "eps=300"], "1/255"),
        (["--arch", f"nb201:{ARCH}", "--data", "synthetic:64", "--out", "OUT", "--set", "attack_bn=both"],
         "one of 'eval', 'train'"),
    ],
)
def test_bad_input_gives_one_clear_line(args, message, tmp_path):
    args = [str(tmp_path) if a == "OUT" else a for a in args]
    result = CliRunner().invoke(app, ["train", *args, "--epochs", "1", "--no-progress"])
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_set_eps_is_in_1_255_and_recorded_as_a_fraction(tmp_path):
    args = [
        "train", "--arch", f"nb201:{ARCH}", "--recipe", "fast-at", "--data", "synthetic:32", "--out",
        str(tmp_path), "--epochs", "1", "--batch-size", "16", "--arch-opt", "C=4", "--arch-opt", "N=1",
        "--set", "eps=4", "--set", "step_size=5", "--set", "val_steps=1", "--no-progress",
    ]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    recipe = checkpoint.load(tmp_path / "last.pt")["meta"]["recipe"]
    assert recipe["eps"] == pytest.approx(4 / 255) and recipe["step_size"] == pytest.approx(5 / 255)
    assert "1/255" in CliRunner().invoke(app, ["train", "--help"]).output


def test_list_recipes():
    result = CliRunner().invoke(app, ["train", "--list-recipes"])
    assert result.exit_code == 0 and "pgd-at:" in result.output and "trades:" in result.output


def test_final_eval_writes_the_evaluation_table(tmp_path):
    args = [
        "train", "--arch", f"nb201:{ARCH}", "--data", "synthetic:64", "--out", str(tmp_path),
        "--epochs", "1", "--batch-size", "32", "--arch-opt", "C=4", "--arch-opt", "N=1",
        "--no-progress", "--final-eval", "--eval-attacks", "fgsm",
    ]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "final_eval.csv").is_file()
