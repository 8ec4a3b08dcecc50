"""``robnas search``: search a space with a strategy and an objective; resumable."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.table import Table

from robnas.cli.app import (
    ADDRESS_HELP,
    BACKEND_HELP,
    DATA_HELP,
    IMAGE_SIZE_HELP,
    WORKERS_HELP,
    app,
    console,
    friendly,
    hide_secrets,
    progress_bar,
    proxy_data,
    refuse_overwriting_inputs,
    sized_data,
)
from robnas.errors import ConfigError
from robnas.options import parse_options, parse_value
from robnas.parallel import connect_backend
from robnas.store import RunStore

if TYPE_CHECKING:
    from robnas.search.base import SearchResult
    from robnas.search.config import SearchConfig
    from robnas.search.history import HistoryRow


def space_cap(text: str | None) -> dict[str, Any]:
    """``--max-params-m`` as space options: nothing (the space's default), a number or none."""
    if text is None:
        return {}
    value = parse_value(text)
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise ConfigError(f"--max-params-m {text!r}: expected a number of millions or 'none'")
    return {"max_params_m": value}


def _fmt(v: float) -> str:
    return "nan" if math.isnan(v) else f"{v:.6g}"


def result_tables(result: SearchResult, top: int) -> list[Table]:
    """Rich tables: the best architectures (or the Pareto front) and the search cost."""
    multi = len(result.objectives) > 1
    rows = result.leaders(top)
    best = Table(
        title=f"{'Pareto front' if multi else f'best {len(rows)}'} of run {result.run} "
        f"({result.evaluated}/{result.budget} evaluated, {result.status})"
    )
    best.add_column("step", justify="right")
    best.add_column("architecture")
    for name in result.objectives:
        best.add_column(name.split("|")[0], justify="right")
    for r in rows:
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
    """Record the run's best architectures and cost (:meth:`SearchResult.summary`) in the run
    store's meta table."""
    if str(out) == ":memory:":
        return
    with RunStore(out) as store:
        store.set_meta(f"search/{result.run}", result.summary(top))


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
        "(EPS in 1/255; pgd@8 is PGD-10, step 2/255, as in robnas evaluate; pgd@8:steps=20 is PGD-20). "
        "oneshot-finetune:TARGET: the same after PGD-AT fine-tuning "
        "(robnets' default: oneshot-finetune:pgd@8:steps=20, RobNets' PGD-20).",
    ),
    budget: int = typer.Option(100, help="Distinct architectures the objective may evaluate."),
    seed: int = typer.Option(0, help="Seed of the strategy, the proxy batch and the initialisations."),
    option: list[str] = typer.Option(None, "--option", "-o", help="Strategy option KEY=VALUE (repeatable)."),
    benchmark: str | None = typer.Option(
        None,
        help="Benchmark of bench: objectives: NAME:PATH (nas-robbench-201:DIR for NB201 after adversarial "
        "training, robustness:DIR) or the robustness dataset folder.",
    ),
    dataset: str = typer.Option(
        "cifar10", help="Benchmark dataset: cifar10 | cifar100 | ImageNet16-120 (nas-robbench-201: imagenet16-120)."
    ),
    nb201: Path | None = typer.Option(
        None, help="NAS-Bench-201 accuracy table (CSV, NATS-Bench folder or .pth) for nb201: objectives."
    ),
    data: str | None = typer.Option(None, help=DATA_HELP + " Also the training data of train: objectives."),
    image_size: int | None = typer.Option(None, "--image-size", help=IMAGE_SIZE_HELP),
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
    from robnas.search import config as search

    hide_secrets(storage)
    refuse_overwriting_inputs(
        {"--out": out},
        {"--scores": scores, "--benchmark": benchmark, "--nb201": nb201, "--supernet": supernet, "--data": data},
    )
    connect_backend(backend, workers, address)
    if benchmark is not None:
        from robnas.benchmarks import from_spec

        from_spec(benchmark)  # a missing folder or an unknown NAME is one line now, not mid-search
    needing = search.needs_data(strategy, objective, has_scores=scores is not None)
    data = proxy_data(sized_data(data, image_size), needing)
    config = search.SearchConfig(
        space=space, strategy=strategy, objective=objective, budget=budget, seed=seed,
        options=strategy_options(option, strategy, storage, study_name),
        data=data, batch_size=batch_size, batch_mode=batch_mode, device=device,
        scores=str(scores) if scores else None, within_scores=within_scores,
        benchmark=benchmark, dataset=dataset, nb201=str(nb201) if nb201 else None,
        reference_size=reference_size, train_epochs=train_epochs, train_metric=train_metric,
        model=parse_options(arch_opt), supernet=str(supernet) if supernet else None,
        workers=workers, backend=backend, address=address, **space_cap(max_params_m),
    )  # fmt: skip
    if within_scores and scores is None:
        raise ConfigError("--within-scores needs --scores CSV")
    result = run_with_bar(config, out)
    report(out, result, top)


def strategy_options(
    option: list[str] | None, strategy: str, storage: str | None, study_name: str | None
) -> dict[str, Any]:
    """The strategy's options: ``-o KEY=VALUE`` (text, converted by the strategy) and
    ``--storage`` / ``--study-name``, which only ``--strategy optuna`` takes."""
    options = parse_options(option, convert=False, example="init_pool=50")
    for flag, key, value in (("--storage", "storage", storage), ("--study-name", "study_name", study_name)):
        if value is not None:
            if strategy != "optuna":
                raise ConfigError(f"{flag} applies to --strategy optuna, not {strategy!r}")
            options[key] = value
    return options


def run_with_bar(config: SearchConfig, out: Path) -> SearchResult:
    """Run (or resume) the search into ``out`` under a progress bar showing the best value so far."""
    with progress_bar() as bar:
        task = bar.add_task("search", total=config.budget)
        best = -math.inf

        def progress(row: HistoryRow) -> None:
            nonlocal best
            if not math.isnan(row.value):
                best = max(best, row.value)
            bar.update(task, completed=row.step, description=f"search (best {best:.4g})")

        return config.run(out, progress)


def report(out: Path, result: SearchResult, top: int) -> None:
    """Record the run's summary in ``out``, then (when any evaluation gave a value) print the tables
    of the best architectures and the cost on stdout and where the history is on stderr."""
    store_summary(out, result, top)
    result.require_values()
    stdout = Console()
    for table in result_tables(result, top):
        stdout.print(table)
    console.print(f"history of run {result.run} in {out} ({result.evaluated} evaluations)")
