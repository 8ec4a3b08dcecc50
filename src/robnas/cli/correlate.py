"""``robnas correlate``: rank agreement of proxy scores with a target benchmark (``--benchmark NAME:PATH``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from robnas.cli.app import app, console, friendly, refuse_overwriting_inputs
from robnas.errors import ConfigError


def _split(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


@app.command("correlate")
@friendly
def correlate_command(
    scores: Path = typer.Option(
        ...,
        "--scores",
        help="Scores: CSV with arch,proxy,value (or wide: arch/net_str + one column per proxy), or a .sqlite run store.",
    ),
    benchmark: str | None = typer.Option(
        None,
        "--benchmark",
        help="Benchmark as NAME:PATH: robustness:DIR (Jung et al., standard training), nas-robbench-201:DIR "
        "(NB201 after adversarial training: NAS-RobBench-201_html.json + ops.json), or another registered reader.",
    ),
    robustness: Path | None = typer.Option(
        None, "--robustness", help="Robustness dataset folder (meta.json + <dataset>/); the same as --benchmark robustness:DIR."
    ),
    dataset: str = typer.Option(
        "cifar10", "--dataset", help="cifar10, cifar100 or ImageNet16-120 (what the benchmark has)."
    ),
    out: Path = typer.Option(..., "--out", help="Output folder: correlations.csv and figures."),
    unique: bool = typer.Option(
        True,
        "--unique/--all",
        help="One architecture per isomorphism class (first met) or every row (the population 'rows').",
    ),
    population: str = typer.Option(
        "",
        "--population",
        help="classes (each class once), strings (classes weighted by their NB201 strings) or rows (every score "
        "row), comma-separated. Default: classes,strings where the benchmark's classes stand for several "
        "architectures (NB201), else classes; rows with --all.",
    ),
    targets: str = typer.Option(
        "",
        "--targets",
        help=(
            "Comma-separated targets (one value per architecture, as bench: objectives). robustness: clean, "
            "fgsm@8, hrs_fgsm@8, fog@3, fog (severity mean), cc_weather (group mean accuracy), cc_mean (mean over "
            "15 corruptions x 5 severities); or averaged statistics croze_weather, croze_noise, croze_blur, "
            "croze_digital (CRoZe's per-severity statistic, averaged), croze_mean15. nas-robbench-201: clean, "
            "fgsm@3, pgd@3, fgsm@8, pgd@8, aa@8. Default: all."
        ),
    ),
    ensemble: list[str] = typer.Option(
        [], "--ensemble", help="Mean-rank ensemble of proxies, e.g. synflow+snip+params (repeatable)."
    ),
    bootstrap: int = typer.Option(
        1000, "--bootstrap", help="Bootstrap resamples for Spearman's 95% interval (0: none)."
    ),
    bootstrap_method: str = typer.Option(
        "fixed-ranks",
        "--bootstrap-method",
        help="fixed-ranks (fast) or rerank (re-rank every resample; slow).",
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the bootstrap resamples."),
    table_targets: str = typer.Option(
        "",
        "--table-targets",
        help="Targets of the stdout table (default: the TARGETS.md headline set that was computed).",
    ),
    scatter_target: str = typer.Option(
        "",
        "--scatter-target",
        help="Target (or averaged statistic) of the per-proxy scatter plot (default: fgsm@8 if computed, else "
        "the first target).",
    ),
    figures: bool = typer.Option(True, "--figures/--no-figures", help="Write the heatmap and scatter PNGs."),
) -> None:
    """Spearman, Kendall, top-10% and top-1% precision and bootstrap intervals of every proxy against every target."""
    from robnas import benchmarks
    from robnas import correlate as corr

    refuse_overwriting_inputs(
        {"--out": out}, {"--scores": scores, "--robustness": robustness, "--benchmark": benchmark}
    )
    if (benchmark is None) == (robustness is None):
        raise ConfigError("give the benchmark once: --benchmark NAME:PATH (or --robustness DIR)")
    if not unique and population:
        raise ConfigError("--all is the population 'rows'; give either --all or --population")
    rob = benchmarks.from_spec(benchmark if benchmark is not None else f"robustness:{robustness}")
    populations = _populations(population, unique, rob)
    table = corr.as_scores(scores)
    result = corr.correlate(
        table,
        rob,
        dataset=dataset,
        targets=_split(targets) or None,
        ensembles=ensemble,
        bootstrap=bootstrap,
        seed=seed,
        bootstrap_method=bootstrap_method,
        population=populations,
    )
    out.mkdir(parents=True, exist_ok=True)
    csv_path = corr.write_csv(result, out / "correlations.csv")
    _print_tables(result, _table_targets(result, rob, table_targets), populations)
    console.print(f"wrote {csv_path}", highlight=False)
    if figures:
        heat, spread = _figures(result, table, rob, out, populations, scatter_target, dataset, ensemble)
        console.print(f"wrote {heat} and {spread}", highlight=False)


def _populations(population: str, unique: bool, rob: Any) -> list[str]:
    """``--population`` parsed; by default ``rows`` with ``--all``, else ``classes`` and, where the
    benchmark's classes stand for several architectures (NB201), ``strings`` too."""
    from robnas import correlate as corr

    if population:
        return corr.parse_populations(population)
    if not unique:
        return ["rows"]
    return ["classes", "strings"] if (rob.weights() != 1).any() else ["classes"]


