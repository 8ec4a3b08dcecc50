"""``robnas search``: search a space with a strategy and an objective; resumable."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from robnas.cli import (
    ADDRESS_HELP,
    BACKEND_HELP,
    DATA_HELP,
    WORKERS_HELP,
    app,
    console,
    friendly,
    hide_secrets,
    proxy_data,
    refuse_overwriting_inputs,
)
from robnas.errors import ConfigError, DataError
from robnas.parallel import connect_backend
from robnas.store import RunStore

if TYPE_CHECKING:
    from robnas.search.base import SearchResult
    from robnas.search.history import HistoryRow


def space_cap(text: str | None) -> dict[str, Any]:
    """``--max-params-m`` as space options: nothing (the space's default), a number or none."""
    from robnas import models

    if text is None:
        return {}
    value = models.parse_value(text)
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise ConfigError(f"--max-params-m {text!r}: expected a number of millions or 'none'")
    return {"max_params_m": value}


def needs_data(objective: str, has_scores: bool = False) -> list[str]:
    """The parts of an ``--objective`` spec that depend on the images of ``--data``: proxies
    that look at data (unless read from a ``--scores`` table; also those a ``predict:`` model
    needs), ``train:`` and ``oneshot:`` objectives."""
    from robnas import objectives as objective_lib
    from robnas import proxies

    out: list[str] = []
    for spec in objective.split(","):
        spec = spec.strip().lstrip("-").strip()
        kind, sep, arg = spec.partition(":")
        if sep:
            names = [arg] if kind == "proxy" else []
            if kind == "predict" and arg.strip():  # its proxies (a bad file fails in the objective)
                from robnas.predict import load

                try:
                    names = load(arg.strip()).proxies
                except DataError:
                    names = []
            if kind in ("train", "oneshot", "oneshot-finetune"):
                out.append(spec)
        elif not spec or spec in objective_lib.OBJECTIVES:
            names = []
        else:
            names = [n.strip() for n in spec.split("+")]
        if not has_scores:  # unknown names are left to the objective (its error has suggestions)
            out += [n for n in names if n in proxies.PROXIES and proxies.PROXIES.get(n).needs_data]
    return list(dict.fromkeys(out))


def parse_options(pairs: list[str] | None) -> dict[str, str]:
    """``["k=v", ...]`` -> ``{k: v}`` (values stay text; the strategy converts them)."""
    out: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"bad --option {pair!r}; expected KEY=VALUE, e.g. init_pool=50")
        out[key.strip()] = value.strip()
    return out


def _fmt(v: float) -> str:
    return "nan" if math.isnan(v) else f"{v:.6g}"


def result_tables(result: SearchResult, top: int) -> list[Table]:
    """Rich tables: the best architectures (or the Pareto front) and the search cost."""
    multi = len(result.objectives) > 1
    rows = result.pareto() if multi else result.best(top)
    best = Table(
        title=f"{'Pareto front' if multi else f'best {len(rows)}'} of run {result.run} "
        f"({result.evaluated}/{result.budget} evaluated, {result.status})"
    )
    best.add_column("step", justify="right")
    best.add_column("architecture")
    for name in result.objectives:
        best.add_column(name.split("|")[0], justify="right")
    for r in rows[:top] if not multi else rows:
        best.add_row(str(r.step), r.arch, *(_fmt(v) for v in r.all_values()))
    cost = Table(title="search cost (seconds)")
    for col in ("part", "wall", "cpu", "gpu", "reported by table"):
        cost.add_column(col, justify="right" if col != "part" else "left")
    ev = result.evaluation_cost
    cost.add_row("objective evaluations", _fmt(ev.wall), _fmt(ev.cpu), _fmt(ev.gpu), _fmt(ev.reported))
    for label, c in result.setup.items():
        cost.add_row(label, _fmt(c.wall), _fmt(c.cpu), _fmt(c.gpu), _fmt(c.reported))
    cost.add_row(
        "this session (all)",
        _fmt(result.session.wall),
        _fmt(result.session.cpu),
        _fmt(result.session.gpu),
        "",
    )
    cost.add_row("all sessions", _fmt(result.total.wall), _fmt(result.total.cpu), _fmt(result.total.gpu), "")
    return [best, cost]


