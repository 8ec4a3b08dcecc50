"""The end-to-end pipeline above search/: search, train the winner, evaluate it, report; one TOML config.

Each stage writes its output under ``out`` and is skipped when that output exists, so an
interrupted pipeline resumes at the stage it was in (the search resumes from its history, the
training from ``train/last.pt``). Config (all paths relative to the config file)::

    out = "runs/demo"
    [search]                      # robnas.search.run_search + robnas.objectives.ObjectiveContext
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

from robnas.errors import ConfigError, DataError, RobnasError

SECTIONS = {
    "search": {
        "space",
        "strategy",
        "objective",
        "budget",
        "seed",
        "options",
        "data",
        "batch_size",
        "batch_mode",
        "device",
        "scores",
        "within_scores",
        "benchmark",
        "dataset",
        "reference_size",
        "train_epochs",
        "train_metric",
        "model",
        "max_params_m",
        "nb201",
        "winner",
        "supernet",
        "workers",
        "backend",
        "address",
    },
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
    for section, keys in SECTIONS.items():
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
    from robnas import objectives
    from robnas.search.base import run_search
    from robnas.spaces import get as get_space

    done = out / "search.json"
    if done.is_file():
        return json.loads(done.read_text())
    s = config["search"]
    seed = int(s.get("seed", 0))
    context = objectives.ObjectiveContext(
        data=s.get("data", "synthetic"),
        batch_size=int(s.get("batch_size", 64)),
        batch_mode=s.get("batch_mode", "random"),
        seed=seed,
        device=s.get("device", "cpu"),
        scores=s.get("scores"),
        benchmark=s.get("benchmark"),
        nb201=s.get("nb201"),
        dataset=s.get("dataset", "cifar10"),
        reference_size=int(s.get("reference_size", 64)),
        train={"epochs": int(s.get("train_epochs", 1)), "metric": s.get("train_metric", "clean")},
        model=_build_options(s, "search"),
        supernet=s.get("supernet"),
    )
    space = s.get("space", "nb201")
    candidates = None
    if s.get("within_scores"):
        table = context.table(get_space(space))
        if table is None:
            raise ConfigError("[search] within_scores needs scores = CSV")
        candidates = table.archs
    budget = int(s.get("budget", 100))
    pick = s.get("winner", "best")
    if pick not in ("best", "final"):
        raise ConfigError(f"[search] winner must be 'best' or 'final', got {pick!r}")
    best = -math.inf

    def progress(row: Any) -> None:
        nonlocal best
        if not math.isnan(row.value):
            best = max(best, row.value)
        log(f"search {row.step}/{budget}: {row.value:.4g} in {row.cost.wall:.1f} s (best this session {best:.4g})")

    result = run_search(
        space,
        s.get("strategy", "evolution"),
        s.get("objective", "croze"),
        budget,
        seed=seed,
        out=out / "search.sqlite",
        options=dict(s.get("options", {})),
        context=context,
        candidates=candidates,
        progress=progress,
        space_options=_space_options(s),
        backend=s.get("backend", "process"),
        workers=int(s.get("workers", 1)),
        address=s.get("address"),
    )
    result.require_values()
    if pick == "final":
        finals = [r for r in result.history if r.info.get("final")]
        if not finals:
            raise ConfigError(
                f"[search] winner = 'final': strategy {s.get('strategy', 'evolution')!r} marked no final answer"
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


def _space_options(section: dict[str, Any]) -> dict[str, Any]:
    """``max_params_m = 6`` (or ``"none"``) in ``[search]``; absent: the space's default cap."""
    if "max_params_m" not in section:
        return {}
    value = section["max_params_m"]
    if isinstance(value, str) and value.lower() == "none":
        value = None
    return {"max_params_m": value}


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
        resume=True,
        device=t.get("device", "auto"),
        overrides=dict(t.get("options", {})) or None,
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
    from robnas import evaluate
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
        evaluate.split_specs(e.get("attacks", [])),
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