def _table_targets(result: Any, rob: Any, table_targets: str) -> list[str]:
    """The targets of the stdout table: ``--table-targets``, else the headline set of TARGETS.md
    (robustness dataset) that was computed, else the first 16 computed; one not computed is refused."""
    from robnas import benchmarks
    from robnas import correlate as corr

    computed = list(dict.fromkeys(result["target"]))
    shown = [corr.canonical_name(t, rob) for t in _split(table_targets)]
    headline = corr.HEADLINE_TARGETS if isinstance(rob, benchmarks.RobustnessDataset) else computed
    shown = shown or [t for t in headline if t in computed] or computed[:16]
    missing = [t for t in shown if t not in computed]
    if missing:
        raise ConfigError(f"--table-targets {missing} were not computed (add them to --targets)")
    return shown


def _print_tables(result: Any, shown: list[str], populations: list[str]) -> None:
    """The Spearman table of each population on stdout; its size and any dropped scores on stderr."""
    from robnas import correlate as corr

    for pop in populations:
        if len(populations) > 1:
            typer.echo(f"\nSpearman, population {pop}:")
        typer.echo(corr.markdown_table(result, shown, population=pop))
    computed = list(dict.fromkeys(result["target"]))
    dropped = {p: c for p, c in result.attrs.get("dropped", {}).items() if c}
    n_by_proxy = result.drop_duplicates("proxy").set_index("proxy")["n"].to_dict()
    console.print(
        f"{len(n_by_proxy)} proxies x {len(computed)} targets, population {', '.join(populations)} "
        f"(n: {', '.join(f'{p}={n}' for p, n in n_by_proxy.items())})",
        highlight=False,
    )
    if dropped:
        console.print(f"dropped non-finite scores: {dropped}", highlight=False)


def _figures(
    result: Any, table: Any, rob: Any, out: Path, populations: list[str], scatter_target: str, dataset: str,
    ensemble: list[str],
) -> tuple[Path, Path]:  # fmt: skip
    """The Spearman heatmap of the first population and the scatter plot of ``--scatter-target``
    (default: fgsm@8 where computed, else the first target) in ``out``."""
    from robnas import correlate as corr
    from robnas import report

    computed = list(dict.fromkeys(result["target"]))
    first = result[result["population"] == populations[0]]
    heat = report.heatmap(first, out / "heatmap_spearman.png")
    scatter = corr.canonical_name(scatter_target, rob) if scatter_target else None
    scatter = scatter or ("fgsm@8" if "fgsm@8" in computed else computed[0])
    spread = report.scatter(
        table,
        rob,
        out / report.scatter_name(scatter),
        target=scatter,
        dataset=dataset,
        unique=populations[0] != "rows",
        ensembles=ensemble,
    )
    return heat, spread
