"""The end-to-end pipeline above search/: search, train the winner, evaluate it, report; one TOML config.

Each stage writes its output under ``out`` and is skipped when that output exists, so an
interrupted pipeline resumes at the stage it was in (the search resumes from its history, the
training from ``train/last.pt``). Config (all paths relative to the config file)::

    out = "runs/demo"
    [search]                      # robnas.search.config.SearchConfig (as robnas search)
    space = "nb201"; strategy = "evolution"; objective = "croze"; budget = 100; seed = 0
    options = { init_pool = 20 }  # strategy options
    data = "cifar10.npz"; batch_size = 8; scores = "scores.csv"; benchmark = "robustness"
    model = { C = 16, layers = 8 } # network build options while searching (default: the space's)
    winner = "best"               # the row of highest value; "final": the strategy's own answer,
                                  # its row marked info["final"] (one-shot searches: wsr-nas)
    supernet = "supernet/last.pt" # a one-shot stage: robnas supernet train's checkpoint, for the
                                  # robnets strategy and oneshot: objectives
    workers = 4; backend = "ray"; address = "auto"  # where batches of candidates are evaluated
                                  # (robnas search --workers/--backend/--address; default: serially)
    [train]                       # robnas.train.fit
    recipe = "standard"; epochs = 1; data = "cifar10.npz"; batch_size = 128; device = "auto"
    options = { eps = 8, step_size = 2 } # recipe settings, eps and step sizes in 1/255 (as --set)
    subset = 4000                 # train on N training images drawn with the seed (default: all)
    model = { C = 16, layers = 8 } # build options of the trained and evaluated network
    [evaluate]                    # robnas.evaluate.run on the test split
    data = "cifar10.npz"; attacks = ["fgsm@8", "pgd@8"]; corruptions = ["gaussian_noise@3"]; limit = 500
    corruption_preset = "cifar"   # default: the preset made for the image size (16, 32 or 224)

Outputs: ``search.sqlite`` + ``search.json`` (the winner and the search cost), ``train/``
(checkpoints, log) + ``train.json``, ``evaluate.json`` (the robustness table and its summary),
``evaluate/`` (the table written row by row, so a killed evaluation resumes where it was),
``report.md`` with ``search_history.png``, ``accuracy_vs_eps.png`` (accuracy against eps per
attack) and ``corruptions.png`` (corruption x severity accuracy), the figures of
``robnas evaluate``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from robnas.errors import ConfigError, DataError

SECTIONS = {
    "search": {"winner"},  # and the fields of robnas.search.config.SearchConfig
    "train": {
        "recipe",
        "epochs",
        "data",
        "batch_size",
        "device",
        "seed",
        "val_fraction",
        "options",
        "subset",
        "model",
    },
    "evaluate": {"data", "attacks", "corruptions", "corruption_preset", "limit", "batch_size", "device", "seed"},
}


def _section_keys(section: str) -> set[str]:
    """The keys a config section may hold; ``[search]``: those of :class:`SearchConfig` and ``winner``."""
    if section == "search":
        from robnas.search.config import SearchConfig

        return SearchConfig.keys() | SECTIONS["search"]
    return SECTIONS[section]


def load_config(path: str | Path) -> dict[str, Any]:
    """The parsed and checked config; relative paths are resolved against the config's folder."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        try:
            import tomli as tomllib
        except ModuleNotFoundError:
            raise ConfigError("reading TOML needs Python 3.11+ (tomllib) or the tomli package") from None
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: pipeline config not found")
    try:
        config = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    unknown = set(config) - {"out", *SECTIONS}
    if unknown:
        raise ConfigError(f"{path}: unknown keys {sorted(unknown)} (expected out, search, train, evaluate)")
    for section in SECTIONS:
        keys = _section_keys(section)
        if section not in config:
            raise ConfigError(f"{path}: missing [{section}] section")
        bad = set(config[section]) - keys
        if bad:
            raise ConfigError(f"{path}: unknown keys {sorted(bad)} in [{section}] (known: {sorted(keys)})")
    base = path.parent

    def resolved(value: str) -> str:
        return os.path.normpath(base / value)

    config["out"] = resolved(config.get("out", path.stem))
    for section, key in (
        ("search", "data"),
        ("search", "scores"),
        ("search", "benchmark"),
        ("search", "nb201"),
        ("search", "supernet"),
        ("train", "data"),
        ("evaluate", "data"),
    ):
        value = config[section].get(key)
        if isinstance(value, str) and not value.startswith("synthetic") and ":" not in value:
            config[section][key] = resolved(value)
    return config


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str))
    tmp.replace(path)


Log = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


