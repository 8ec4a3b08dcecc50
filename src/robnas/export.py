"""Export a trained network to a file that runs without robnas: TorchScript or ONNX.

The exported graph is the network in eval mode *behind its input normalisation*
(:class:`robnas.models.NormalizedNet`), so it takes images in [0, 1], shape (B, 3, H, W), float32,
and returns (B, num_classes) logits; the batch size is free. After writing, the file is loaded
back (``torch.jit.load``, or an ``onnxruntime`` session) and run on a batch of random images; the
largest absolute difference from the PyTorch model is returned, and :func:`export_model` raises
an :class:`ExportMismatch` when it exceeds ``tolerance`` (1e-4).

What robnas knows about the model (architecture, classes, class names, normalisation, image
size) travels inside the file as ``robnas.json``: an extra file of the TorchScript archive, a
``metadata_props`` entry of the ONNX model.

>>> from robnas.export import export_model
>>> result = export_model("runs/a/best.pt", "a.pt", "torchscript")  # doctest: +SKIP
>>> import torch; torch.jit.load("a.pt")(images)  # images in [0, 1]  # doctest: +SKIP

ONNX needs the ``onnx`` extra (``pip install 'robnas[onnx]'``: onnx, onnxruntime, onnxscript).
"""

from __future__ import annotations

import contextlib
import inspect
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from robnas.errors import ConfigError, RobnasError

FORMATS = ("torchscript", "onnx")
#: The largest difference from the PyTorch model an export may show.
TOLERANCE = 1e-4
META_NAME = "robnas.json"


class ExportMismatch(RobnasError):
    """The exported model's outputs differ from the PyTorch model's by more than the tolerance."""


@dataclass(frozen=True)
class ExportResult:
    """Where the model went, in which format, and how far its outputs are from PyTorch's."""

    path: Path
    format: str
    max_abs_diff: float
    batch_shape: tuple[int, ...]
    meta: dict[str, Any]


def _onnx_modules() -> tuple[Any, Any]:
    try:
        import onnx
        import onnxruntime
    except ImportError as exc:
        raise ConfigError(
            f"ONNX export needs the onnx and onnxruntime packages ({exc.name} is missing): "
            "pip install 'robnas[onnx]'"
        ) from None
    return onnx, onnxruntime


def _write_torchscript(model: nn.Module, example: Tensor, path: Path, meta: dict[str, Any]) -> None:
    with torch.no_grad():
        traced = torch.jit.trace(model, example, check_trace=False)
    torch.jit.save(traced, str(path), _extra_files={META_NAME: json.dumps(meta)})


def _run_torchscript(path: Path, images: Tensor) -> Tensor:
    loaded = torch.jit.load(str(path), map_location="cpu")
    with torch.no_grad():
        return loaded(images)


def _write_onnx(model: nn.Module, example: Tensor, path: Path, meta: dict[str, Any], opset: int) -> None:
    onnx, _ = _onnx_modules()
    names: dict[str, Any] = {"input_names": ["images"], "output_names": ["logits"]}
    if "external_data" in inspect.signature(torch.onnx.export).parameters:
        names["external_data"] = False  # one self-contained file
    quiet = io.StringIO()
    with contextlib.redirect_stdout(quiet), torch.no_grad():
        if "dynamo" in inspect.signature(torch.onnx.export).parameters:  # the torch.export-based exporter
            batch = torch.export.Dim("batch", min=1)
            torch.onnx.export(
                model, (example,), str(path), dynamo=True, dynamic_shapes=({0: batch},), opset_version=opset,
                verbose=False, **names,
            )  # fmt: skip
        else:  # torch < 2.5: the TorchScript-based exporter
            torch.onnx.export(
                model, (example,), str(path), opset_version=opset,
                dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}}, **names,
            )  # fmt: skip
    proto = onnx.load(str(path))
    entry = proto.metadata_props.add()
    entry.key, entry.value = META_NAME, json.dumps(meta)
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))


def _run_onnx(path: Path, images: Tensor) -> Tensor:
    _, ort = _onnx_modules()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (out,) = session.run(["logits"], {"images": images.numpy()})
    return torch.from_numpy(out)


