"""``robnas predict fit`` / ``apply``: few-shot robustness predictors (:mod:`robnas.predict`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from robnas.cli.app import DATA_HELP, app, console, friendly, proxy_data, refuse_overwriting_inputs
from robnas.errors import ConfigError

predict_app = typer.Typer(
    help="Few-shot robustness predictors: fit on labelled architectures, rank the rest.",
    no_args_is_help=True,
)
app.add_typer(predict_app, name="predict")


def _label_archs(archs: Path | None, split: Path | None, half: str | None, labels: Any) -> list[str] | None:
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

    if isinstance(labels, RobustnessDataset):
        rob = labels
    elif isinstance(labels, Path) and labels.is_dir():
        rob = RobustnessDataset(labels)
    else:
        raise ConfigError(
            "--split selects NAS-Bench-201 classes; the labels must be the robustness dataset "
            "(--labels DIR or --benchmark robustness:DIR)"
        )
    keep = holdout.load_split(split).half(half or "dev")
    return [s for s, k in zip(rob.arch_strings, rob.isomorphs, strict=True) if k in keep]


def _labels_source(labels: Path | None, benchmark: str | None) -> Any:
    if (labels is None) == (benchmark is None):
        raise ConfigError(
            "give the labels: --benchmark NAME:PATH (e.g. tiny-robustbench:DIR, robustness:DIR) or --labels "
            "(a robustness dataset folder or a CSV arch,value), one of them"
        )
    if benchmark is not None:
        from robnas.predict import open_benchmark

        return open_benchmark(benchmark)
    return labels


@predict_app.command("fit")
@friendly
def fit_command(
    scores: list[Path] = typer.Option(..., "--scores", help="Scores CSV or run store (repeatable; merged)."),
    labels: Path | None = typer.Option(
        None,
        "--labels",
        help="The robustness dataset folder (NB201 labels of the scored archs) or a CSV arch,value.",
    ),
    benchmark: str | None = typer.Option(
        None,
        "--benchmark",
        help="Labels from a benchmark NAME:PATH: tiny-robustbench:DIR, robustness:DIR, ... (instead of --labels).",
    ),
    target: str = typer.Option(
        ..., "--target", help="Target: pgd@8, fgsm@8, clean, cc_mean, ... with a benchmark; a name with a CSV."
    ),
    out: Path = typer.Option(..., "--out", help="Predictor file to write (JSON)."),
    space: str | None = typer.Option(
        None, "--space", help="Search space of the architectures (default: the benchmark's, else nb201)."
    ),
    proxies: str = typer.Option("", "--proxies", help="Comma-separated proxies to use (default: all scored)."),
    dataset: str = typer.Option("cifar10", "--dataset", help="Benchmark dataset (cifar10, cifar100, ...)."),
    archs: Path | None = typer.Option(None, "--archs", help="Use labels of these architectures only (a file)."),
    split: Path | None = typer.Option(None, "--split", help="A split file (robnas.holdout) ..."),
    half: str | None = typer.Option(None, "--half", help="... and its half to take labels from: dev or test."),
    n: int | None = typer.Option(None, "--n", help="Draw this many labelled architectures (seeded)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the draw and of LightGBM."),
    arch_opt: list[str] = typer.Option(
        None,
        "--arch-opt",
        help="Network build option KEY=VALUE the scores were computed with, e.g. C=16, layers=8 (repeat); "
        "recorded for predict apply --archs.",
    ),
) -> None:
    """Fit a predictor of TARGET from proxy values and the architecture encoding."""
    from robnas import predict as predict_lib
    from robnas.models import parse_options
    from robnas.spaces import get as get_space

    refuse_overwriting_inputs(
        {"--out": out},
        {"--scores": scores, "--labels": labels, "--benchmark": benchmark, "--archs": archs, "--split": split},
    )
    source = _labels_source(labels, benchmark)
    space_name = space or (predict_lib.data.benchmark_space(source) if benchmark is not None else "nb201")
    search_space = get_space(space_name)
    chosen = _label_archs(archs, split, half, source if labels is None else labels)
    names = [p.strip() for p in proxies.split(",") if p.strip()] or None
    scoring = predict_lib.score_settings(scores)
    if arch_opt:
        scoring["build_options"] = parse_options(arch_opt)
    predictor = predict_lib.fit_files(
        scores,
        source,
        target,
        search_space,
        proxies=names,
        dataset=dataset,
        archs=chosen,
        n=n,
        seed=seed,
        scoring=scoring,
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
    scores: list[Path] = typer.Option(
        None, "--scores", help="Scores of the candidates (repeatable; merged); or --archs with --data."
    ),
    archs: Path | None = typer.Option(
        None, "--archs", help="Candidates, one architecture per line: the model's proxies are computed here."
    ),
    data: str | None = typer.Option(None, "--data", help="With --archs: " + DATA_HELP),
    arch_opt: list[str] = typer.Option(
        None,
        "--arch-opt",
        help="With --archs: network build option KEY=VALUE, e.g. C=16, layers=8 (repeat; default: the "
        "model's record).",
    ),
    batch_size: int | None = typer.Option(
        None, "--batch-size", help="With --archs: images in the proxy batch (default: the model's record, else 64)."
    ),
    seed: int | None = typer.Option(
        None, "--seed", help="With --archs: seed of the batch and the initialisation (default: the model's, else 0)."
    ),
    store: Path | None = typer.Option(
        None, "--store", help="With --archs: keep the computed scores in this run store (resumable)."
    ),
    device: str = typer.Option("cpu", "--device", help="With --archs: cpu | cuda | auto."),
    out: Path = typer.Option(..., "--out", help="CSV to write: arch,value (the predicted target, best first)."),
    space: str = typer.Option("nb201", "--space", help="Search space of the architectures."),
    top: int = typer.Option(10, "--top", help="Print the best N."),
) -> None:
    """Rank candidates by the predicted target: scored ones (--scores), or a list of
    architectures (--archs) whose proxies it computes itself."""
    from robnas import predict as predict_lib
    from robnas.spaces import get as get_space

    refuse_overwriting_inputs(
        {"--out": out, "--store": store}, {"--model": model, "--scores": scores, "--archs": archs, "--data": data}
    )
    predictor = predict_lib.load(model)
    search_space = get_space(space)
    if (archs is None) == (not scores):
        raise ConfigError("give the candidates: --scores FILE (scored) or --archs FILE with --data, one of them")
    if archs is not None:
        from robnas import data as data_lib
        from robnas import scoring
        from robnas.options import parse_options

        images = data_lib.load(proxy_data(data, scoring.data_dependent(predictor.proxies)), "train")
        table = predict_lib.score_and_predict(
            predictor, search_space, scoring.read_arch_file(archs, search_space), images,
            store=store, build_options=parse_options(arch_opt), batch_size=batch_size, seed=seed, device=device,
        )  # fmt: skip
    else:
        table = predict_lib.predict_table(predictor, scores, search_space)
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out, index=False, float_format="%.6g")
    for row in table.head(top).itertuples():
        typer.echo(f"{row.value:.4f}  {row.arch}")
    console.print(f"predicted {predictor.target} of {len(table)} architectures; wrote {out}", highlight=False)
