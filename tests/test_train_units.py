"""Unit tests of the training building blocks: recipes, schedules, adversary, augmentation, checkpoints."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from robnas.errors import ConfigError, DataError, UnknownName
from robnas.train import RECIPES, adversary, augment, build_model, checkpoint, parse_options, split_indices
from robnas.train import get as get_recipe
from robnas.train.distributed import launch_env

ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"


def test_registry_has_the_four_families_with_sources():
    for name in ("standard", "pgd-at", "trades", "fast-at"):
        recipe = get_recipe(name)
        assert recipe.source, name
    assert get_recipe("pgd-at").loss == "pgd"
    assert get_recipe("trades").beta == 6.0
    assert get_recipe("fast-at").steps == 1
    assert RECIPES.names("pgd-at*") == ["pgd-at", "pgd-at-croze", "pgd-at-robnets"]
    with pytest.raises(UnknownName):
        get_recipe("pgd_at")


def test_madry_settings():
    r = get_recipe("pgd-at")
    assert (r.eps, r.step_size, r.steps, r.random_start) == (8 / 255, 2 / 255, 7, "uniform")
    assert r.attack_bn == "eval"


def test_croze_step_schedule_is_absolute():
    r = get_recipe("standard")
    assert [r.lr_at(e) for e in (0, 98, 99, 148, 149, 199)] == pytest.approx(
        [0.1, 0.1, 0.01, 0.01, 0.001, 0.001]
    )
    # a short run keeps the initial lr whatever its total (the reference hard-codes 99 and 149)
    assert r.lr_at(0, 1) == r.lr_at(0, 2) == pytest.approx(0.1)
    scaled = r.replace(scale_schedule=True)
    assert scaled.lr_at(49, 100) == pytest.approx(0.1)
    assert scaled.lr_at(50, 100) == pytest.approx(0.01)


def test_robnets_warmup_cosine_matches_reference_values():
    r = get_recipe("pgd-at-robnets")
    lrs = {e: r.lr_at(e) for e in (0, 10, 20, 95, 169)}
    assert lrs[0] == pytest.approx(0.02)
    assert lrs[10] == pytest.approx(0.61)
    assert lrs[20] == pytest.approx(1.2)
    assert lrs[95] == pytest.approx(0.6005, abs=1e-3)
    assert lrs[169] == pytest.approx(0.00113, abs=1e-5)
    assert r.no_decay_bn_bias and r.weight_decay == 1e-4


def test_cosine_and_cyclic():
    darts = get_recipe("standard-darts")
    assert darts.lr_at(0) == pytest.approx(0.025)
    assert darts.lr_at(300) == pytest.approx(0.0125)
    fast = get_recipe("fast-at")
    lrs = [fast.lr_at(e) for e in range(fast.epochs)]
    assert max(lrs) <= fast.lr and lrs.index(max(lrs)) == fast.epochs // 2
    assert lrs[0] < 0.01 and lrs[-1] < 0.01


def test_recipe_replace_rejects_unknown_settings():
    assert get_recipe("trades").replace(beta=1.0).beta == 1.0
    with pytest.raises(ConfigError):
        get_recipe("trades").replace(betta=1.0)


def _tiny_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 3))


def test_pgd_stays_in_the_ball_and_raises_the_loss():
    net = _tiny_net().eval()
    x = torch.rand(6, 3, 8, 8)
    y = torch.randint(0, 3, (6,))
    eps = 8 / 255
    start = torch.empty_like(x).uniform_(-eps, eps)
    x_adv = adversary.pgd(net, x, y, eps, 2 / 255, 5, start)
    assert (x_adv - x).abs().max() <= eps + 1e-6
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    with torch.no_grad():
        assert F.cross_entropy(net(x_adv), y) > F.cross_entropy(net(x), y)
    assert all(p.grad is None for p in net.parameters())


def test_trades_inner_loop_moves_the_prediction():
    net = _tiny_net().eval()
    x = torch.rand(6, 3, 8, 8)
    x_adv = adversary.trades(net, x, 8 / 255, 2 / 255, 5, 0.001 * torch.randn_like(x))
    assert (x_adv - x).abs().max() <= 8 / 255 + 1e-6
    with torch.no_grad():
        p = F.softmax(net(x), 1)
        kl = F.kl_div(F.log_softmax(net(x_adv), 1), p, reduction="sum")
    assert kl > 0
    loss = adversary.trades_loss(net(x), net(x_adv), torch.zeros(6, dtype=torch.long), beta=6.0)
    assert torch.isfinite(loss)


def test_augment_crop_flip_cutout():
    x = torch.rand(3, 3, 8, 8)
    centre = torch.full((3, 2), 4, dtype=torch.long)
    same = augment.augment(x, centre, torch.zeros(3, dtype=torch.bool), centre, padding=4)
    assert torch.equal(same, x)  # offset 4 with padding 4 is the identity crop
    flipped = augment.augment(x, centre, torch.ones(3, dtype=torch.bool), centre, padding=4)
    assert torch.equal(flipped, x.flip(3))
    shifted = augment.augment(
        x, torch.zeros(3, 2, dtype=torch.long), torch.zeros(3, dtype=torch.bool), centre
    )
    assert torch.equal(shifted[:, :, 4:, 4:], x[:, :, :4, :4]) and shifted[:, :, :4].abs().sum() == 0
    cut = augment.augment(x, centre, torch.zeros(3, dtype=torch.bool), centre, padding=0, cutout=4)
    assert (cut[:, :, 2:6, 2:6] == 0).all() and torch.equal(cut[:, :, 6:], x[:, :, 6:])
    a = augment.draw(10, 8, 8, 4, seed=1, epoch=2)
    b = augment.draw(10, 8, 8, 4, seed=1, epoch=2)
    c = augment.draw(10, 8, 8, 4, seed=1, epoch=3)
    assert torch.equal(a.offsets, b.offsets) and not torch.equal(a.offsets, c.offsets)


def test_split_is_seeded_and_disjoint():
    tr, va = split_indices(100, 0.1, seed=3)
    assert len(va) == 10 and len(tr) == 90 and not set(tr) & set(va)
    tr2, va2 = split_indices(100, 0.1, seed=3)
    assert np.array_equal(va, va2)
    with pytest.raises(ConfigError):
        split_indices(100, 1.0, seed=0)


def test_checkpoint_round_trip_weights_only(tmp_path):
    torch.manual_seed(5)
    np.random.seed(5)
    state = {"model": _tiny_net().state_dict(), "epoch": 3, "rng": checkpoint.rng_state()}
    a = (torch.rand(2), np.random.rand(2))
    checkpoint.save(state, tmp_path / "c.pt")
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]  # no temporary file left behind
    loaded = checkpoint.load(tmp_path / "c.pt")
    checkpoint.set_rng_state(loaded["rng"])
    b = (torch.rand(2), np.random.rand(2))
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(DataError):
        checkpoint.load(tmp_path / "bad.pt")
    with pytest.raises(DataError):
        checkpoint.load(tmp_path / "missing.pt")


def test_build_model_and_options():
    assert parse_options(["C=8", "N=1", "affine=false", "name=x"]) == {
        "C": 8,
        "N": 1,
        "affine": False,
        "name": "x",
    }
    with pytest.raises(ConfigError):
        parse_options(["C8"])
    net = build_model(f"nb201:{ARCH}", 10, C=8, N=1)
    assert net(torch.rand(2, 3, 32, 32)).shape == (2, 10)


def test_launch_env_reads_slurm(monkeypatch):
    env = {"SLURM_PROCID": "3", "SLURM_NTASKS": "8", "SLURM_LOCALID": "1", "MASTER_ADDR": "node1"}
    monkeypatch.setattr(os, "environ", env)  # a private copy: launch_env exports RANK etc.
    assert launch_env() == (3, 8, 1)
    assert env["RANK"] == "3" and env["MASTER_PORT"] == "29500"
    monkeypatch.setattr(os, "environ", {"SLURM_PROCID": "0", "SLURM_NTASKS": "2"})
    with pytest.raises(ConfigError, match="MASTER_ADDR"):
        launch_env()
    monkeypatch.setattr(os, "environ", {})
    assert launch_env() == (0, 1, 0)


def test_lr_is_finite_everywhere():
    for name in RECIPES.names():
        r = get_recipe(name)
        assert all(math.isfinite(r.lr_at(e)) and r.lr_at(e) >= 0 for e in range(r.epochs)), name


def test_darts_auxiliary_loss_and_drop_path(tmp_path):
    from robnas import data, zoo
    from robnas.train import fit

    if "darts_v2" not in zoo.MODELS:
        pytest.skip("the DARTS zoo entry is not available")
    torch.manual_seed(0)
    net = zoo.create_model("darts_v2", 10, C=4, layers=5, auxiliary=True)
    head = {k: v.clone() for k, v in net.auxiliary_head.state_dict().items()}
    result = fit(net, data.synthetic(32), "standard-darts", tmp_path, epochs=2, batch_size=16, val_fraction=0)
    assert net.drop_path_prob == pytest.approx(0.2 * 1 / 2)  # ramped linearly, last epoch = 1 of 2
    assert any(not torch.equal(head[k], v) for k, v in net.auxiliary_head.state_dict().items())
    assert result.history[0]["loss"] > math.log(10)  # CE + 0.4 * auxiliary CE


def test_recipe_settings_are_checked_against_their_types():
    r = get_recipe("pgd-at")
    with pytest.raises(ConfigError, match=r"setting steps='abc' should be an integer"):
        r.replace(steps="abc")
    with pytest.raises(ConfigError, match=r"setting nesterov=1 should be true or false"):
        r.replace(nesterov=1)
    with pytest.raises(ConfigError, match=r"schedule='linear' should be one of"):
        r.replace(schedule="linear")
    with pytest.raises(ConfigError, match="training loss"):
        r.replace(loss="madry")
    assert r.replace(steps=3.0).steps == 3 and isinstance(r.replace(lr=1).lr, float)
    assert r.replace(milestones="50,75").milestones == (50, 75)
    # pixel units in Python: eps=8 is 1/255 given by mistake
    with pytest.raises(ConfigError, match=r"eps=8 is outside \[0, 64/255\]"):
        r.replace(eps=8)


def test_command_line_eps_is_in_1_255_everywhere():
    from robnas import evaluate
    from robnas.train import parse_settings
    from robnas.units import from_255

    assert parse_settings(["eps=8", "step_size=2", "steps=3"]) == {"eps": 8 / 255, "step_size": 2 / 255, "steps": 3}
    assert evaluate.parse_attack("pgd@8:alpha=2")[0][1]["eps"] == from_255("eps", 8) == 8 / 255
    assert from_255("eps", 0.1) == pytest.approx(0.1 / 255)  # the robustness benchmark's fgsm@0.1
    for bad in (["eps=0.031"], ["step_size=0.007"]):
        with pytest.raises(ConfigError, match="looks like a fraction"):
            parse_settings(bad)
    with pytest.raises(ConfigError, match="looks like a fraction"):
        evaluate.parse_attack("pgd@0.031")
    with pytest.raises(ConfigError, match="not a number"):
        parse_settings(["eps=eight"])


def test_a_custom_loss_is_one_registry_entry(tmp_path):
    from robnas import data
    from robnas.train import LOSSES, Recipe, StepOutput, adversary, fit

    calls = []

    def flooded_ce(model, x, y, ctx):
        """CE with a flood level (Ishida et al. 2020) on FGSM examples."""
        calls.append(ctx.step)
        start = ctx.random_start("uniform", ctx.recipe.eps, x)
        model.eval()
        x_adv = adversary.pgd(model, x, y, ctx.recipe.eps, ctx.recipe.step_size, 1, start)
        model.train()
        out = ctx.forward(x_adv)
        loss = (ctx.cross_entropy(out, y) - 0.1).abs() + 0.1
        return StepOutput(loss, adv_logits=adversary.logits_of(out))

    if "test-flooded-ce" not in LOSSES:
        LOSSES.register("test-flooded-ce", flooded_ce, adversarial=True)
    recipe = Recipe("test-flooded", loss="test-flooded-ce", epochs=1, batch_size=8, steps=1, val_steps=1)
    assert recipe.adversarial
    net = build_model(f"nb201:{ARCH}", 10, C=4, N=1)
    result = fit(net, data.synthetic(24, size=16), recipe, tmp_path, device="cpu")
    assert calls == [0, 1, 2] and math.isfinite(result.history[0]["loss"])
    assert math.isfinite(result.history[0]["train_robust_acc"])
    assert checkpoint.load(tmp_path / "last.pt")["meta"]["recipe"]["loss"] == "test-flooded-ce"


class _TwoPaths(nn.Module):
    """A toy weight-sharing network: a shared stem and one of two branches per step."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.branches = nn.ModuleList([nn.Conv2d(4, 4, 3, padding=1), nn.Conv2d(4, 4, 1)])
        self.head = nn.Linear(4, 10)
        self.path = 0
        self.seen: list[int] = []

    def forward(self, x):
        self.seen.append(self.path)
        h = torch.relu(self.branches[self.path](torch.relu(self.stem(x))))
        return self.head(h.mean((2, 3)))


