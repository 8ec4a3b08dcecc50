"""``robnas train``: train one architecture with a named recipe, alone or under torchrun."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import torch
import typer

from robnas import models
from robnas.cli import app, console, friendly
from robnas.errors import ConfigError
from robnas.units import UNIT_RULE


def final_evaluation(
    model: torch.nn.Module, data_spec: str, out: Path, attacks: list[str], corruptions: list[str]
) -> Any:
    """``robnas.evaluate.run`` on the test split, written to ``final_eval.csv``."""
    from robnas import data, evaluate

    test = data.load(data_spec, split="test")
    result = evaluate.run(model, test.tensors(), attacks=attacks, corruptions=corruptions)
    evaluate.write_csv(result, out / "final_eval.csv")
    return result


def _split(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


class _EpochBar:
    """Draws the training loop's progress events: a bar per epoch and one line per finished epoch."""

    def __init__(self) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=True,
        )
        self.task: Any = None

    def __enter__(self) -> _EpochBar:
        self.bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.__exit__(*exc)

    def __call__(self, event: dict[str, Any]) -> None:
        kind = event["event"]
        if kind == "epoch_start":
            self.task = self.bar.add_task(f"epoch {event['epoch']}/{event['epochs']}", total=event["steps"])
        elif kind == "step" and self.task is not None:
            self.bar.advance(self.task)
        elif kind == "epoch_end":
            if self.task is not None:
                self.bar.remove_task(self.task)
                self.task = None
            row = event["row"]
            self.bar.console.log(
                f"epoch {row['epoch']}: loss {row['loss']:.4f} clean {row['train_clean_acc']:.3f} "
                f"val {row['val_clean_acc']:.3f}/{row['val_robust_acc']:.3f} {row['images_per_s']:.0f} img/s"
            )


@app.command("train")
@friendly
def train(
    arch: str = typer.Option(None, help="SPACE:ARCH (e.g. nb201:'|nor_conv_3x3~0|+...') or a zoo model name"),
    recipe: str = typer.Option("standard", help="training recipe (see --list-recipes)"),
    data: str = typer.Option(None, help=".npz, cifar10:ROOT, cifar100:ROOT, svhn:ROOT, imagenet16-120:ROOT"),
    out: Path = typer.Option(None, help="output folder: last.pt, best.pt, meta.json, log.csv"),
    epochs: int = typer.Option(None, help="total epochs (default: the recipe's); defines the schedule"),
    batch_size: int = typer.Option(None, help="global batch size (default: the recipe's)"),
    lr: float = typer.Option(None, help="peak learning rate (default: the recipe's)"),
    seed: int = typer.Option(0, help="seed for init, subset, split, data order, augmentation, attacks"),
    subset: int = typer.Option(None, help="train on N training images chosen with --seed"),
    val_fraction: float = typer.Option(0.1, help="held-out share of the training images for model selection"),
    resume: bool = typer.Option(False, help="continue from OUT/last.pt (exactly where it stopped)"),
    stop_after: int = typer.Option(None, help="stop after this epoch; the schedule still spans --epochs"),
    arch_opt: list[str] = typer.Option(None, help="network build option KEY=VALUE, e.g. C=8, N=1 (repeat)"),
    set_: list[str] = typer.Option(
        None, "--set", help=f"recipe setting KEY=VALUE, e.g. steps=10 or eps=8 (repeat); {UNIT_RULE}"
    ),
    device: str = typer.Option("auto", help="auto, cpu, cuda, cuda:1"),
    amp: bool = typer.Option(True, help="mixed precision on CUDA"),
    progress: bool = typer.Option(True, help="show a progress bar"),
    tensorboard: bool = typer.Option(False, help="also log to OUT/tensorboard"),
    final_eval: bool = typer.Option(False, help="evaluate best.pt on the test split with robnas.evaluate"),
    eval_attacks: str = typer.Option("fgsm,pgd", help="attacks for --final-eval, comma separated"),
    eval_corruptions: str = typer.Option("", help="corruptions for --final-eval, comma separated"),
    download: bool = typer.Option(False, help="download the data set if missing"),
    list_recipes: bool = typer.Option(False, "--list-recipes", help="list the recipes and exit"),
) -> None:
    """Train a network with a recipe (standard, pgd-at, trades, fast-at, ...); works under torchrun."""
    from robnas import data as data_mod
    from robnas import train as api

    if list_recipes:
        for name in api.names():
            typer.echo(f"{name}: {api.get(name).source}")
        return
    missing = [flag for flag, v in (("--arch", arch), ("--data", data), ("--out", out)) if v is None]
    if missing:
        raise ConfigError(f"missing {', '.join(missing)}")
    overrides = api.parse_settings(set_)
    if lr is not None:
        overrides["lr"] = lr
    chosen = api.get(recipe).replace(**overrides)  # every setting checked before any data is read
    info = api.setup(device)
    try:
        train_data = data_mod.random_subset(data_mod.load(data, "train", download=download), subset, seed)
        torch.manual_seed(seed)
        model = api.build_model(arch, train_data.num_classes, **api.parse_options(arch_opt))
        meta = {"arch": arch, "arch_options": api.parse_options(arch_opt), "data": data, "subset": subset}
        bar = _EpochBar() if progress and info.is_main else None
        with bar or contextlib.nullcontext():
            result = api.fit(
                model,
                train_data,
                chosen,
                out,
                epochs=epochs,
                batch_size=batch_size,
                seed=seed,
                val_fraction=val_fraction,
                resume=resume,
                stop_after=stop_after,
                amp=amp,
                progress=bar,
                tensorboard=tensorboard,
                meta=meta,
                dist_info=info,
            )
        if info.is_main:
            last = result.history[-1] if result.history else {}
            console.print(
                f"trained {result.epochs_done} epoch(s) -> {out}/last.pt"
                + (
                    f"; best epoch {result.best_epoch} (val {result.best_metric:.4f})"
                    if result.best_epoch
                    else ""
                )
                + (f"; {last['images_per_s']:.0f} img/s" if last else "")
            )
            if final_eval:
                net, _ = models.load_model(models.final_checkpoint(out))
                final_evaluation(net, data, out, _split(eval_attacks), _split(eval_corruptions))
    finally:
        api.teardown(info)
