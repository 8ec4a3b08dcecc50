"""The hand-designed baselines of robust training: exact sizes, reference parameter names, and
use through the zoo by ``robnas train`` and ``robnas evaluate``."""

from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

from robnas import baselines, zoo
from robnas.cli import app

# Exact parameter counts (10 classes) of the reference implementations each docstring names:
# kuangliu/pytorch-cifar ResNet18 (Madry et al., Rice et al.), locuslab/robust_overfitting
# PreActResNet18 (Rice et al. 2020), the WideResNet of Zagoruyko & Komodakis (WRN-28-10, 36.5M
# in their Table 1) and of TRADES (WRN-34-10).
EXACT = {"resnet18": 11_173_962, "preact_resnet18": 11_172_170, "wrn_28_10": 36_479_194, "wrn_34_10": 46_160_474}


@pytest.mark.parametrize(("name", "count"), EXACT.items())
def test_parameter_counts_are_exact(name: str, count: int) -> None:
    with torch.device("meta"):
        net = zoo.create_model(name)
    assert sum(p.numel() for p in net.parameters()) == count
    info = zoo.model_info(name)
    assert info.space == "baseline" and info.input_size == (3, 32, 32)
    if info.reported_params_m is not None:
        assert round(count / 1e6, 1) == info.reported_params_m


def test_reference_variants_and_parameter_names() -> None:
    with torch.device("meta"):
        preact = baselines.preact_resnet18()
        trades = baselines.wide_resnet(34, 10, sub_block1=True)
        hundred = zoo.create_model("wrn_28_10", num_classes=100)
    # without the final BN (512 weights + 512 biases) it is kuangliu's PreActResNet18
    assert sum(p.numel() for p in preact.parameters()) - 1024 == 11_171_146
    # TRADES' checkpoints hold an unused copy of block1: its keys must be there to load them
    keys = set(trades.state_dict())
    assert {"sub_block1.layer.0.convShortcut.weight", "block3.layer.4.conv2.weight", "fc.bias"} <= keys
    assert hundred.fc.out_features == 100
    assert {"layer4.1.shortcut.0.weight", "bn.weight", "linear.weight"} & set(preact.state_dict()) == {
        "bn.weight",
        "linear.weight",
    }
    with pytest.raises(ValueError, match="6n \\+ 4"):
        baselines.wide_resnet(30, 10)


@pytest.mark.parametrize(
    "build",
    [baselines.resnet18, baselines.preact_resnet18, lambda: baselines.wide_resnet(16, 1, drop_rate=0.3)],
    ids=["resnet18", "preact_resnet18", "wrn_16_1"],
)
def test_forward_backward(build) -> None:
    torch.manual_seed(0)
    net = build()
    for size in (32, 24):  # global pooling: other image sizes run too
        logits = net(torch.randn(2, 3, size, size))
        assert logits.shape == (2, 10)
    logits.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in net.parameters() if p.grad is not None)


def test_train_and_evaluate_a_baseline(tmp_path) -> None:
    runner = CliRunner()
    trained = runner.invoke(
        app, ["train", "--arch", "preact_resnet18", "--data", "synthetic:24", "--epochs", "1", "--batch-size",
              "8", "--out", str(tmp_path / "run"), "--no-progress", "--device", "cpu"],
    )  # fmt: skip
    assert trained.exit_code == 0, trained.output
    evaluated = runner.invoke(
        app, ["evaluate", "--model", str(tmp_path / "run"), "--data", "synthetic:16", "--attacks", "fgsm@8",
              "--out", str(tmp_path / "eval"), "--device", "cpu"],
    )  # fmt: skip
    assert evaluated.exit_code == 0, evaluated.output
    assert "fgsm@8" in evaluated.output


def test_zoo_list_fits_80_columns(monkeypatch) -> None:
    from rich.console import Console

    import robnas.cli.zoo as zoo_cli

    monkeypatch.setattr(zoo_cli, "out", Console(width=80, record=True))
    result = CliRunner().invoke(app, ["zoo", "list", "r*"])  # the longest name and a baseline
    assert result.exit_code == 0, result.output
    text = zoo_cli.out.export_text()
    assert "…" not in text and max(len(line) for line in text.splitlines()) <= 80
    assert "11.174" in text and "resnet18" in text and "robnet_large_imagenet" in text
