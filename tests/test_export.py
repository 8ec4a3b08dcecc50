"""``robnas export``: TorchScript and ONNX files that take [0, 1] images, normalisation inside,
checked against the PyTorch model for a zoo model, an NB201 network and a DARTS network."""

from __future__ import annotations

import importlib.util
import itertools
import json

import pytest
import torch
from typer.testing import CliRunner

from robnas import export, models
from robnas.cli import app
from robnas.errors import ConfigError

NB201 = "nb201:|nor_conv_3x3~0|+|skip_connect~0|nor_conv_3x3~1|+|skip_connect~0|none~1|avg_pool_3x3~2|"
DARTS = (
    "darts:Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), "
    "('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], normal_concat=[2, 3, 4, 5], "
    "reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0), "
    "('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])"
)
HAS_ONNX = all(importlib.util.find_spec(m) for m in ("onnx", "onnxruntime", "onnxscript"))
FORMATS = [
    "torchscript",
    pytest.param(
        "onnx",
        marks=pytest.mark.skipif(not HAS_ONNX, reason="onnx, onnxruntime or onnxscript not installed (robnas[onnx])"),
    ),
]


@pytest.fixture(scope="module")
def nb201_run(tmp_path_factory: pytest.TempPathFactory):
    """A one-epoch NB201 training run: a checkpoint with its normalisation recorded."""
    out = tmp_path_factory.mktemp("nb201") / "run"
    result = CliRunner().invoke(
        app, ["train", "--arch", NB201, "--arch-opt", "C=4", "--arch-opt", "N=1", "--data", "synthetic:16",
              "--epochs", "1", "--batch-size", "8", "--out", str(out), "--no-progress", "--device", "cpu"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return out


def _exported_output(path, fmt: str, x: torch.Tensor) -> torch.Tensor:
    if fmt == "torchscript":
        return torch.jit.load(str(path))(x)
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return torch.from_numpy(session.run(None, {"images": x.numpy()})[0])


def _metadata(path, fmt: str) -> dict:
    if fmt == "torchscript":
        files = {export.META_NAME: ""}
        torch.jit.load(str(path), _extra_files=files)
        return json.loads(files[export.META_NAME])
    import onnx

    props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    return json.loads(props[export.META_NAME])


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("which", ["zoo", "nb201", "darts"])
def test_round_trip(which: str, fmt: str, nb201_run, tmp_path) -> None:
    if which == "zoo":  # a WideResNet of the zoo, made small through its build options
        argv = ["--model", "wrn_28_10", "--random-weights", "--model-option", "depth=10",
                "--model-option", "widen_factor=1"]  # fmt: skip
    elif which == "nb201":
        argv = ["--model", str(nb201_run / "last.pt")]
    else:
        argv = ["--model", DARTS, "--random-weights", "--model-option", "C=4", "--model-option", "layers=2"]
    out = tmp_path / f"m.{'pt' if fmt == 'torchscript' else 'onnx'}"
    result = CliRunner().invoke(app, ["export", *argv, "--format", fmt, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "largest difference from PyTorch on 8 images" in result.output
    # the contract: the file alone, on images in [0, 1], gives the logits of the robnas model
    options = models.parse_options([b for a, b in itertools.pairwise(argv) if a == "--model-option"])
    torch.manual_seed(0)  # the seed of --random-weights
    model, info = models.load_model(argv[1], allow_random="--random-weights" in argv, **options)
    x = torch.rand(5, 3, 32, 32)
    with torch.no_grad():
        want = model(x)
    got = _exported_output(out, fmt, x)
    assert got.shape == want.shape and float((got - want).abs().max()) <= 1e-4
    meta = _metadata(out, fmt)
    assert meta["normalize"] == info["normalize"] and meta["image_size"] == [32, 32]
    assert meta["num_classes"] == 10


def test_normalisation_is_inside_the_graph(nb201_run, tmp_path) -> None:
    out = tmp_path / "m.pt"
    export.export_model(str(nb201_run / "last.pt"), out, "torchscript")
    wrapped, info = models.load_model(str(nb201_run / "last.pt"))
    mean = torch.tensor(info["normalize"]["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(info["normalize"]["std"]).view(1, 3, 1, 1)
    x = torch.rand(4, 3, 32, 32)
    with torch.no_grad():
        inside = torch.jit.load(str(out))(x)
        assert torch.allclose(inside, wrapped.net((x - mean) / std), atol=1e-5)
        assert not torch.allclose(inside, wrapped.net(x), atol=1e-3)


def test_mismatch_and_bad_format_fail(nb201_run, tmp_path) -> None:
    with pytest.raises(export.ExportMismatch, match="differs from the PyTorch model"):
        export.export_model(str(nb201_run / "last.pt"), tmp_path / "m.pt", "torchscript", tolerance=-1.0)
    with pytest.raises(ConfigError, match="torchscript or onnx"):
        export.export_model(str(nb201_run / "last.pt"), tmp_path / "m.x", "tflite")
    result = CliRunner().invoke(app, ["export", "--model", "resnet18", "--format", "torchscript", "--out",
                                      str(tmp_path / "r.pt")])  # fmt: skip
    assert result.exit_code == 2 and "--random-weights" in result.output
    assert not (tmp_path / "r.pt").exists()
