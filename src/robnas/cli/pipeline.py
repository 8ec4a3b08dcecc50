"""``robnas pipeline CONFIG.toml``: search, train the winner, evaluate it, report."""

from __future__ import annotations

from pathlib import Path

import typer

from robnas.cli.app import app, console, friendly


@app.command("pipeline")
@friendly
def pipeline_command(
    config: Path = typer.Argument(..., help="TOML config with \\[search], \\[train] and \\[evaluate] sections."),
) -> None:
    """Search, train the winner with a recipe, evaluate it; each finished stage is skipped on rerun."""
    from robnas.pipeline import run_pipeline

    report = run_pipeline(config, log=lambda line: console.print(line, highlight=False))
    console.print(f"report: {report}")
