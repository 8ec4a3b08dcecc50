"""One tiny epoch of every training recipe family on 256 CIFAR-10 images (NB201, C=8, N=1, CPU),
real ones where the shared data folder is present, synthetic ones otherwise; and one step of every
registered recipe on a tiny network (the recipe contract)."""

from __future__ import annotations

import csv
import math
import warnings
from pathlib import Path

import pytest
import torch

from robnas import data, spaces
from robnas.train import RECIPES, checkpoint, fit, load_trained

ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
SHARED_NPZ = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cifar10" / "cifar10_exact_subset.npz"


@pytest.fixture(scope="module")
def cifar256():
    """256 training images: the real CIFAR-10 subset where the shared data folder has it, else
    synthetic images (the code paths are the same; only the accuracies differ)."""
    if SHARED_NPZ.is_file():
        return data.load(SHARED_NPZ).subset(range(256))
    return data.synthetic(256)


@pytest.mark.parametrize("recipe", ["standard", "pgd-at", "trades", "fast-at"])
def test_one_epoch_of_each_recipe(recipe, cifar256, tmp_path):
    torch.manual_seed(0)
    net = spaces.get("nb201").build(ARCH, 10, C=8, N=1)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    # fewer attack steps than the presets keep the test short; the code path is the recipe's own
    fewer = {"val_steps": 2, "steps": 3} if recipe in ("pgd-at", "trades") else {"val_steps": 2}
    result = fit(net, cifar256, recipe, tmp_path, epochs=1, batch_size=64, seed=0, overrides=fewer)
    row = result.history[0]
    assert math.isfinite(row["loss"]) and 0 <= row["train_clean_acc"] <= 1
    adversarial = recipe != "standard"
    assert math.isfinite(row["val_robust_acc"]) == adversarial
    assert math.isfinite(row["train_robust_acc"]) == adversarial
    after = net.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert all(torch.isfinite(v).all() for v in after.values() if v.is_floating_point())

    with open(tmp_path / "log.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["epoch"] for r in rows] == ["1"]
    last = checkpoint.load(tmp_path / "last.pt")
    assert last["epoch"] == 1 and last["meta"]["recipe"]["name"] == recipe
    assert last["meta"]["n_train"] + last["meta"]["n_val"] == 256
    fresh = spaces.get("nb201").build(ARCH, 10, C=8, N=1)
    wrapped, meta = load_trained(tmp_path / "best.pt", fresh)
    assert meta["normalize"] is not None  # every preset here trains through the Normalize layer
    assert wrapped(torch.rand(2, 3, 32, 32)).shape == (2, 10)


def test_unnormalised_variant_records_no_normalisation(cifar256, tmp_path):
    torch.manual_seed(0)
    net = spaces.get("nb201").build(ARCH, 10, C=8, N=1)
    fit(
        net, cifar256.subset(range(128)), "pgd-at-croze", tmp_path, epochs=1, batch_size=64,
        overrides={"steps": 2, "val_steps": 2},
    )  # fmt: skip
    assert checkpoint.load(tmp_path / "last.pt")["meta"]["normalize"] is None


@pytest.mark.parametrize("name", RECIPES.names())
def test_every_recipe_trains_one_step(name, tmp_path):
    """The recipe contract: one optimisation step of each registered recipe, with its own loss and
    attack settings, on 8 synthetic 16x16 images and an NB201 net with C=4, N=1 gives a finite loss."""
    torch.manual_seed(0)
    net = spaces.get("nb201").build(ARCH, 10, C=4, N=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # standard-darts: NB201 has no auxiliary head
        result = fit(
            net, data.synthetic(10, size=16), name, tmp_path, epochs=1, batch_size=8, val_fraction=0.2,
            device="cpu", overrides={"val_steps": 1},
        )  # fmt: skip
    row = result.history[0]
    assert math.isfinite(row["loss"]), name
    assert math.isfinite(row["train_robust_acc"]) == RECIPES.get(name).adversarial
    assert all(torch.isfinite(v).all() for v in net.state_dict().values() if v.is_floating_point())