def test_a_step_that_samples_its_path_first_resumes_exactly(tmp_path):
    from robnas import data
    from robnas.train import Trainer, losses

    steps = []

    def supernet_step(model, x, y, ctx):
        # the sub-network is drawn once per step, before the attack: adversary and loss see it
        model.net.path = int(torch.randint(2, (1,), generator=ctx.generator(0x5AB)))
        model.net.seen.clear()
        out = losses.get("pgd")(model, x, y, ctx)
        steps.append((model.net.path, set(model.net.seen)))
        return out

    def run(out, **kw):
        torch.manual_seed(0)
        trainer = Trainer(
            _TwoPaths(), data.synthetic(40, size=8), "pgd-at", out, epochs=2, batch_size=8, device="cpu",
            find_unused_parameters=True, overrides={"steps": 2, "val_steps": 1},
        )  # fmt: skip
        trainer.start(resume=kw.pop("resume", False))
        return trainer.train(supernet_step, **kw)

    run(tmp_path / "full")
    assert {p for p, _ in steps} == {0, 1} and all(seen == {p} for p, seen in steps)
    run(tmp_path / "cut", stop_after=1)
    run(tmp_path / "cut", resume=True)
    a, b = checkpoint.load(tmp_path / "full" / "last.pt"), checkpoint.load(tmp_path / "cut" / "last.pt")
    assert a["epoch"] == b["epoch"] == 2
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])


def test_progress_is_a_callback(tmp_path):
    from robnas import data
    from robnas.train import fit

    events = []
    net = build_model(f"nb201:{ARCH}", 10, C=4, N=1)
    fit(
        net, data.synthetic(20, size=8), "standard", tmp_path, epochs=1, batch_size=8, val_fraction=0.2,
        progress=events.append,
    )  # fmt: skip
    assert [e["event"] for e in events] == ["epoch_start", "step", "step", "epoch_end"]
    assert events[-1]["row"]["epoch"] == 1 and events[0]["steps"] == 2
