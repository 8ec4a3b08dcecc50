"""``robnas correlate``: rank agreement of proxy scores with the NAS-Bench-201 robustness dataset."""

from __future__ import annotations

from pathlib import Path

import typer

from robnas.cli.app import app, console, friendly
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
    robustness: Path = typer.Option(
        ..., "--robustness", help="Robustness dataset folder (meta.json + <dataset>/)."
    ),
    dataset: str = typer.Option("cifar10", "--dataset", help="cifar10, cifar100 or ImageNet16-120."),
    out: Path = typer.Option(..., "--out", help="Output folder: correlations.csv and figures."),
    unique: bool = typer.Option(
        True, "--unique/--all", help="One architecture per isomorphism class (first met) or every row."
    ),
    targets: str = typer.Option(
        "",
        "--targets",
        help=(
            "Comma-separated targets (one value per architecture, as bench: objectives): clean, fgsm@8, "
            "hrs_fgsm@8, fog@3, fog (severity mean), cc_weather (group mean accuracy), cc_mean (mean over "
            "15 corruptions x 5 severities); or averaged statistics croze_weather, croze_noise, croze_blur, "
            "croze_digital (CRoZe's per-severity statistic, averaged), croze_mean15. Default: all."
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
        "fgsm@8", "--scatter-target", help="Target (or averaged statistic) of the per-proxy scatter plot."
    ),
    figures: bool = typer.Option(True, "--figures/--no-figures", help="Write the heatmap and scatter PNGs."),
) -> None:
    """Spearman, Kendall, top-10% precision and bootstrap intervals of every proxy against every target."""
    from robnas import correlate as corr
    from robnas import report
    from robnas.benchmarks import RobustnessDataset

    rob = RobustnessDataset(robustness)
    wanted = _split(targets) or None
    table = corr.as_scores(scores)
    result = corr.correlate(
        table,
        rob,
        dataset=dataset,
        targets=wanted,
        unique=unique,
        ensembles=ensemble,
        bootstrap=bootstrap,
        seed=seed,
        bootstrap_method=bootstrap_method,
    )
    out.mkdir(parents=True, exist_ok=True)
    csv_path = corr.write_csv(result, out / "correlations.csv")
    computed = list(dict.fromkeys(result["target"]))
    shown = [corr.canonical_name(t) for t in _split(table_targets)]
    shown = shown or [t for t in corr.HEADLINE_TARGETS if t in computed] or computed[:16]
    missing = [t for t in shown if t not in computed]
    if missing:
        raise ConfigError(f"--table-targets {missing} were not computed (add them to --targets)")
    typer.echo(corr.markdown_table(result, shown))
    dropped = {p: c for p, c in result.attrs.get("dropped", {}).items() if c}
    n_by_proxy = result.drop_duplicates("proxy").set_index("proxy")["n"].to_dict()
    console.print(
        f"{len(n_by_proxy)} proxies x {len(computed)} targets, {'unique' if unique else 'all'} architectures "
        f"(n: {', '.join(f'{p}={n}' for p, n in n_by_proxy.items())})",
        highlight=False,
    )
    if dropped:
        console.print(f"dropped non-finite scores: {dropped}", highlight=False)
    console.print(f"wrote {csv_path}", highlight=False)
    if figures:
        heat = report.heatmap(result, out / "heatmap_spearman.png")
        spread = report.scatter(
            table,
            rob,
            out / report.scatter_name(scatter_target),
            target=scatter_target,
            dataset=dataset,
            unique=unique,
            ensembles=ensemble,
        )
        console.print(f"wrote {heat} and {spread}", highlight=False)