def export(
    model: nn.Module,
    path: str | Path,
    fmt: str,
    input_size: tuple[int, int, int] = (3, 32, 32),
    *,
    batch_size: int = 8,
    seed: int = 0,
    meta: dict[str, Any] | None = None,
    opset: int = 18,
) -> ExportResult:
    """Write ``model`` (taking [0, 1] images; put in eval mode on the CPU) to ``path`` in format
    ``fmt`` (``torchscript`` or ``onnx``), load it back, run both on ``batch_size`` random images
    of ``input_size`` (C, H, W) drawn with ``seed`` and return the largest absolute difference."""
    if fmt not in FORMATS:
        raise ConfigError(f"unknown export format {fmt!r}; expected {' or '.join(FORMATS)}")
    if batch_size < 1:
        raise ConfigError(f"the check batch needs at least one image, got {batch_size}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.cpu().eval()
    generator = torch.Generator().manual_seed(seed)
    example = torch.rand((2, *input_size), generator=generator)
    images = torch.rand((batch_size, *input_size), generator=generator)  # another batch size than traced
    c, h, w = input_size
    meta = {**(meta or {}), "input": f"float32 images in [0, 1], shape (B, {c}, {h}, {w})"}
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        if fmt == "torchscript":
            _write_torchscript(model, example, tmp, meta)
            got = _run_torchscript(tmp, images)
        else:
            _write_onnx(model, example, tmp, meta, opset)
            got = _run_onnx(tmp, images)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    with torch.no_grad():
        want = model(images)
    diff = float((got.float() - want.float()).abs().max())
    return ExportResult(path, fmt, diff, tuple(images.shape), meta)


def export_model(
    spec: str | Path,
    out: str | Path,
    fmt: str,
    *,
    weights: str | Path | None = None,
    allow_random: bool = False,
    num_classes: int | None = None,
    normalize: bool | None = None,
    dataset: str | None = None,
    image_size: int | None = None,
    batch_size: int = 8,
    seed: int = 0,
    tolerance: float = TOLERANCE,
    **options: Any,
) -> ExportResult:
    """Export the model ``robnas evaluate`` would load from ``spec`` (a checkpoint or run folder,
    or ``SPACE:ARCH`` / a zoo name with ``weights`` or ``allow_random``), normalisation included.

    The image size is ``image_size``, else the one the checkpoint recorded, else the zoo entry's,
    else 32. Raises :class:`ExportMismatch` (after writing the file) when the exported model's
    outputs differ from PyTorch's by more than ``tolerance``.
    """
    from robnas import zoo
    from robnas.models import load_model

    torch.manual_seed(seed)  # random weights (allow_random) are the same in every export
    model, info = load_model(
        str(spec), weights, num_classes=num_classes, normalize=normalize, dataset=dataset,
        allow_random=allow_random, **options,
    )  # fmt: skip
    arch = str(info.get("arch", spec))
    recorded = info.get("image_size")
    if image_size is not None:
        hw = (int(image_size), int(image_size))
    elif isinstance(recorded, list | tuple) and len(recorded) == 2:
        hw = (int(recorded[0]), int(recorded[1]))
    elif ":" not in arch and arch in zoo.list_models():
        hw = zoo.get_entry(arch).input_size[1:]
    else:
        hw = (32, 32)
    classes = [m.out_features for m in model.modules() if isinstance(m, nn.Linear)][-1:]
    meta = {
        "arch": arch,
        "model_options": info.get("model_options") or options or {},
        "num_classes": classes[0] if classes else None,
        "classes": list(info["classes"]) if info.get("classes") else None,
        "normalize": info.get("normalize"),
        "image_size": list(hw),
        "source": str(spec),
        "random_weights": bool(info.get("random_weights")),
    }
    result = export(model, out, fmt, (3, *hw), batch_size=batch_size, seed=seed, meta=meta)
    if not result.max_abs_diff <= tolerance:
        raise ExportMismatch(
            f"{result.path}: the exported model differs from the PyTorch model by {result.max_abs_diff:.3g} "
            f"(> {tolerance:g}) on {batch_size} images"
        )
    return result


__all__ = ["FORMATS", "TOLERANCE", "ExportMismatch", "ExportResult", "export", "export_model"]