def stage_search(config: dict[str, Any], out: Path, log: Log = _quiet) -> dict[str, Any]:
    """Run (or resume) the search; ``search.json`` holds the winner."""
    from robnas.search.config import SearchConfig

    done = out / "search.json"
    if done.is_file():
        return json.loads(done.read_text())
    s = config["search"]
    search = SearchConfig.from_mapping({k: v for k, v in s.items() if k != "winner"})
    budget = search.budget
    pick = s.get("winner", "best")
    if pick not in ("best", "final"):
        raise ConfigError(f"[search] winner must be 'best' or 'final', got {pick!r}")
    best = -math.inf

    def progress(row: Any) -> None:
        nonlocal best
        if not math.isnan(row.value):
            best = max(best, row.value)
        log(f"search {row.step}/{budget}: {row.value:.4g} in {row.cost.wall:.1f} s (best this session {best:.4g})")

    result = search.run(out / "search.sqlite", progress)
    if pick == "final":
        finals = [r for r in result.history if r.info.get("final")]
        if not finals:
            raise ConfigError(
                f"[search] winner = 'final': strategy {search.strategy!r} marked no final answer"
            )
        best = finals[-1]
    else:
        best = result.best(1)[0]
    summary = {
        "run": result.run,
        "space": result.space,
        "winner": best.arch,
        "value": None if math.isnan(best.value) else best.value,
        "objectives": result.objectives,
        "evaluated": result.evaluated,
        "status": result.status,
        "history": [[r.step, None if math.isnan(r.value) else r.value] for r in result.history],
        "cost": {
            "evaluations": dataclasses.asdict(result.evaluation_cost),
            "setup": {k: dataclasses.asdict(v) for k, v in result.setup.items()},
            "sessions": dataclasses.asdict(result.total),
        },
    }
    _write_json(done, summary)
    return summary


def _build_options(section: dict[str, Any], name: str) -> dict[str, Any]:
    options = section.get("model", {})
    if not isinstance(options, dict):
        raise ConfigError(f"[{name}] model must be a table of build options, e.g. {{ C = 16, layers = 8 }}")
    return dict(options)


def _model(space_name: str, arch: str, num_classes: int, seed: int, options: dict[str, Any]) -> Any:
    import torch

    from robnas.models import build_model
    from robnas.seeding import stable_seed

    torch.manual_seed(stable_seed(seed, arch))
    try:
        return build_model(f"{space_name}:{arch}", num_classes, **options)
    except (TypeError, ConfigError) as exc:  # an option the space's build does not take
        raise ConfigError(f"[train] model: {exc}") from None


def _epoch_line(log: Log) -> Any:
    """A training progress callback that logs one line per finished epoch."""

    def progress(event: dict[str, Any]) -> None:
        if event["event"] == "epoch_end":
            row = event["row"]
            log(
                f"train epoch {row['epoch']}/{event['epochs']}: loss {row['loss']:.4f}, "
                f"val clean {row['val_clean_acc']:.3f}, val robust {row['val_robust_acc']:.3f}"
            )

    return progress


