"""``robnas demo``: the main job, offline in about three minutes on two CPU cores."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from robnas.cli.app import app, console, friendly, refuse_overwriting_inputs


@app.command("demo")
@friendly
def demo_command(
    out: Path = typer.Option(Path("demo-out"), help="Output folder (scores, correlations, figures)."),
    data: Path | None = typer.Option(
        None, help="A .npz with x_train/y_train CIFAR-10 images (default: packaged 80 images)."
    ),
    benchmark: Path | None = typer.Option(
        None, help="Robustness dataset folder (default: packaged excerpt)."
    ),
    adversarial: Path | None = typer.Option(
        None,
        help="NAS-RobBench-201 folder (robustness after adversarial training; default: the packaged excerpt "
        "when --benchmark is not given).",
    ),
    archs: int | None = typer.Option(
        None, help="Number of NB201 architectures (default: all in the benchmark excerpt)."
    ),
    proxies: str | None = typer.Option(
        None, help="Comma-separated proxies (default: robust_zc, croze, croze_fixed and six baselines)."
    ),
    batch_size: int = typer.Option(8, help="Proxy batch size (CRoZe's reference uses 8)."),
    seed: int = typer.Option(0, help="Seed of the sample, the batch and the initialisations."),
    workers: int = typer.Option(2, help="Worker processes."),
    device: str = typer.Option("cpu", help="cpu | cuda | auto."),
) -> None:
    """Score NB201 architectures with CRoZe and baselines, and correlate with robust accuracy.

    Prints the Spearman tables, then one line: the proxy that ranks fgsm@8 robustness best, its
    margin over the runner-up and over the parameter count, the population, the same for pgd@8
    after adversarial training (NAS-RobBench-201), the files written.
    """
    from robnas import demo

    refuse_overwriting_inputs({"--out": out}, {"--data": data, "--benchmark": benchmark, "--adversarial": adversarial})
    names = [p.strip() for p in proxies.split(",") if p.strip()] if proxies else list(demo.DEFAULT_PROXIES)
    with Progress(
        TextColumn("scoring"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console, transient=True
    ) as bar:
        task = bar.add_task("demo", total=None)
        result = demo.run(
            out,
            data=data,
            benchmark=benchmark,
            adversarial=adversarial,
            num_archs=archs,
            proxies=names,
            batch_size=batch_size,
            seed=seed,
            workers=workers,
            device=device,
            progress=lambda n, total: bar.update(task, completed=n, total=total),
        )
    typer.echo(result.markdown)
    typer.echo(result.answer)
