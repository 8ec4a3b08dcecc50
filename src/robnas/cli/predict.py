"""``robnas predict fit`` / ``apply``: few-shot robustness predictors (:mod:`robnas.predict`)."""

from __future__ import annotations

from pathlib import Path

import typer

from robnas.cli.app import app, console, friendly
from robnas.errors import ConfigError

predict_app = typer.Typer(
    help="Few-shot robustness predictors: fit on labelled architectures, rank the rest.",
    no_args_is_help=True,
)
app.add_typer(predict_app, name="predict")


def _label_archs(archs: Path | None, split: Path | None, half: str | None, labels: Path) -> list[str] | None:
    """The architectures labels may come from: those of a file, or of a half of a split (NB201)."""
    if archs is not None and split is not None:
        raise ConfigError("give --archs or --split/--half, not both")
    if archs is not None:
        if not archs.is_file():
            raise ConfigError(f"--archs {archs}: no such file (one architecture string per line)")
        return [line.strip() for line in archs.read_text().splitlines() if line.strip()]
    if split is None:
        if half is not None:
            raise ConfigError("--half needs --split FILE (e.g. benchmarks/results/nb201_split.json)")
        return None
    from robnas import holdout
    from robnas.benchmarks.robustness import RobustnessDataset

    if not labels.is_dir():
        raise ConfigError("--split selects benchmark classes; --labels must be the robustness dataset folder")
    keep = holdout.load_split(split).half(half or "dev")
    rob = RobustnessDataset(labels)
    return [s for s, k in zip(rob.arch_strings, rob.isomorphs, strict=True) if k in keep]


@predict_app.command("fit")
@friendly
def fit_command(
    scores: list[Path] = typer.Option(..., "--scores", help="Scores CSV or run store (repeatable; merged)."),
    labels: Path = typer.Option(
        ...,
        "--labels",
        help="The robustness dataset folder (NB201 labels of the scored archs) or a CSV arch,value.",
    ),
    target: str = typer.Option(
        ..., "--target", help="Target: fgsm@8, clean, cc_mean, ... with the benchmark; a name with a CSV."
    ),
    out: Path = typer.Option(..., "--out", help="Predictor file to write (JSON)."),
    space: str = typer.Option("nb201", "--space", help="Search space of the architectures."),
    proxies: str = typer.Option("", "--proxies", help="Comma-separated proxies to use (default: all scored)."),
    dataset: str = typer.Option("cifar10", "--dataset", help="Benchmark dataset (cifar10, cifar100, ...)."),
    archs: Path | None = typer.Option(None, "--archs", help="Use labels of these architectures only (a file)."),
    split: Path | None = typer.Option(None, "--split", help="A split file (robnas.holdout) ..."),
    half: str | None = typer.Option(None, "--half", help="... and its half to take labels from: dev or test."),
    n: int | None = typer.Option(None, "--n", help="Draw this many labelled architectures (seeded)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the draw and of LightGBM."),
) -> None:
    """Fit a predictor of TARGET from proxy values and the architecture encoding."""
    from robnas import predict as predict_lib
    from robnas.spaces import get as get_space

    search_space = get_space(space)
    chosen = _label_archs(archs, split, half, labels)
    names = [p.strip() for p in proxies.split(",") if p.strip()] or None
    predictor = predict_lib.fit_files(
        scores, labels, target, search_space, proxies=names, dataset=dataset, archs=chosen, n=n, seed=seed
    )
    path = predict_lib.save(predictor, out)
    console.print(
        f"fitted {predictor.target} on {predictor.n_train} labelled {predictor.space} architectures from "
        f"{len(predictor.proxies)} proxies ({', '.join(predictor.proxies)}) and the architecture encoding; "
        f"wrote {path}",
        highlight=False,
        soft_wrap=True,
    )


@predict_app.command("apply")
@friendly
def apply_command(
    model: Path = typer.Option(..., "--model", help="Predictor file (robnas predict fit)."),
    scores: list[Path] = typer.Option(..., "--scores", help="Scores of the candidates (repeatable; merged)."),
    out: Path = typer.Option(..., "--out", help="CSV to write: arch,prediction (best first)."),
    space: str = typer.Option("nb201", "--space", help="Search space of the architectures."),
    top: int = typer.Option(10, "--top", help="Print the best N."),
) -> None:
    """Rank the scored candidates by the predicted target."""
    from robnas import predict as predict_lib
    from robnas.spaces import get as get_space

    predictor = predict_lib.load(model)
    table = predict_lib.predict_table(predictor, scores, get_space(space))
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out, index=False, float_format="%.6g")
    for row in table.head(top).itertuples():
        typer.echo(f"{row.prediction:.4f}  {row.arch}")
    console.print(f"predicted {predictor.target} of {len(table)} architectures; wrote {out}", highlight=False)
