"""robnas.models: one place to build, load and wrap a model; one normalisation wrapper."""

from __future__ import annotations

import subprocess
import sys
import warnings

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from robnas import attacks, data, models, spaces
from robnas.data import Normalize
from robnas.errors import ConfigError, DataError, RobnasError

ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
SPEC = f"nb201:{ARCH}"
MEAN, STD = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)


def _net() -> nn.Module:
    torch.manual_seed(0)
    return models.build_model(SPEC, 10, C=4, N=1).eval()


def test_one_wrapper_with_one_state_dict_layout():
    net = _net()
    wrapped = models.normalized(net, MEAN, STD)
    keys = set(wrapped.state_dict())
    assert {"normalize.mean", "normalize.std"} <= keys
    assert all(k.startswith(("normalize.", "net.")) for k in keys)
    assert wrapped[0] is wrapped.normalize and wrapped[1] is wrapped.net is net
    mean, std = wrapped.mean_std
    assert mean == pytest.approx(MEAN) and std == pytest.approx(STD)
    x = torch.rand(2, 3, 16, 16)
    manual = net((x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1))
    assert torch.allclose(wrapped(x), manual)
    # re-wrapping never normalises twice; the attacks' wrapper is the same class
    assert models.normalized(wrapped, MEAN, STD).net is net
    assert isinstance(attacks.with_normalization(net, MEAN, STD), models.NormalizedNet)
    assert set(models.normalized(net, None, None).state_dict()) == {f"net.{k}" for k in net.state_dict()}


@pytest.mark.parametrize("layout", ["bare", "wrapper", "old-sequential", "ddp"])
def test_weights_load_from_every_layout(layout, tmp_path):
    net = _net()
    if layout == "bare":
        state = net.state_dict()
    elif layout == "wrapper":
        state = models.normalized(net, MEAN, STD).state_dict()
    elif layout == "old-sequential":  # what attacks.with_normalization used to save
        state = nn.Sequential(Normalize(MEAN, STD), net).state_dict()
    else:
        state = {f"module.{k}": v for k, v in net.state_dict().items()}
    torch.save(state, tmp_path / "w.pt")
    model, info = models.resolve_model(SPEC, 10, tmp_path / "w.pt", C=4, N=1)
    x = torch.rand(2, 3, 16, 16)
    assert torch.allclose(model.eval()(x), net(x))
    if layout in ("wrapper", "old-sequential"):  # the wrapper's statistics are recorded
        assert info["normalize"]["mean"] == pytest.approx(list(MEAN))
        wrapped, _ = models.load_model(SPEC, tmp_path / "w.pt", C=4, N=1)
        assert torch.allclose(wrapped(x), models.normalized(net, MEAN, STD)(x))
    # and into a wrapper
    target = models.normalized(models.build_model(SPEC, 10, C=4, N=1), MEAN, STD)
    models.load_weights(target, tmp_path / "w.pt")
    assert torch.allclose(target.net.eval()(x), net(x))


def test_final_checkpoint_prefers_best(tmp_path):
    with pytest.raises(DataError, match="best.pt or last.pt"):
        models.final_checkpoint(tmp_path)
    (tmp_path / "last.pt").write_bytes(b"")
    assert models.final_checkpoint(tmp_path) == tmp_path / "last.pt"
    (tmp_path / "best.pt").write_bytes(b"")
    assert models.final_checkpoint(tmp_path) == tmp_path / "best.pt"


def test_load_model_refuses_random_weights_unless_asked():
    with pytest.raises(ConfigError, match="--random-weights"):
        models.load_model("robnet_large_v1")
    with pytest.raises(ConfigError, match="allow_random=True"):
        models.load_model(SPEC, C=4, N=1)
    with pytest.warns(RuntimeWarning, match="RANDOM"):
        wrapped, info = models.load_model(SPEC, allow_random=True, C=4, N=1)
    assert info["random_weights"] is True and isinstance(wrapped, models.NormalizedNet)


def test_load_model_from_a_training_run(tmp_path):
    from robnas.train import fit

    net = models.build_model(SPEC, 10, C=4, N=1)
    meta = {"arch": SPEC, "arch_options": {"C": 4, "N": 1}}
    fit(net, data.synthetic(24, size=16), "standard", tmp_path, epochs=1, batch_size=8, meta=meta, device="cpu")
    wrapped, info = models.load_model(tmp_path)
    assert info["checkpoint"] == str(tmp_path / "best.pt")
    assert info["normalize"] == {"mean": [0.5] * 3, "std": [0.25] * 3}  # as trained (synthetic data)
    same, _ = models.load_trained(tmp_path / "best.pt", models.build_model(SPEC, 10, C=4, N=1))
    x = torch.rand(2, 3, 16, 16)
    assert torch.allclose(wrapped(x), same(x))


def test_cli_evaluate_refuses_a_zoo_model_without_weights(tmp_path):
    from robnas.cli import app

    args = ["evaluate", "--model", "robnet_large_v1", "--data", "synthetic:8", "--out", str(tmp_path)]
    refused = CliRunner().invoke(app, args)
    assert refused.exit_code == 2, refused.output
    assert "no trained weights" in refused.output and "--random-weights" in refused.output
    args = [
        "evaluate", "--model", SPEC, "--model-option", "C=4", "--model-option", "N=1", "--data", "synthetic:8",
        "--random-weights", "--device", "cpu", "--out", str(tmp_path),
    ]  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        done = CliRunner().invoke(app, args)
    assert done.exit_code == 0, done.output
    assert "RANDOM" in done.output


def test_importing_the_library_does_not_import_the_command_line():
    code = (
        "import sys, robnas.train, robnas.models, robnas.evaluate; "
        "bad = [m for m in sys.modules if m == 'typer' or m.startswith('robnas.cli')]; "
        "assert not bad, bad"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr


def test_a_zoo_model_with_its_weights(tmp_path):
    torch.manual_seed(0)
    net = models.build_model("darts_v2", 7, C=8, layers=5).eval()
    torch.save({"state_dict": net.state_dict()}, tmp_path / "darts.pth")
    wrapped, info = models.load_model("darts_v2", tmp_path / "darts.pth", C=8, layers=5, dataset="cifar100")
    assert info["arch"] == "darts_v2" and "random_weights" not in info
    assert info["normalize"]["mean"] == pytest.approx(list(data.MEAN_STD["cifar100"][0]))
    x = torch.rand(2, 3, 32, 32)
    assert wrapped(x).shape == (2, 7)  # the classes come from the weights
    assert torch.allclose(wrapped(x), models.normalized(net, *data.MEAN_STD["cifar100"])(x))


def test_a_long_genotype_spec_is_not_taken_for_a_path():
    spec = "darts:" + repr(spaces.get("darts").sample(0)) * 3
    with pytest.raises(RobnasError):  # an invalid genotype text, reported as such (not an OSError)
        models.load_model(spec, allow_random=True, C=4, layers=5)
    arch = spaces.get("darts-croze").sample(0)
    with pytest.warns(RuntimeWarning, match="RANDOM"):
        net, info = models.load_model(f"darts-croze:{spaces.get('darts-croze').format(arch)}", allow_random=True,
                                      C=4, layers=5)  # fmt: skip
    assert len(f"darts-croze:{arch}") > 255 and info["random_weights"]
