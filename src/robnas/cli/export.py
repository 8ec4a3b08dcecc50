"""``robnas export``: a trained network as a TorchScript or ONNX file that runs without robnas."""

from __future__ import annotations

from pathlib import Path

import typer

from robnas.cli.app import app, console, friendly


@app.command("export")
@friendly
def export_command(
    model: str = typer.Option(
        ...,
        "--model",
        help="A training checkpoint .pt or run folder, or SPACE:ARCH / a zoo name with --weights or "
        "--random-weights (as robnas evaluate takes it).",
    ),
    fmt: str = typer.Option(..., "--format", help="torchscript | onnx (onnx: pip install 'robnas[onnx]')."),
    out: Path = typer.Option(..., "--out", help="The file to write, e.g. model.pt or model.onnx."),
    weights: Path | None = typer.Option(None, "--weights", help="state_dict or checkpoint with a 'model' key."),
    random_weights: bool = typer.Option(
        False, "--random-weights", help="Export an untrained network when there are no weights (else refused)."
    ),
    num_classes: int | None = typer.Option(None, "--num-classes", help="Default: read from the weights."),
    model_option: list[str] = typer.Option([], "--model-option", help="Builder option KEY=VALUE, e.g. C=8."),
    normalize: bool | None = typer.Option(
        None,
        "--normalize/--no-normalize",
        help="Put Normalize(mean, std) in the graph. Default: as the checkpoint records, else normalise.",
    ),
    dataset: str | None = typer.Option(None, "--dataset", help="Name for MEAN_STD when nothing is recorded."),
    image_size: int | None = typer.Option(
        None, "--image-size", help="Input size N x N (default: the checkpoint's, the zoo entry's, else 32)."
    ),
    batch_size: int = typer.Option(8, "--batch-size", help="Random images the exported model is checked on."),
    seed: int = typer.Option(0, "--seed", help="Seed of the check images (and of --random-weights)."),
) -> None:
    """Export a model with its input normalisation in the graph (eval mode; images in [0, 1]).

    After writing, the exported model is run on a batch and the largest difference from the
    PyTorch model is printed; above 1e-4 the command fails (exit status 2).
    """
    import warnings

    from robnas import models
    from robnas.export import export_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # exporters' deprecation chatter; random weights are said below
        result = export_model(
            model, out, fmt, weights=weights, allow_random=random_weights, num_classes=num_classes,
            normalize=normalize, dataset=dataset, image_size=image_size, batch_size=batch_size, seed=seed,
            **models.parse_options(model_option),
        )  # fmt: skip
    if result.meta.get("random_weights"):
        console.print(f"WARNING: {model} has RANDOM, untrained weights", style="bold red", markup=False)
    norm = result.meta.get("normalize")
    typer.echo(
        f"wrote {result.path} ({result.format}; {result.meta['arch']}; input {result.meta['input']}; "
        f"normalisation {'inside' if norm else 'none'})"
    )
    typer.echo(f"largest difference from PyTorch on {result.batch_shape[0]} images: {result.max_abs_diff:.3g}")
