"""Attacks: every registered attack at tiny sizes, input checks, presets, and a trained-model sanity test."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from robnas import attacks
from robnas.errors import ConfigError, UnknownName


def tiny_net(num_classes: int = 10) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(32, num_classes),
    )


@pytest.fixture
def batch():
    model = tiny_net()
    x = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        y = model.eval()(x).argmax(1)  # correctly classified, so every attack has work to do
    model.train()
    return model, x, y


MINIMAL = {
    "fgsm": {},
    "pgd": {"steps": 2},
    "mifgsm": {"steps": 2},
    "cw": {"steps": 2},
    "deepfool": {"steps": 2},
    "spsa": {"nb_sample": 4, "max_batch_size": 4},
    "lgv": {"epochs": 1, "steps": 2, "batch_size": 4},
    "square": {"n_queries": 5},
    "apgd-ce": {"steps": 2},
    "apgd-t": {"steps": 2},
    "fab": {"steps": 2},
    "autoattack": {"eps": 64 / 255},  # APGD fools every image, so Square (5000 queries) has nothing left
}


def test_every_registered_attack_is_covered():
    assert sorted(MINIMAL) == sorted(attacks.names())


@pytest.mark.parametrize("name", sorted(MINIMAL))
def test_attack_runs_in_range_and_restores_mode(name, batch):
    model, x, y = batch
    params = dict(MINIMAL[name])
    if name == "lgv":
        gen = torch.Generator().manual_seed(2)
        params["train_data"] = (
            torch.rand(16, 3, 16, 16, generator=gen),
            torch.randint(0, 10, (16,), generator=gen),
        )
    attack = attacks.get(name, model, **params)
    adv = attack(x, y)
    assert adv.shape == x.shape and adv.dtype == x.dtype
    assert adv.min() >= 0 and adv.max() <= 1
    if attack.eps is not None:
        assert (adv - x).abs().max() <= attack.eps + 1e-6
    assert model.training and all(m.training for m in model.modules())  # mode restored
    if name != "lgv":  # seeded: the same call gives the same result
        assert torch.equal(adv, attacks.get(name, model, **params)(x, y))


def test_autoattack_rand_version(batch):
    model, x, y = batch
    adv = attacks.get("autoattack", model, version="rand")(x, y)
    assert (adv - x).abs().max() <= 8 / 255 + 1e-6


def test_model_is_in_eval_mode_while_attacked(batch):
    model, x, y = batch
    seen = []

    class Spy(nn.Module):
        def forward(self, t):
            seen.append(self.training)
            return t

    wrapped = nn.Sequential(Spy(), model).train()
    attacks.get("pgd", wrapped, steps=2)(x, y)
    assert seen and not any(seen)
    assert wrapped.training


def test_unknown_name_and_bad_parameters(batch):
    model, x, y = batch
    with pytest.raises(UnknownName, match="pgd"):
        attacks.get("pgdd", model)
    with pytest.raises(ConfigError, match=r"\(0, 1\]"):
        attacks.get("pgd", model, eps=8)
    with pytest.raises(ConfigError, match=r"\(0, 1\]"):
        attacks.get("fgsm", model, eps=0)
    with pytest.raises(ConfigError, match="no parameter"):
        attacks.get("fgsm", model, steps=3)
    with pytest.raises(ConfigError, match="positive integer"):
        attacks.get("pgd", model, steps=0)
    with pytest.raises(ConfigError, match="train_data"):
        attacks.get("lgv", model)
    with pytest.raises(ConfigError, match="random_start"):
        attacks.get("pgd", model, random_start="sometimes")


def test_bad_images_give_clear_errors(batch):
    model, x, y = batch
    attack = attacks.get("fgsm", model)
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        attack(x * 2 - 0.5, y)
    with pytest.raises(ConfigError, match=r"\(N, 3, H, W\)"):
        attack(x[:, :1], y)
    with pytest.raises(ConfigError, match=r"\(N, 3, H, W\)"):
        attack(x[0], y)
    with pytest.raises(ConfigError, match="labels"):
        attack(x, y[:2])


def test_lgv_needs_enough_training_batches(batch):
    model, _, _ = batch
    with pytest.raises(ConfigError, match="training"):
        attacks.get("lgv", model, train_data=(torch.rand(4, 3, 16, 16), torch.zeros(4, dtype=torch.long)))


def test_with_normalization_works_in_pixel_space(batch):
    model, x, y = batch
    model.eval()
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    wrapped = attacks.with_normalization(model, mean, std)
    manual = model((x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1))
    assert torch.allclose(wrapped(x), manual)
    adv = attacks.get("pgd", wrapped, eps=4 / 255, steps=2)(x, y)
    assert (adv - x).abs().max() <= 4 / 255 + 1e-6 and adv.min() >= 0


def test_presets_resolve_and_validate():
    assert attacks.preset("croze-train") == (
        "pgd",
        {"eps": 8 / 255, "alpha": 2 / 255, "steps": 7, "random_start": True},
    )
    name, params = attacks.preset("croze-eval")
    assert (name, params["eps"], params["alpha"], params["steps"]) == ("pgd", 0.031, 0.003, 20)
    assert attacks.preset("robnet-pgd100")[1]["steps"] == 100
    spectrum = attacks.preset("wsr-spectrum")
    assert [p["eps"] for _, p in spectrum] == list(attacks.WSR_SPECTRUM_EPS)
    assert all(p["alpha"] == pytest.approx(2.5 * p["eps"] / 20) for _, p in spectrum)
    for preset_name in attacks.PRESETS.names():
        assert attacks.PRESETS.meta(preset_name)["source"]
        value = attacks.preset(preset_name)
        for attack_name, params in value if isinstance(value, list) else [value]:
            attacks.validate_params(attack_name, params)
    with pytest.raises(UnknownName):
        attacks.preset("nope")


def test_pgd_restarts_and_croze_start(batch):
    model, x, y = batch
    adv = attacks.get("pgd", model, steps=2, restarts=3)(x, y)
    assert (adv - x).abs().max() <= 8 / 255 + 1e-6
    adv = attacks.get("pgd", model, eps=0.031, alpha=0.003, steps=3, random_start="normal")(x, y)
    assert (adv - x).abs().max() <= 0.031 + 1e-6


# ---------------------------------------------------------------------------------------------- sanity


@pytest.fixture(scope="module")
def trained():
    """A tiny CNN trained for a few seconds on separable synthetic data (class = a colour shift)."""
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    n, classes = 384, 4
    y = torch.randint(0, classes, (n,), generator=gen)
    base = torch.rand(n, 3, 16, 16, generator=gen) * 0.8
    colours = 0.12 * torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.5, 0.5, 0.0]])
    x = (base + colours[y].view(n, 3, 1, 1)).clamp(0, 1)
    model = tiny_net(classes)
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    model.train()
    for _ in range(4):
        for i in range(0, 320, 32):
            loss = nn.functional.cross_entropy(model(x[i : i + 32]), y[i : i + 32])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    return model, x[320:], y[320:]


def _accuracy(model, x, y):
    with torch.no_grad():
        return (model(x).argmax(1) == y).float().mean().item()


def test_trained_model_clean_fgsm_pgd_ordering(trained):
    model, x, y = trained
    clean = _accuracy(model, x, y)
    assert clean >= 0.8
    eps = 8 / 255
    fgsm = attacks.get("fgsm", model, eps=eps)(x, y)
    pgd = attacks.get("pgd", model, eps=eps, alpha=eps / 4, steps=10, random_start=False)(x, y)
    for adv in (fgsm, pgd):
        assert (adv - x).abs().max() <= eps + 1e-6 and adv.min() >= 0 and adv.max() <= 1
    acc_fgsm, acc_pgd = _accuracy(model, fgsm, y), _accuracy(model, pgd, y)
    assert clean >= acc_fgsm >= acc_pgd
    assert acc_pgd < clean  # the attack does something


def test_stronger_attacks_never_score_higher(trained):
    model, x, y = trained
    tol = 1 / len(y)
    by_eps = [
        _accuracy(
            model,
            attacks.get("pgd", model, eps=e / 255, alpha=e / 255 / 4, steps=8, random_start=False)(x, y),
            y,
        )
        for e in (2, 4, 8, 16)
    ]
    assert all(b <= a + tol for a, b in itertools.pairwise(by_eps))
    by_steps = [
        _accuracy(
            model, attacks.get("pgd", model, eps=8 / 255, alpha=2 / 255, steps=s, random_start=False)(x, y), y
        )
        for s in (1, 3, 10)
    ]
    assert all(b <= a + tol for a, b in itertools.pairwise(by_steps))
    by_fgsm = [_accuracy(model, attacks.get("fgsm", model, eps=e / 255)(x, y), y) for e in (1, 4, 16)]
    assert by_fgsm[-1] <= by_fgsm[0] + tol
