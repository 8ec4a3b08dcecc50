"""``robnas score``: zero-cost proxy scores of many architectures into a run store."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from robnas.cli.app import (
    ADDRESS_HELP,
    BACKEND_HELP,
    DATA_HELP,
    IMAGE_SIZE_HELP,
    WORKERS_HELP,
    app,
    console,
    friendly,
    proxy_data,
    refuse_overwriting_inputs,
    sized_data,
)
from robnas.errors import ConfigError
from robnas.parallel import connect_backend
from robnas.store import RunStore

if TYPE_CHECKING:
    from robnas.spaces.base import SearchSpace


def parse_indices(text: str) -> list[int]:
    """``"0,5,10-19"`` -> [0, 5, 10, ..., 19]."""
    out: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        lo, sep, hi = part.partition("-")
        try:
            out.extend(range(int(lo), int(hi) + 1) if sep else [int(lo)])
        except ValueError:
            raise ConfigError(f"bad index range {part!r}; expected e.g. 0,5,10-19") from None
    return out


def archs_from_indices(indices: list[int], robustness_dir: Path) -> list[str]:
    """NAS-Bench-201 strings of ``indices`` through the robustness dataset's ``meta.json``."""
    from robnas.benchmarks.robustness import RobustnessDataset

    rob = RobustnessDataset(robustness_dir)
    return [rob.arch_strings[rob.index_of(i)] for i in indices]


def architectures(
    space: SearchSpace, archs: Path | None, indices: str, robustness: Path | None, sample: int, seed: int
) -> list[str]:
    """The architectures to score, in this order: those of the ``--archs`` file (all checked
    before any work), the NB201 ``--indices`` (through ``--robustness``'s meta.json) and
    ``--sample`` random ones drawn with ``--seed``; none at all is a ConfigError."""
    from robnas import scoring
    from robnas.spaces import as_rng

    arch_list: list[str] = []
    if archs is not None:
        arch_list += scoring.read_arch_file(archs, space)
    if indices:
        if robustness is None:
            raise ConfigError("--indices needs --robustness DIR (the folder with meta.json)")
        arch_list += archs_from_indices(parse_indices(indices), robustness)
    if sample:
        rng = as_rng(seed)
        arch_list += [space.format(space.sample(rng)) for _ in range(sample)]
    if not arch_list:
        raise ConfigError("no architectures: give --archs FILE, --sample N or --indices with --robustness")
    return arch_list


@app.command("score")
@friendly
def score_command(
    out: Path = typer.Option(..., "--out", help="SQLite run store (created or resumed)."),
    space: str = typer.Option("nb201", help="Search space name."),
    archs: Path | None = typer.Option(None, help="File with one architecture string per line."),
    sample: int = typer.Option(0, help="Score N architectures sampled uniformly with --seed."),
    indices: str = typer.Option("", help="NB201 indices like 0-99,200 (needs --robustness)."),
    robustness: Path | None = typer.Option(None, help="Robustness dataset folder (for --indices)."),
    proxies: str = typer.Option("croze,synflow,grad_norm,snip,params", help="Comma-separated proxy names."),
    data: str | None = typer.Option(None, help=DATA_HELP),
    image_size: int | None = typer.Option(None, "--image-size", help=IMAGE_SIZE_HELP),
    batch_size: int = typer.Option(64, help="Images in the proxy batch (the reference CRoZe uses 8)."),
    batch_mode: str = typer.Option("random", help="random | balanced (per class)."),
    seed: int = typer.Option(0, help="Seed of the batch, the initialisation and the sampling."),
    device: str = typer.Option("cpu", help="cpu | cuda | auto."),
    workers: int = typer.Option(1, help=WORKERS_HELP),
    backend: str = typer.Option("process", help=BACKEND_HELP),
    address: str | None = typer.Option(None, help=ADDRESS_HELP),
    csv: Path | None = typer.Option(None, "--csv", help="Also export all results of the store as CSV."),
    retry_failed: bool = typer.Option(
        False,
        "--retry-failed",
        help="Compute stored failures again (those that depend on the machine, e.g. out of memory, always are).",
    ),
    arch_opt: list[str] = typer.Option(
        None, help="Network build option KEY=VALUE, e.g. C=16, layers=8 for DARTS (repeat); part of the store's key."
    ),
) -> None:
    """Score architectures with zero-cost proxies.

    Results go to the SQLite store --out one by one; rerunning the same command skips
    finished (arch, proxy) pairs. The `arch` column holds each architecture's official
    string as given (not canonicalised; `robnas correlate` handles isomorphism).
    """
    from robnas import data as data_lib
    from robnas import scoring
    from robnas.options import parse_options
    from robnas.spaces import get as get_space

    refuse_overwriting_inputs(
        {"--out": out, "--csv": csv}, {"--archs": archs, "--data": data, "--robustness": robustness}
    )
    if csv is not None and csv.is_dir():
        raise ConfigError(f"--csv {csv} is a folder; give the CSV a file name, e.g. {csv / 'scores.csv'}")
    connect_backend(backend, workers, address)
    sp = get_space(space)
    names = [p.strip() for p in proxies.split(",") if p.strip()]
    if not names:
        raise ConfigError("no proxies: give --proxies NAME[,NAME...], e.g. --proxies croze,synflow")
    data = proxy_data(sized_data(data, image_size), scoring.data_dependent(names))
    arch_list = architectures(sp, archs, indices, robustness, sample, seed)
    images = data_lib.load(data, "train")
    with (
        RunStore(out) as store,
        Progress(
            TextColumn("scoring"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=console
        ) as bar,
    ):
        task = bar.add_task("score", total=len(dict.fromkeys(arch_list)))
        added = scoring.score(
            space,
            arch_list,
            names,
            images,
            store,
            batch_size=batch_size,
            seed=seed,
            device=device,
            workers=workers,
            batch_mode=batch_mode,
            progress=lambda n: bar.update(task, completed=n),
            backend=backend,
            address=address,
            retry_failed=retry_failed,
            build_options=parse_options(arch_opt),
        )
        rows = store.rows()
        if csv is not None:
            store.export_csv(csv, rows)
    failed = sum(1 for r in rows if r.error)
    console.print(
        f"{added} new results, {len(rows)} in {out}"
        + (f", {failed} failed (see error column)" if failed else "")
    )