def store_summary(out: Path, result: SearchResult, top: int = 10) -> None:
    """Record the run's best architectures and cost in the run store's meta table."""
    if str(out) == ":memory:":
        return
    with RunStore(out) as store:
        store.set_meta(
            f"search/{result.run}",
            {
                "strategy": result.strategy,
                "objectives": result.objectives,
                "seed": result.seed,
                "budget": result.budget,
                "evaluated": result.evaluated,
                "status": result.status,
                "best": [
                    {
                        "arch": r.arch,
                        "values": [None if math.isnan(v) else v for v in r.all_values()],
                        "step": r.step,
                    }
                    for r in (result.pareto() if len(result.objectives) > 1 else result.best(top))
                ],
                "cost": {
                    "evaluations": dataclasses.asdict(result.evaluation_cost),
                    "setup": {k: dataclasses.asdict(v) for k, v in result.setup.items()},
                    "sessions": dataclasses.asdict(result.total),
                },
            },
        )


@app.command("search")
@friendly
def search_command(
    out: Path = typer.Option(..., "--out", help="SQLite run store (history; created or resumed)."),
    space: str = typer.Option("nb201", help="Search space name."),
    strategy: str = typer.Option(
        "evolution",
        help="random | topk | evolution | regularized-evolution | hnas | optuna | robnets | wsr-nas | wsr-naive. "
        "robnets: RobNets' one-shot search on a trained supernet (--supernet): sample K candidates, optionally "
        "keep the lowest-FSP fraction, fine-tune each with PGD-AT, score on held-out images; options candidates, "
        "finetune_epochs, finetune_images, eval_images, cell_free, fsp_keep, fsp_cells, fsp_input, fsp_deepest, "
        "fsp_steps (-o KEY=VALUE).",
    ),
    objective: str | None = typer.Option(
        None,
        help="Proxy name, a+b+c rank ensemble, bench:TARGET, train:RECIPE, oneshot:TARGET, predict:MODEL, -SPEC to "
        "minimise; comma-separated for multi-objective (optuna). Default: the strategy's, else croze. "
        "oneshot:TARGET (any strategy, needs --supernet): accuracy of the candidate's inherited supernet weights "
        "after BN recalibration, on the supernet's held-out validation images; TARGET clean, fgsm@EPS or pgd@EPS "
        "(EPS in 1/255; PGD-20, step 2/255). oneshot-finetune:TARGET: the same after PGD-AT fine-tuning "
        "(robnets' default: oneshot-finetune:pgd@8).",
    ),
    budget: int = typer.Option(100, help="Distinct architectures the objective may evaluate."),
    seed: int = typer.Option(0, help="Seed of the strategy, the proxy batch and the initialisations."),
    option: list[str] = typer.Option(None, "--option", "-o", help="Strategy option KEY=VALUE (repeatable)."),
    benchmark: Path | None = typer.Option(None, help="Robustness dataset folder (for bench: objectives)."),
    dataset: str = typer.Option("cifar10", help="Benchmark dataset: cifar10 | cifar100 | ImageNet16-120."),
    nb201: Path | None = typer.Option(
        None, help="NAS-Bench-201 accuracy table (CSV, NATS-Bench folder or .pth) for nb201: objectives."
    ),
    data: str | None = typer.Option(None, help=DATA_HELP + " Also the training data of train: objectives."),
    batch_size: int = typer.Option(64, help="Images in the proxy batch (the reference CRoZe uses 8)."),
    batch_mode: str = typer.Option("random", help="random | balanced (per class)."),
    device: str = typer.Option("cpu", help="cpu | cuda | auto."),
    scores: Path | None = typer.Option(
        None, help="Precomputed proxy scores CSV (arch,proxy,value[,seconds]) to read."
    ),
    within_scores: bool = typer.Option(False, help="Search only the architectures of the --scores table."),
    reference_size: int = typer.Option(64, help="Reference pool of rank ensembles when no --scores table."),
    train_epochs: int = typer.Option(1, help="Epochs of train: objectives."),
    train_metric: str = typer.Option(
        "clean",
        help="train: objectives' validation metric: clean, or robust (the recipe's PGD validation accuracy).",
    ),
    arch_opt: list[str] = typer.Option(
        None, help="Network build option KEY=VALUE for proxy and train: objectives, e.g. C=16, layers=8 (repeat)."
    ),
    max_params_m: str | None = typer.Option(
        None,
        help="Parameter cap (millions, C=36 x 20 cells) of sampled and mutated darts/robnet "
        "architectures; 'none' lifts it. Default: the space's (6 for darts-croze, as CRoZe; none otherwise).",
    ),
    supernet: Path | None = typer.Option(
        None,
        help="Trained supernet checkpoint (DIR/last.pt of robnas supernet train, of the searched space) for "
        "oneshot: objectives and the robnets strategy.",
    ),
    storage: str | None = typer.Option(
        None,
        help="optuna: the study's database URL, e.g. postgresql://USER:PASSWORD@HOST:5432/DB for several "
        "machines on one study (default: the --out SQLite file).",
    ),
    study_name: str | None = typer.Option(
        None, help="optuna: the study's name; processes sharing a --storage study need the same one."
    ),
    top: int = typer.Option(10, help="Best architectures to print."),
    workers: int = typer.Option(1, help=WORKERS_HELP + " Batches of independent candidates use them."),
    backend: str = typer.Option("process", help=BACKEND_HELP),
    address: str | None = typer.Option(None, help=ADDRESS_HELP),
) -> None:
    """Search architectures; rerunning the same command resumes (a larger --budget extends the run)."""
    from robnas import models
    from robnas import objectives as objective_lib
    from robnas.search.base import STRATEGIES, run_search
    from robnas.spaces import get as get_space

    hide_secrets(storage)
    refuse_overwriting_inputs(
        {"--out": out},
        {"--scores": scores, "--benchmark": benchmark, "--nb201": nb201, "--supernet": supernet, "--data": data},
    )
    connect_backend(backend, workers, address)
    if benchmark is not None and not benchmark.is_dir():
        raise ConfigError(
            f"--benchmark {benchmark}: folder not found (the robustness dataset folder with meta.json)"
        )
    if objective is None:
        objective = str(STRATEGIES.meta(strategy).get("default_objective", "croze"))
    needing = needs_data(objective, has_scores=scores is not None)
    if strategy in STRATEGIES and STRATEGIES.meta(strategy).get("needs_data"):
        needing.append(f"strategy {strategy}")
    data = proxy_data(data, needing)
    options = parse_options(option)
    for flag, key, value in (("--storage", "storage", storage), ("--study-name", "study_name", study_name)):
        if value is not None:
            if strategy != "optuna":
                raise ConfigError(f"{flag} applies to --strategy optuna, not {strategy!r}")
            options[key] = value
    context = objective_lib.ObjectiveContext(
        data=data,
        batch_size=batch_size,
        seed=seed,
        device=device,
        batch_mode=batch_mode,
        scores=str(scores) if scores else None,
        benchmark=str(benchmark) if benchmark else None,
        nb201=str(nb201) if nb201 else None,
        dataset=dataset,
        reference_size=reference_size,
        train={"epochs": train_epochs, "metric": train_metric},
        model=models.parse_options(arch_opt),
        supernet=str(supernet) if supernet else None,
    )
    candidates = None
    if within_scores:
        if scores is None:
            raise ConfigError("--within-scores needs --scores CSV")
        table = context.table(get_space(space))
        assert table is not None
        candidates = table.archs
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task("search", total=budget)
        best = -math.inf

        def progress(row: HistoryRow) -> None:
            nonlocal best
            if not math.isnan(row.value):
                best = max(best, row.value)
            bar.update(task, completed=row.step, description=f"search (best {best:.4g})")

        result = run_search(
            space,
            strategy,
            objective,
            budget,
            seed=seed,
            out=out,
            options=options,
            context=context,
            candidates=candidates,
            progress=progress,
            space_options=space_cap(max_params_m),
            backend=backend,
            workers=workers,
            address=address,
        )
    store_summary(out, result, top)
    result.require_values()
    stdout = Console()
    for table_ in result_tables(result, top):
        stdout.print(table_)
    console.print(f"history of run {result.run} in {out} ({result.evaluated} evaluations)")