def stage_train(
    config: dict[str, Any], out: Path, searched: dict[str, Any], log: Log = _quiet
) -> dict[str, Any]:
    """Train the winner with the recipe (resuming from ``train/last.pt``); ``train.json`` marks it done."""
    from robnas import data as data_lib
    from robnas import train

    done = out / "train.json"
    if done.is_file():
        return json.loads(done.read_text())
    t = config["train"]
    seed = int(t.get("seed", 0))
    subset = t.get("subset")
    images = data_lib.random_subset(
        data_lib.load(t.get("data", "synthetic"), "train"), None if subset is None else int(subset), seed
    )
    from robnas.train.recipes import settings_from_255

    options = _build_options(t, "train")
    model = _model(searched["space"], searched["winner"], images.num_classes, seed, options)
    folder = out / "train"
    result = train.fit(
        model,
        images,
        t.get("recipe", "standard"),
        folder,
        epochs=t.get("epochs"),
        batch_size=t.get("batch_size"),
        seed=seed,
        val_fraction=float(t.get("val_fraction", 0.1)),
        resume=(folder / "last.pt").is_file(),
        device=t.get("device", "auto"),
        overrides=settings_from_255(dict(t.get("options", {}))) or None,  # eps, step sizes in 1/255
        progress=_epoch_line(log),
        meta={"arch": f"{searched['space']}:{searched['winner']}", "arch_options": options, "subset": subset},
    )
    summary = {
        "folder": str(folder),
        "epochs": result.epochs_done,
        "best_epoch": result.best_epoch,
        "history": result.history,
        "num_classes": images.num_classes,
        "images": len(images),
        "model": options,
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    _write_json(done, summary)
    return summary


def stage_evaluate(
    config: dict[str, Any], out: Path, searched: dict[str, Any], trained: dict[str, Any], log: Log = _quiet
) -> dict[str, Any]:
    """Clean, attack and corruption accuracy of the trained winner; ``evaluate.json``."""
    from robnas import data as data_lib
    from robnas import evaluate, targets
    from robnas.models import load_trained

    done = out / "evaluate.json"
    if done.is_file():
        return json.loads(done.read_text())
    e = config["evaluate"]
    test = data_lib.load(e.get("data", "synthetic"), "test")
    checkpoint = Path(trained["folder"]) / "last.pt"
    if not checkpoint.is_file():
        raise DataError(f"{checkpoint}: the trained checkpoint is missing; delete train.json to retrain")
    model = _model(
        searched["space"], searched["winner"], int(trained["num_classes"]), 0, trained.get("model", {})
    )
    wrapped, _ = load_trained(checkpoint, model)
    settings = {
        "evaluate": e,
        "space": searched["space"],
        "arch": searched["winner"],
        "model": trained.get("model", {}),
        "checkpoint_sha256": evaluate.file_digest(checkpoint),
    }
    table = evaluate.run_in_folder(
        out / "evaluate",
        settings,
        wrapped,
        test,
        targets.split_specs(e.get("attacks", [])),
        list(e.get("corruptions", [])),
        log=log,
        batch_size=int(e.get("batch_size", 128)),
        limit=e.get("limit"),
        device=e.get("device", "auto"),
        seed=int(e.get("seed", 0)),
        corruption_preset=e.get("corruption_preset"),
        progress=lambda label, done, total: log(f"evaluate {label}: done") if done == total else None,
    )
    summary = {"table": table, "summary": evaluate.summary(table)}
    _write_json(done, summary)
    return summary


def write_report(
    out: Path, searched: dict[str, Any], trained: dict[str, Any], evaluated: dict[str, Any]
) -> Path:
    """``report.md`` with the search history and the robustness figures of :mod:`robnas.report`."""
    from robnas import report  # importing it switches matplotlib to the file-only Agg backend

    plt = report.plt
    steps = [s for s, v in searched["history"] if v is not None]
    values = [v for s, v in searched["history"] if v is not None]
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot(steps, values, ".", alpha=0.5, label="evaluated")
    running = [max(values[: i + 1]) for i in range(len(values))]
    ax.plot(steps, running, "-", label="best so far")
    ax.set_xlabel("objective query")
    ax.set_ylabel(searched["objectives"][0].split("|")[0])
    ax.legend()
    report.save_figure(fig, out / "search_history.png")

    table = evaluated["table"]
    figures = [
        report.accuracy_vs_eps(table, out / "accuracy_vs_eps.png"),
        report.corruption_heatmap(table, out / "corruptions.png"),
    ]

    cost = searched["cost"]
    last = trained["history"][-1] if trained["history"] else {}
    lines = [
        "# robnas pipeline report",
        "",
        "## Search",
        "",
        f"- run `{searched['run']}` ({searched['status']}), {searched['evaluated']} objective queries",
        f"- objective(s): {', '.join(f'`{o}`' for o in searched['objectives'])}",
        f"- winner: `{searched['winner']}` (value {searched['value']})",
        f"- search cost (s): wall {cost['sessions']['wall']:.1f}, CPU {cost['sessions']['cpu']:.1f}, "
        f"GPU {cost['sessions']['gpu']:.1f}; objective evaluations wall {cost['evaluations']['wall']:.1f}",
        "",
        "![search history](search_history.png)",
        "",
        "## Training",
        "",
        f"- network: {trained.get('parameters', 0) / 1e6:.3f} M parameters"
        + (f", build options {trained['model']}" if trained.get("model") else "")
        + f"; {trained.get('images', '?')} training images (validation split included)",
        f"- {trained['epochs']} epochs in `{trained['folder']}`; last epoch: "
        + ", ".join(f"{k} {v:.4g}" for k, v in last.items() if isinstance(v, (int, float))),
        "",
        "## Evaluation",
        "",
        "| perturbation | n | accuracy (%) |",
        "|---|---|---|",
        *[f"| {r['label']} | {r['n']} | {100 * r['accuracy']:.2f} |" for r in table],
        "",
        *[f"![{p.stem}]({p.name})" for p in figures if p is not None],
        "",
    ]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path


def _check_same_config(out: Path, config: dict[str, Any]) -> None:
    """Resume only the run this config started: a changed config never reuses stale stages."""
    recorded = out / "config.json"
    current = json.loads(json.dumps(config, default=str))
    if not recorded.is_file():
        _write_json(recorded, current)
        return
    previous = json.loads(recorded.read_text())
    changed = sorted(k for k in set(previous) | set(current) if previous.get(k) != current.get(k))
    if changed:
        raise ConfigError(
            f"{out} holds a pipeline run with a different config (changed: {', '.join(changed)}); "
            "choose another 'out' or delete that folder to start afresh"
        )


def run_pipeline(config_path: str | Path, log: Log = _quiet) -> Path:
    """Run every stage not yet done; returns the report's path. ``log`` receives progress lines
    (and turns on the training progress bar)."""
    config = load_config(config_path)
    out = Path(config["out"])
    out.mkdir(parents=True, exist_ok=True)
    _check_same_config(out, config)
    stages: list[Any] = []
    for name, stage in (("search", stage_search), ("train", stage_train), ("evaluate", stage_evaluate)):
        done = (out / f"{name}.json").is_file()
        log(f"{name}: already done, kept" if done else f"{name}: running")
        start = time.perf_counter()
        stages.append(stage(config, out, *stages, log=log))
        if not done:
            log(f"{name}: done in {time.perf_counter() - start:.0f} s")
    return write_report(out, *stages)