def check_config(config: dict[str, Any]) -> None:
    """Check every stage's settings before any work: names (space, strategy, recipe, attacks,
    corruptions), recipe settings and counts; a bad one raises ConfigError naming its section."""
    from robnas import evaluate, spaces, train
    from robnas.search.base import STRATEGIES

    s, t, e = config["search"], config["train"], config["evaluate"]
    spaces.get(s.get("space", "nb201"))
    STRATEGIES.get(s.get("strategy", "evolution"))
    if s.get("winner", "best") not in ("best", "final"):
        raise ConfigError(f"[search] winner must be 'best' or 'final', got {s.get('winner')!r}")
    for section, name, key in (
        (s, "search", "budget"), (s, "search", "batch_size"), (s, "search", "train_epochs"),
        (t, "train", "epochs"), (t, "train", "batch_size"), (t, "train", "subset"),
        (e, "evaluate", "limit"), (e, "evaluate", "batch_size"),
    ):  # fmt: skip
        value = section.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ConfigError(f"[{name}] {key} must be a whole number >= 1, got {value!r}")
    for section, name in ((s, "search"), (t, "train")):
        _build_options(section, name)
    options = t.get("options", {})
    if not isinstance(options, dict):
        raise ConfigError("[train] options must be a table of recipe settings, e.g. { steps = 10 }")
    checks = (
        ("train", lambda: train.get(t.get("recipe", "standard")).replace(**options)),
        ("evaluate", lambda: [evaluate.parse_attack(a) for a in evaluate.split_specs(e.get("attacks", []))]),
        ("evaluate", lambda: [evaluate.parse_corruption(c) for c in e.get("corruptions", [])]),
    )
    for section, check in checks:
        try:
            check()
        except RobnasError as exc:
            raise ConfigError(f"[{section}] {exc}") from None


#: Each stage's section, the file that marks it finished and the folder of its partial work.
STAGE_FILES = {
    "search": ("search.json", None),
    "train": ("train.json", "train"),
    "evaluate": ("evaluate.json", "evaluate"),
}


def _check_same_config(out: Path, config: dict[str, Any]) -> list[str]:
    """Resume only what this config made: a changed section of a finished stage is refused; a
    changed section of an unfinished one restarts that stage (its and later stages' partial work
    is removed) and keeps the finished stages. Returns the restarted stages."""
    import shutil

    recorded = out / "config.json"
    current = json.loads(json.dumps(config, default=str))
    if not recorded.is_file():
        _write_json(recorded, current)
        return []
    previous = json.loads(recorded.read_text())
    changed = [k for k in SECTIONS if previous.get(k) != current.get(k)]
    finished = [k for k in changed if (out / STAGE_FILES[k][0]).is_file()]
    if finished:
        keys = sorted(
            f"[{k}] {key}"
            for k in finished
            for key in set(previous.get(k, {})) | set(current.get(k, {}))
            if previous.get(k, {}).get(key) != current.get(k, {}).get(key)
        )
        marks = ", ".join(STAGE_FILES[k][0] for k in finished)
        raise ConfigError(
            f"{out} holds a pipeline run whose finished stage(s) {', '.join(finished)} had a different config "
            f"(changed: {', '.join(keys)}); choose another 'out', or delete {marks} to run them again"
        )
    stages = list(STAGE_FILES)
    for stage in stages[min((stages.index(k) for k in changed), default=len(stages)) :]:
        folder = STAGE_FILES[stage][1]  # this stage's and every later stage's partial work is stale
        if folder is not None and (out / folder).is_dir():
            shutil.rmtree(out / folder)
    if changed:
        _write_json(recorded, current)
    return changed


def run_pipeline(config_path: str | Path, log: Log = _quiet) -> Path:
    """Run every stage not yet done; returns the report's path. ``log`` receives progress lines
    (and turns on the training progress bar)."""
    config = load_config(config_path)
    out = Path(config["out"])
    check_config(config)
    out.mkdir(parents=True, exist_ok=True)
    for stage in _check_same_config(out, config):
        log(f"{stage}: its config changed before it finished; starting it again")
    stages: list[Any] = []
    for name, stage in (("search", stage_search), ("train", stage_train), ("evaluate", stage_evaluate)):
        done = (out / f"{name}.json").is_file()
        log(f"{name}: already done, kept" if done else f"{name}: running")
        start = time.perf_counter()
        stages.append(stage(config, out, *stages, log=log))
        if not done:
            log(f"{name}: done in {time.perf_counter() - start:.0f} s")
    return write_report(out, *stages)
