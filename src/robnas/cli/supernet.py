"""``robnas supernet train``: train a weight-sharing supernet, one random path per step."""

from __future__ import annotations

import typer

from robnas.cli import app, console, friendly
from robnas.cli.options import TrainingRun, training_options

supernet_app = typer.Typer(
    help="Weight-sharing supernets of the nb201, darts and robnet spaces (one-shot robust search).",
    no_args_is_help=True,
)
app.add_typer(supernet_app, name="supernet")


@supernet_app.command("train")
@friendly
@training_options
def train(
    run: TrainingRun,
    space: str = typer.Option(None, help="nb201, darts, robnet or robnet-free"),
    arch_opt: list[str] = typer.Option(
        None, help="supernet build option KEY=VALUE, e.g. C=16, layers=8, N=1, bn=recalibrate (repeat)"
    ),
) -> None:
    """Train a supernet with a recipe; each step trains (and attacks) one random path. Works under torchrun."""
    from robnas import train as api
    from robnas.oneshot import train_supernet
    from robnas.oneshot.supernet import check_build_options

    run.require("--space", space)
    options = api.parse_options(arch_opt)
    check_build_options(space, options)  # space, options and recipe checked before any data is read
    chosen = run.chosen_recipe()
    with run.session() as (info, train_data):
        meta = {"data": run.data, "subset": run.subset}
        result = run.fit(
            info,
            lambda settings: train_supernet(
                space, train_data, chosen, run.out, settings, meta=meta, **options
            ),
        )
        if info.is_main:
            params = sum(p.numel() for p in result.model.parameters())
            console.print(
                f"trained the {space} supernet ({params:,} weights) for {result.epochs_done} epoch(s) -> {run.out}/last.pt"
            )
