"""``robnas evaluate``: clean, adversarial and corruption accuracy of one model."""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
from rich.progress import Progress

from robnas.cli.app import app, console, friendly, progress_bar, refuse_overwriting_inputs, sized_data


@app.command("evaluate")
@friendly
def evaluate_command(
    model: str = typer.Option(
        ...,
        "--model",
        help="SPACE:ARCH or a zoo name (both with --weights), a training checkpoint .pt, or a training run folder "
        "(its best.pt, else last.pt).",
    ),
    data: str = typer.Option(
        ..., "--data", help="Test data: a .npz with x_test/y_test, or a robnas data spec."
    ),
    weights: Path | None = typer.Option(
        None, "--weights", help="state_dict or checkpoint with a 'model' key."
    ),
    random_weights: bool = typer.Option(
        False,
        "--random-weights",
        help="Evaluate an untrained, randomly initialised network when there are no weights (else refused).",
    ),
    attacks: list[str] = typer.Option(
        [],
        "--attacks",
        help="e.g. fgsm@8,pgd@8:steps=20,alpha=2 or preset:croze-eval. eps, alpha and delta are in 1/255 "
        "(8 = 8/255); a value below 0.1 looks like a fraction of [0, 1] and is refused.",
    ),
    corruptions: list[str] = typer.Option([], "--corruptions", help="all | fog,snow | fog@3 (severity 1-5)."),
    image_size: int | None = typer.Option(
        None, "--image-size", help="Resize the images of --data imagefolder:DIR to N x N (as in training)."
    ),
    split: str = typer.Option("test", "--split", help="Split of a .npz to evaluate (x_<split>, y_<split>)."),
    limit: int | None = typer.Option(None, "--limit", help="Evaluate the first N images only."),
    batch_size: int = typer.Option(128, "--batch-size"),
    device: str = typer.Option("auto", "--device", help="auto (cuda if available), cpu, cuda, cuda:N."),
    normalize: bool | None = typer.Option(
        None,
        "--normalize/--no-normalize",
        help="Prepend Normalize(MEAN_STD of the data set). Default: the checkpoint's record, else normalise.",
    ),
    dataset: str | None = typer.Option(
        None, "--dataset", help="Name for MEAN_STD (default: guessed from --data)."
    ),
    num_classes: int | None = typer.Option(None, "--num-classes", help="Default: read from the weights."),
    model_option: list[str] = typer.Option([], "--model-option", help="Builder option KEY=VALUE, e.g. C=8."),
    corruption_preset: str | None = typer.Option(
        None, "--corruption-preset", help="cifar | imagenet16 | imagenet (default: from the image size)."
    ),
    corruption_root: Path | None = typer.Option(
        None, "--corruption-root", help="Read CIFAR-10-C .npy files from this folder instead of generating."
    ),
    train_data: str | None = typer.Option(
        None, "--train-data", help="Training split for lgv (e.g. the .npz)."
    ),
    seed: int = typer.Option(0, "--seed"),
    amp: bool = typer.Option(
        False, "--amp/--no-amp", help="bfloat16 autocast for clean/corruption passes (CUDA)."
    ),
    out: Path = typer.Option(Path("evaluation"), "--out", help="Output folder."),
) -> None:
    """Evaluate a model on clean data, adversarial attacks and common corruptions.

    Images are fed in [0, 1]; the model gets a Normalize layer unless --no-normalize (or the
    checkpoint says it was trained without one). Writes evaluation.csv, evaluation.json (rows
    and summary) and figures to --out. Every finished row is saved at once; a rerun into the
    same --out with the same model and settings keeps the finished rows and computes the rest,
    one with other settings (model, weights, data, limit, seed, ...) is refused.
    """

    from robnas import data as data_lib
    from robnas import evaluate as ev
    from robnas import models
    from robnas.runtime import resolve_device

    refuse_overwriting_inputs(
        {"--out": out},
        {"--model": model if Path(model).is_file() else None, "--data": data, "--weights": weights,
         "--train-data": train_data, "--corruption-root": corruption_root},
    )  # fmt: skip
    data = sized_data(data, image_size)
    train_data = sized_data(train_data, image_size) if train_data else None
    arrays = data_lib.load(data, split=split) if data.endswith(".npz") else data_lib.load(data, split="test")
    attack_specs, corruption_specs = _perturbations(attacks, corruptions)
    options = models.parse_options(model_option)
    wrapped, info = _network(
        model, weights, num_classes, normalize, dataset or arrays.name, None if dataset else arrays.stats,
        random_weights, seed, options,
    )  # fmt: skip
    train = data_lib.load(train_data, split="train").tensors() if train_data else None
    dev = resolve_device(device)
    settings = _settings(
        model, weights, options, num_classes, data, split, info, limit, batch_size, seed, corruption_preset,
        corruption_root, train_data, amp, dev.type,
    )  # fmt: skip
    meta = _meta(model, weights, data, limit, str(dev), seed, settings, info, arrays)
    with progress_bar() as bar:
        rows = ev.run_in_folder(
            out, settings, wrapped, arrays, attack_specs, corruption_specs, meta=meta, log=_log,
            batch_size=batch_size, limit=limit, device=device, seed=seed, corruption_preset=corruption_preset,
            corruption_root=corruption_root, train_data=train, amp=amp, progress=_bar_tasks(bar),
        )  # fmt: skip
    _report(rows, out)


