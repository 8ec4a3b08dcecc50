"""``robnas supernet train``: train a weight-sharing supernet, one random path per step."""

from __future__ import annotations

import contextlib
from pathlib import Path

import typer

from robnas.cli import app, console, friendly
from robnas.cli.train import _EpochBar
from robnas.errors import ConfigError
from robnas.units import UNIT_RULE

supernet_app = typer.Typer(
    help="Weight-sharing supernets of the nb201, darts and robnet spaces (one-shot robust search).",
    no_args_is_help=True,
)
app.add_typer(supernet_app, name="supernet")


@supernet_app.command("train")
@friendly
def train(
    space: str = typer.Option(None, help="nb201, darts, robnet or robnet-free"),
    recipe: str = typer.Option("standard", help="training recipe: standard, pgd-at, trades, fast-at, ..."),
    data: str = typer.Option(None, help=".npz, cifar10:ROOT, cifar100:ROOT, svhn:ROOT, imagenet16-120:ROOT"),
    out: Path = typer.Option(None, help="output folder: last.pt, best.pt, meta.json, log.csv"),
    epochs: int = typer.Option(None, help="total epochs (default: the recipe's); defines the schedule"),
    batch_size: int = typer.Option(None, help="global batch size (default: the recipe's)"),
    seed: int = typer.Option(0, help="seed for init, subset, split, data order, paths, attacks"),
    subset: int = typer.Option(None, help="train on N training images chosen with --seed"),
    val_fraction: float = typer.Option(0.1, help="held-out share of the training images"),
    resume: bool = typer.Option(False, help="continue from OUT/last.pt (exactly where it stopped)"),
    stop_after: int = typer.Option(None, help="stop after this epoch; the schedule still spans --epochs"),
    arch_opt: list[str] = typer.Option(
        None, help="supernet build option KEY=VALUE, e.g. C=16, layers=8, N=1, bn=recalibrate (repeat)"
    ),
    set_: list[str] = typer.Option(
        None, "--set", help=f"recipe setting KEY=VALUE, e.g. steps=10 or eps=8 (repeat); {UNIT_RULE}"
    ),
    device: str = typer.Option("auto", help="auto, cpu, cuda, cuda:1"),
    amp: bool = typer.Option(True, help="mixed precision on CUDA"),
    progress: bool = typer.Option(True, help="show a progress bar"),
    download: bool = typer.Option(False, help="download the data set if missing"),
) -> None:
    """Train a supernet with a recipe; each step trains (and attacks) one random path. Works under torchrun."""
    from robnas import data as data_mod
    from robnas import train as api
    from robnas.oneshot import train_supernet
    from robnas.oneshot.supernet import check_build_options

    missing = [flag for flag, v in (("--space", space), ("--data", data), ("--out", out)) if v is None]
    if missing:
        raise ConfigError(f"missing {', '.join(missing)}")
    options = api.parse_options(arch_opt)
    check_build_options(space, options)  # space, options and recipe checked before any data is read
    chosen = api.get(recipe).replace(**api.parse_settings(set_))
    info = api.setup(device)
    try:
        train_data = data_mod.random_subset(data_mod.load(data, "train", download=download), subset, seed)
        bar = _EpochBar() if progress and info.is_main else None
        with bar or contextlib.nullcontext():
            result = train_supernet(
                space,
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
                meta={"data": data, "subset": subset},
                dist_info=info,
                **options,
            )
        if info.is_main:
            params = sum(p.numel() for p in result.model.parameters())
            console.print(
                f"trained the {space} supernet ({params:,} weights) for {result.epochs_done} epoch(s) -> {out}/last.pt"
            )
    finally:
        api.teardown(info)


@supernet_app.command("analyse")
@friendly
def analyse(
    store: Path = typer.Option(
        ..., help="run store of a finished one-shot search (the --out of robnas search)"
    ),
    supernet: Path = typer.Option(..., help="the search's --supernet checkpoint"),
    data: str = typer.Option(..., help="the search's --data"),
    out: Path = typer.Option(
        ..., help="folder for candidates.csv, analysis.csv, analysis.md and the figures"
    ),
    run: str = typer.Option(None, help="run id (default: the store's last one-shot run)"),
    direct: str = typer.Option(
        "chain", help="direct edges: chain (s1->n0->n1->n2->n3) or inputs (from s0, s1)"
    ),
    fsp: bool = typer.Option(True, help="measure each candidate's FSP loss when the run did not record it"),
    eval_images: int = typer.Option(
        None, help="score the fine-tuned candidates again on this many held-out images (default: the run's)"
    ),
    bootstrap: int = typer.Option(1000, help="bootstrap resamples of the Spearman intervals"),
    seed: int = typer.Option(0, help="the search's --seed (FSP batch, bootstrap)"),
    device: str = typer.Option("cpu", help="cpu | cuda | auto"),
) -> None:
    """RobNets' analyses of a search run: score against density and convolutions, gap against FSP loss."""
    from robnas.objectives import ObjectiveContext
    from robnas.oneshot import analysis

    context = ObjectiveContext(data=data, supernet=str(supernet), seed=seed, device=device)
    frame = analysis.measure_run(store, context, run=run, direct=direct, fsp=fsp, eval_images=eval_images)
    table = analysis.analyse(
        frame, out, score_name=frame.attrs.get("score", "score"), bootstrap=bootstrap, seed=seed
    )
    text = analysis.markdown(table)
    (out / "analysis.md").write_text(text + "\n")
    console.print(text)
    console.print(
        f"{len(frame)} candidates -> {out}/candidates.csv, analysis.csv, density.png, convolutions.png, fsp_gap.png"
    )
