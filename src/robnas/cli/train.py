"""``robnas train``: train one architecture with a named recipe, alone or under torchrun."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from robnas.cli.app import app, console, friendly
from robnas.cli.options import TrainingRun, training_options

if TYPE_CHECKING:
    import torch


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


@app.command("train")
@friendly
@training_options
def train(
    run: TrainingRun,
    arch: str = typer.Option(None, help="SPACE:ARCH (e.g. nb201:'|nor_conv_3x3~0|+...') or a zoo model name"),
    lr: float = typer.Option(None, help="peak learning rate (default: the recipe's)"),
    arch_opt: list[str] = typer.Option(None, help="network build option KEY=VALUE, e.g. C=8, N=1 (repeat)"),
    final_eval: bool = typer.Option(False, help="evaluate best.pt on the test split with robnas.evaluate"),
    eval_attacks: str = typer.Option("fgsm,pgd", help="attacks for --final-eval, comma separated"),
    eval_corruptions: str = typer.Option("", help="corruptions for --final-eval, comma separated"),
    list_recipes: bool = typer.Option(False, "--list-recipes", help="list the recipes and exit"),
) -> None:
    """Train a network with a recipe (standard, pgd-at, trades, fast-at, ...); works under torchrun."""
    import torch

    from robnas import models
    from robnas import train as api

    if list_recipes:
        for name in api.names():
            typer.echo(f"{name}: {api.get(name).source}")
        return
    run.require("--arch", arch)
    chosen = run.chosen_recipe(**({} if lr is None else {"lr": lr}))
    out = run.out
    with run.session() as (info, train_data):
        torch.manual_seed(run.seed)
        model = api.build_model(arch, train_data.num_classes, **api.parse_options(arch_opt))
        meta = {
            "arch": arch,
            "arch_options": api.parse_options(arch_opt),
            "data": run.data_spec,
            "subset": run.subset,
        }
        result = run.fit(info, lambda settings: api.fit(model, train_data, chosen, out, settings, meta=meta))
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
                final_evaluation(net, run.data_spec, out, _split(eval_attacks), _split(eval_corruptions))