def _perturbations(attacks: list[str], corruptions: list[str]) -> tuple[list[str], list[str]]:
    """The attack and corruption specs of the repeatable, comma-separated options; a bad attack
    spec is reported now, before a network is built."""
    from robnas import evaluate as ev
    from robnas import targets

    attack_specs, corruption_specs = targets.split_specs(attacks), targets.split_specs(corruptions)
    for spec in attack_specs:
        ev.parse_attack(spec)
    return attack_specs, corruption_specs


def _log(line: str) -> None:
    console.print(line, highlight=False, soft_wrap=True)


def _bar_tasks(bar: Progress) -> Callable[[str, int, int], None]:
    """A ``progress(label, done, total)`` callback showing one task of ``bar`` per label."""
    tasks: dict[str, int] = {}

    def progress(label: str, done: int, total: int) -> None:
        if label not in tasks:
            tasks[label] = bar.add_task(label, total=total or None)
        bar.update(tasks[label], completed=done)

    return progress


def _report(rows: list[dict[str, Any]], out: Path) -> None:
    """Draw the figures into ``out``, print one line per row, the summary and the files written."""
    from robnas import evaluate as ev

    summ = ev.summary(rows)
    figures = ev.plot(rows, out)
    for row in rows:
        typer.echo(f"{row['label']:<32} accuracy {row['accuracy']:.4f}  (n={row['n']})")
    typer.echo(json.dumps({k: summ[k] for k in ("clean_accuracy", "mean_corruption_accuracy")}))
    typer.echo(
        f"wrote {out / ev.CSV_NAME}, {out / ev.JSON_NAME}" + "".join(f", {f}" for f in figures)
    )


def _network(
    model: str, weights: Path | None, num_classes: int | None, normalize: bool | None, dataset: str,
    stats: Any, random_weights: bool, seed: int, options: dict[str, Any],
) -> tuple[Any, dict[str, Any]]:  # fmt: skip
    """The network to evaluate (:func:`robnas.models.load_model`), warning loudly when its
    weights are random."""
    import torch

    from robnas import models

    torch.manual_seed(seed)  # random weights (--random-weights) are the same in a rerun
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        wrapped, info = models.load_model(
            model, weights, num_classes=num_classes, normalize=normalize, dataset=dataset, stats=stats,
            allow_random=random_weights, **options,
        )  # fmt: skip
    if info.get("random_weights"):
        console.print(
            f"WARNING: {model} has RANDOM, untrained weights; its accuracy means nothing",
            style="bold red",
            markup=False,
        )
    return wrapped, info


def _settings(
    model: str, weights: Path | None, options: dict[str, Any], num_classes: int | None, data: str, split: str,
    info: dict[str, Any], limit: int | None, batch_size: int, seed: int, corruption_preset: str | None,
    corruption_root: Path | None, train_data: str | None, amp: bool, device: str,
) -> dict[str, Any]:  # fmt: skip
    """Everything the rows of an evaluation depend on: its identity in --out."""
    from robnas import evaluate as ev

    return {
        "model": None if Path(model).is_file() else model,  # a checkpoint is known by its bytes
        "model_sha256": ev.file_digest(model) if Path(model).is_file() else None,
        "weights_sha256": ev.file_digest(weights) if weights else None,
        "model_options": options,
        "num_classes": num_classes,
        "data": _identify(data),
        "split": split,
        "normalize": info["normalize"],
        "random_weights": bool(info.get("random_weights")),
        "limit": limit,
        "batch_size": batch_size,
        "seed": seed,
        "corruption_preset": corruption_preset,
        "corruption_root": str(corruption_root.resolve()) if corruption_root else None,
        "train_data": _identify(train_data) if train_data else None,
        "amp": amp,
        "device": device,
    }


def _meta(
    model: str, weights: Path | None, data: str, limit: int | None, device: str, seed: int,
    settings: dict[str, Any], info: dict[str, Any], arrays: Any,
) -> dict[str, Any]:  # fmt: skip
    """What ``evaluation.json`` records about the run besides its settings: the model, the data,
    the device, what loading the model found and the class counts of the evaluated images."""
    return {
        "model": model,
        "weights": str(weights) if weights else None,
        "data": data,
        "limit": limit,
        "device": device,
        "normalize": settings["normalize"],
        "seed": seed,
        **{k: v for k, v in info.items() if k not in ("spec", "normalize")},
        **({"classes": arrays.class_counts()} if arrays.classes is not None else {}),  # the evaluated images
    }


def _identify(spec: str) -> str:
    """A data spec as part of an evaluation's identity: a file by absolute path and size."""
    path = Path(spec)
    if path.is_file():
        return f"{path.resolve()} ({path.stat().st_size} bytes)"
    kind, sep, rest = spec.partition(":")
    if sep and kind.partition("@")[0] == "imagefolder":  # the folder by its files, wherever it is
        from robnas.data import imagefolder_fingerprint

        return f"{kind}:{Path(rest).resolve()} (files {imagefolder_fingerprint(spec)})"
    return spec
