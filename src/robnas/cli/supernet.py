"""``robnas supernet train``: train a weight-sharing supernet, one random path per step;
``robnas supernet analyse``: RobNets' analyses of a finished one-shot search."""

from __future__ import annotations

from pathlib import Path

import typer

from robnas.cli.app import app, console, friendly, refuse_overwriting_inputs, sized_data
from robnas.cli.options import TrainingRun, training_options
from robnas.errors import ConfigError

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
        meta = {"data": run.data_spec, "subset": run.subset}
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


@supernet_app.command("analyse")
@friendly
def analyse(
    store: Path = typer.Option(
        ..., help="run store of a finished one-shot search (the --out of robnas search)"
    ),
    supernet: Path = typer.Option(..., help="the search's --supernet checkpoint"),
    data: str = typer.Option(..., help="the search's --data"),
    image_size: int = typer.Option(None, "--image-size", help="the search's --image-size"),
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
    from robnas.oneshot.robnets import analysis
    from robnas.search.robnets import measure_run

    refuse_overwriting_inputs({"--out": out}, {"--store": store, "--supernet": supernet, "--data": data})
    if bootstrap < 0:  # checked before the candidates are measured
        raise ConfigError(f"--bootstrap must be >= 0 resamples, got {bootstrap}")
    context = ObjectiveContext(data=sized_data(data, image_size), supernet=str(supernet), seed=seed, device=device)
    frame = measure_run(store, context, run=run, direct=direct, fsp=fsp, eval_images=eval_images)
    table = analysis.analyse(
        frame, out, score_name=frame.attrs.get("score", "score"), bootstrap=bootstrap, seed=seed
    )
    text = analysis.markdown(table)
    (out / "analysis.md").write_text(text + "\n")
    console.print(text)
    console.print(
        f"{len(frame)} candidates -> {out}/candidates.csv, analysis.csv, density.png, convolutions.png, fsp_gap.png"
    )
