"""``robnas zoo``: list and describe the published architectures of :mod:`robnas.zoo`."""

from __future__ import annotations

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from robnas.cli.app import app, friendly
from robnas.errors import UnknownName

zoo_app = typer.Typer(help="Published robust architectures (RobNets, WsrNets, CRoZe, DARTS) and hand-designed baselines.")
app.add_typer(zoo_app, name="zoo")
out = Console()


@zoo_app.command("list")
@friendly
def zoo_list(
    pattern: str = typer.Argument("*", help="Shell wildcard on model names, e.g. 'robnet_*'."),
    params: bool = typer.Option(True, "--params/--no-params", help="Count parameters (builds each network)."),
) -> None:
    """List zoo models matching PATTERN."""
    import torch

    from robnas import zoo
    from robnas.models import build_model
    from robnas.spaces.darts import count_parameters

    names = zoo.list_models(pattern)
    if not names:
        raise UnknownName(f"no zoo model matches {pattern!r} (known: {', '.join(zoo.list_models())})")
    table = Table(
        title=f"robnas zoo ({len(names)} models)",
        caption="C: stem channels, L: cells (layers of a baseline), px: input size; params and "
        "paper: millions of parameters, counted and as published",
        box=box.SIMPLE_HEAD,
        padding=(0, 1),
        pad_edge=False,
        collapse_padding=True,
    )
    table.add_column("name", no_wrap=True)
    table.add_column("space", no_wrap=True)
    for column in ("C", "L", "classes", "px"):
        table.add_column(column, justify="right", no_wrap=True)
    if params:
        table.add_column("params", justify="right", no_wrap=True)
    table.add_column("paper", justify="right", no_wrap=True)
    for name in names:
        entry = zoo.get_entry(name)
        row = [name, entry.space, str(entry.C), str(entry.layers), str(entry.num_classes)]
        row.append(str(entry.input_size[1]) if entry.input_size[1] == entry.input_size[2] else
                   "x".join(str(s) for s in entry.input_size[1:]))  # fmt: skip
        if params:
            with torch.device("meta"):
                row.append(f"{count_parameters(build_model(name)) / 1e6:.3f}")
        row.append("-" if entry.reported_params_m is None else f"{entry.reported_params_m}")
        table.add_row(*row)
    out.print(table)


@zoo_app.command("show")
@friendly
def zoo_show(name: str = typer.Argument(..., help="Zoo model name (see 'robnas zoo list').")) -> None:
    """Space, architecture, size and FLOPs of one zoo model."""
    from robnas import zoo

    info = zoo.model_info(name)
    table = Table(title=name, show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    reported = "-" if info.reported_params_m is None else f"{info.reported_params_m}"
    rows = [
        ("space", info.space),
        ("architecture", info.genotype),
        ("C / layers", f"{info.C} / {info.layers}"),
        ("classes", str(info.num_classes)),
        ("input", "x".join(str(s) for s in info.input_size)),
        ("parameters (M)", f"{info.params_m:.3f} (auxiliary head excluded)"),
        ("reported (M)", reported),
        ("FLOPs (M MACs)", f"{info.flops_m:.1f}"),
        ("source", info.source),
    ]
    for field, value in rows:
        table.add_row(field, value)
    out.print(table)
