"""One target grammar (robnas.targets): one text, one meaning, eps in 1/255 everywhere."""

from __future__ import annotations

import pytest

from robnas import attacks, targets
from robnas.errors import ConfigError, UnknownName
from robnas.evaluate import parse_attack
from robnas.oneshot.robnets.objective import accuracy, parse_target


def test_grammar_levels_settings_and_canonical_text():
    t = targets.parse(" pgd@8.0:steps=20,alpha=2 ")
    assert (t.name, t.level, t.params) == ("pgd", 8.0, {"steps": 20, "alpha": 2})
    assert t.text == "pgd@8:alpha=2,steps=20" and targets.parse(t.text) == t
    assert t.attack_params() == {"eps": 8 / 255, "steps": 20, "alpha": 2 / 255}
    assert targets.parse("fog@3").severity == 3 and targets.parse("clean").level is None
    assert targets.parse("cifar100/test@200").name == "cifar100/test"
    assert targets.parse("aa@8").eps == 8 / 255  # a new benchmark's name needs no grammar change
    with pytest.raises(UnknownName, match="must be a number"):
        targets.parse("pgd@eight")
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        targets.parse("pgd@8:steps")
    with pytest.raises(ConfigError, match="looks like a fraction"):
        targets.parse("pgd@0.031").attack_params()
    with pytest.raises(ConfigError, match="looks like a fraction"):
        targets.parse("pgd@8:alpha=0.007")
    assert targets.split_specs("fgsm@8,oneshot:pgd@8:steps=20,alpha=2,-params") == [
        "fgsm@8", "oneshot:pgd@8:steps=20,alpha=2", "-params",
    ]  # fmt: skip


def _attack_settings(target_text: str) -> dict:
    """The full settings (defaults filled in) of the attack ``oneshot:TARGET`` builds."""
    seen = {}
    real = attacks.get

    def spy(name, model, **params):
        seen.update(attacks.validate_params(name, params))
        return real(name, model, **params)

    import torch

    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3))
    x, y = torch.rand(2, 3, 2, 2), torch.tensor([0, 1])
    attacks.get = spy
    try:
        accuracy(model, x, y, parse_target(target_text))
    finally:
        attacks.get = real
    return seen


def test_pgd_at_8_means_the_same_in_evaluate_and_in_oneshot():
    """``pgd@8`` is PGD-10 (steps of 2/255) in ``robnas evaluate`` and in ``oneshot:pgd@8``;
    RobNets' PGD-20 is written ``pgd@8:steps=20`` in both."""
    for text in ("pgd@8", "pgd@8:steps=20", "fgsm@4"):
        ((name, params),) = parse_attack(text)
        assert _attack_settings(text) == attacks.validate_params(name, params), text
    assert _attack_settings("pgd@8")["steps"] == 10
    assert _attack_settings("pgd@8:steps=20")["steps"] == 20


def test_robnets_default_objective_is_pgd20():
    from robnas.search.robnets import DEFAULT_OBJECTIVE

    assert DEFAULT_OBJECTIVE == "oneshot-finetune:pgd@8:steps=20"


def test_benchmark_targets_read_the_same_grammar_and_refuse_settings():
    from robnas.benchmarks.robustness import parse_target as bench_target

    assert bench_target("pgd@8.0").name == "pgd@8" and bench_target("hrs_fgsm@1").kind == "hrs"
    assert bench_target("cc_fog@3").name == "fog@3"
    with pytest.raises(ConfigError, match="no settings"):
        bench_target("pgd@8:steps=20")
    with pytest.raises(ConfigError, match="looks like a fraction"):
        bench_target("fgsm@0.031")


def test_wsr_strengths_are_in_1_255_and_the_fraction_form_is_refused():
    from robnas.search.base import make_strategy

    assert make_strategy("wsr-nas", {"pgd_eps": "8,16,24"}).config().pgd_eps == (8 / 255, 16 / 255, 24 / 255)
    assert make_strategy("wsr-nas", {}).config().pgd_eps == (0.03, 0.06, 0.09)  # the reference's, exactly
    with pytest.raises(ConfigError, match="write pgd_eps=7.65,15.3,22.95"):
        make_strategy("wsr-nas", {"pgd_eps": "0.03,0.06,0.09"}).config()
    with pytest.raises(ConfigError, match="write naive_eps=7.65,"):
        make_strategy("wsr-naive", {"naive_eps": "0.03,0.045,0.06,0.075,0.09,0.105"}).config()


def test_robnets_fsp_attack_eps_is_an_option_in_1_255():
    from robnas.search.base import make_strategy

    assert make_strategy("robnets", {"fsp_eps": "4"}).fsp_eps == 4
    with pytest.raises(ConfigError, match="looks like a fraction"):
        make_strategy("robnets", {"fsp_eps": "0.031"}).check()


def test_pipeline_train_options_take_eps_in_1_255_as_the_command_line():
    from robnas.train.recipes import parse_settings, settings_from_255

    assert settings_from_255({"eps": 8, "step_size": 2, "steps": 7}) == parse_settings(["eps=8", "step_size=2", "steps=7"])
    assert settings_from_255({"eps": 7.905})["eps"] == 0.031  # Wsr-NAS's retraining budget, exactly
    with pytest.raises(ConfigError, match="write eps=7.905 for 0.031"):
        settings_from_255({"eps": 0.031})
