"""The end-to-end pipeline above search/: search, train the winner, evaluate it, report; one TOML config.

Each stage writes its output under ``out`` and is skipped when that output exists, so an
interrupted pipeline resumes at the stage it was in (the search resumes from its history, the
training from ``train/last.pt``). Config (all paths relative to the config file)::

    out = "runs/demo"
    [search]                      # robnas.search.config.SearchConfig (as robnas search)
    space = "nb201"; strategy = "evolution"; objective = "croze"; budget = 100; seed = 0
    options = { init_pool = 20 }  # strategy options
    data = "cifar10.npz"; batch_size = 8; scores = "scores.csv"; benchmark = "robustness"
                                  # (or NAME:PATH, e.g. "nas-robbench-201:nas_robbench201")
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
    baselines = ["preact_resnet18"] # zoo models trained and evaluated beside the winner, same recipe
    [evaluate]                    # robnas.evaluate.run on the test split
    data = "cifar10.npz"; attacks = ["fgsm@8", "pgd@8"]; corruptions = ["gaussian_noise@3"]; limit = 500
    corruption_preset = "cifar"   # default: the preset made for the image size (16, 32 or 224)

Outputs: ``search.sqlite`` + ``search.json`` (the winner and the search cost), ``train/``
(checkpoints, log) + ``train.json``, ``evaluate.json`` (the robustness table and its summary),
``evaluate/`` (the table written row by row, so a killed evaluation resumes where it was),
``report.md`` with ``search_history.png``, ``accuracy_vs_eps.png`` (accuracy against eps per
attack) and ``corruptions.png`` (corruption x severity accuracy), the figures of
``robnas evaluate``. Each baseline gets ``baselines/NAME/`` (its training run, ``train.json``,
``evaluate/`` and ``evaluate.json``); the report then compares them with the winner side by side
(parameters, training time, accuracy against eps, corruptions; ``baselines_vs_eps.png``).
Adding a baseline to a finished pipeline trains and evaluates only that one.

Data paths, ``imagefolder:DIR`` (``imagefolder@32:DIR`` resizes to 32 x 32) included, are
relative to the config file.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from robnas.errors import ConfigError, DataError, RobnasError

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
        "baselines",
    },
    "evaluate": {"data", "attacks", "corruptions", "corruption_preset", "limit", "batch_size", "device", "seed"},
}


def _target_benchmarks() -> list[str]:
    from robnas.benchmarks import target_benchmarks

    return target_benchmarks()


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
        kind, sep, rest = value.partition(":") if isinstance(value, str) else ("", "", "")
        spec_kind = kind in _target_benchmarks() if key == "benchmark" else kind.partition("@")[0] == "imagefolder"
        if sep and spec_kind:  # NAME:PATH or imagefolder:DIR, the PATH relative to the config
            config[section][key] = f"{kind}:{resolved(rest)}"
        elif isinstance(value, str) and not value.startswith("synthetic") and ":" not in value:
            config[section][key] = resolved(value)
    _baseline_names(config)  # unknown names are found before any work
    return config


def _baseline_names(config: dict[str, Any]) -> list[str]:
    """The zoo models of ``[train] baselines`` (UnknownName, with suggestions, for a wrong one)."""
    from robnas import zoo

    names = config["train"].get("baselines", [])
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ConfigError('[train] baselines must be a list of zoo names, e.g. ["preact_resnet18", "wrn_28_10"]')
    for name in names:
        zoo.get_entry(name)
    return list(dict.fromkeys(names))


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
    result.require_values()
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
        "cost": result.cost_summary(),
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
            robust = row["val_robust_acc"]  # NaN: the recipe does not train adversarially
            log(
                f"train epoch {row['epoch']}/{event['epochs']}: loss {row['loss']:.4f}, "
                f"val clean {row['val_clean_acc']:.3f}" + ("" if math.isnan(robust) else f", val robust {robust:.3f}")
            )

    return progress


def _train_images(config: dict[str, Any]) -> Any:
    from robnas import data as data_lib

    t = config["train"]
    subset = t.get("subset")
    return data_lib.random_subset(
        data_lib.load(t.get("data", "synthetic"), "train"),
        None if subset is None else int(subset),
        int(t.get("seed", 0)),
    )


def _train_network(
    config: dict[str, Any], model: Any, arch: str, options: dict[str, Any], images: Any, folder: Path, log: Log
) -> dict[str, Any]:
    """Train ``model`` (named ``arch``) with the ``[train]`` recipe into ``folder`` (resuming from
    its ``last.pt``); the summary a ``train.json`` holds."""
    from robnas import train
    from robnas.train.recipes import settings_from_255

    t = config["train"]
    result = train.fit(
        model,
        images,
        t.get("recipe", "standard"),
        folder,
        epochs=t.get("epochs"),
        batch_size=t.get("batch_size"),
        seed=int(t.get("seed", 0)),
        val_fraction=float(t.get("val_fraction", 0.1)),
        resume=True,
        device=t.get("device", "auto"),
        overrides=settings_from_255(dict(t.get("options", {}))) or None,  # eps, step sizes in 1/255
        progress=_epoch_line(log),
        meta={"arch": arch, "arch_options": options, "subset": t.get("subset")},
    )
    return {
        "folder": str(folder),
        "epochs": result.epochs_done,
        "best_epoch": result.best_epoch,
        "history": result.history,
        "num_classes": images.num_classes,
        "images": len(images),
        "classes": images.class_counts(),
        "model": options,
        "parameters": sum(p.numel() for p in model.parameters()),
        "seconds": sum(float(row.get("seconds", 0.0)) for row in result.history),
    }


def stage_train(
    config: dict[str, Any], out: Path, searched: dict[str, Any], log: Log = _quiet
) -> dict[str, Any]:
    """Train the winner with the recipe (resuming from ``train/last.pt``); ``train.json`` marks it done."""
    done = out / "train.json"
    if done.is_file():
        return json.loads(done.read_text())
    images = _train_images(config)
    options = _build_options(config["train"], "train")
    model = _model(searched["space"], searched["winner"], images.num_classes, int(config["train"].get("seed", 0)), options)
    arch = f"{searched['space']}:{searched['winner']}"
    summary = _train_network(config, model, arch, options, images, out / "train", log)
    _write_json(done, summary)
    return summary


def stage_evaluate(
    config: dict[str, Any], out: Path, searched: dict[str, Any], trained: dict[str, Any], log: Log = _quiet
) -> dict[str, Any]:
    """Clean, attack and corruption accuracy of the trained winner; ``evaluate.json``."""
    done = out / "evaluate.json"
    if done.is_file():
        return json.loads(done.read_text())
    checkpoint = Path(trained["folder"]) / "last.pt"
    if not checkpoint.is_file():
        raise DataError(f"{checkpoint}: the trained checkpoint is missing; delete train.json to retrain")
    model = _model(
        searched["space"], searched["winner"], int(trained["num_classes"]), 0, trained.get("model", {})
    )
    identity = {"space": searched["space"], "arch": searched["winner"], "model": trained.get("model", {})}
    summary = _evaluate_network(config, model, checkpoint, identity, out / "evaluate", log)
    _write_json(done, summary)
    return summary


def _evaluate_network(
    config: dict[str, Any], model: Any, checkpoint: Path, identity: dict[str, Any], folder: Path, log: Log
) -> dict[str, Any]:
    """The ``[evaluate]`` table of ``model`` with the weights of ``checkpoint``, kept row by row in
    ``folder``; the summary an ``evaluate.json`` holds."""
    from robnas import data as data_lib
    from robnas import evaluate, targets
    from robnas.models import load_trained

    e = config["evaluate"]
    test = data_lib.load(e.get("data", "synthetic"), "test")
    wrapped, _ = load_trained(checkpoint, model)
    settings = {"evaluate": e, **identity, "checkpoint_sha256": evaluate.file_digest(checkpoint)}
    table = evaluate.run_in_folder(
        folder,
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
    return {"table": table, "summary": evaluate.summary(table)}


def stage_baselines(
    config: dict[str, Any],
    out: Path,
    searched: dict[str, Any],
    trained: dict[str, Any],
    evaluated: dict[str, Any],
    log: Log = _quiet,
) -> dict[str, Any]:
    """Train and evaluate each ``[train] baselines`` zoo model as the winner was (same recipe,
    data, seed, evaluation), in ``baselines/NAME/``; a finished one is kept."""
    import torch

    from robnas.models import build_model
    from robnas.seeding import stable_seed

    results: dict[str, Any] = {}
    images = None
    seed = int(config["train"].get("seed", 0))
    for name in _baseline_names(config):
        folder = out / "baselines" / name
        train_done, eval_done = folder / "train.json", folder / "evaluate.json"
        if train_done.is_file():
            trained_b = json.loads(train_done.read_text())
        else:
            log(f"baseline {name}: training")
            images = images if images is not None else _train_images(config)
            torch.manual_seed(stable_seed(seed, name))
            model = build_model(name, images.num_classes)
            trained_b = _train_network(config, model, name, {}, images, folder / "train", log)
            _write_json(train_done, trained_b)
        if eval_done.is_file():
            evaluated_b = json.loads(eval_done.read_text())
        else:
            log(f"baseline {name}: evaluating")
            checkpoint = Path(trained_b["folder"]) / "last.pt"
            if not checkpoint.is_file():
                raise DataError(f"{checkpoint}: the trained checkpoint is missing; delete {train_done} to retrain")
            model = build_model(name, int(trained_b["num_classes"]))
            evaluated_b = _evaluate_network(config, model, checkpoint, {"arch": name}, folder / "evaluate", log)
            _write_json(eval_done, evaluated_b)
        results[name] = {"train": trained_b, "evaluate": evaluated_b}
    return results


def _comparison(
    out: Path, searched: dict[str, Any], trained: dict[str, Any], evaluated: dict[str, Any], baselines: dict[str, Any]
) -> list[str]:
    """The report's side-by-side section: the winner and each baseline (parameters, training
    time, clean and attack accuracy, corruptions) and ``baselines_vs_eps.png``."""
    from robnas import report

    runs = {"winner": (trained, evaluated["table"])}
    runs.update({name: (b["train"], b["evaluate"]["table"]) for name, b in baselines.items()})
    labels = list(dict.fromkeys(r["label"] for _, table in runs.values() for r in table if r["kind"] != "corruption"))
    corruptions = list(
        dict.fromkeys(r["label"] for _, table in runs.values() for r in table if r["kind"] == "corruption")
    )

    def accuracy(table: list[dict[str, Any]], label: str) -> str:
        row = next((r for r in table if r["label"] == label), None)
        return "-" if row is None else f"{100 * row['accuracy']:.2f}"

    def seconds(summary: dict[str, Any]) -> str:
        return "-" if summary.get("seconds") is None else f"{summary['seconds']:.0f}"

    head = ["model", "params (M)", "training (s)", *[f"{label} (%)" for label in labels]]
    if corruptions:
        head.append("corruptions, mean (%)")
    lines = [
        "## Winner and baselines",
        "",
        f"The same recipe, data, seed and evaluation for each; winner: `{searched['space']}:{searched['winner']}`.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for name, (t, table) in runs.items():
        cells = [name, f"{t.get('parameters', 0) / 1e6:.3f}", seconds(t), *[accuracy(table, lb) for lb in labels]]
        if corruptions:
            values = [r["accuracy"] for r in table if r["kind"] == "corruption"]
            cells.append(f"{100 * sum(values) / len(values):.2f}" if values else "-")
        lines.append("| " + " | ".join(cells) + " |")
    if corruptions:
        lines += ["", "| corruption (%) | " + " | ".join(runs) + " |", "|---|" + "---|" * len(runs)]
        lines += [f"| {c} | " + " | ".join(accuracy(table, c) for _, table in runs.values()) + " |" for c in corruptions]
    plt = report.plt
    fig, ax = plt.subplots(figsize=(6, 4))
    drawn = False
    for i, (name, (_, table)) in enumerate(runs.items()):
        clean = next((r["accuracy"] for r in table if r["kind"] == "clean"), None)
        attacks = sorted({r["name"] for r in table if r["kind"] == "attack" and r.get("eps") is not None})
        for j, attack in enumerate(attacks):
            rows = sorted((r for r in table if r["name"] == attack and r.get("eps") is not None), key=lambda r: r["eps"])
            xs = ([0.0] if clean is not None else []) + [255 * r["eps"] for r in rows]
            ys = ([clean] if clean is not None else []) + [r["accuracy"] for r in rows]
            ax.plot(xs, [100 * y for y in ys], color=f"C{i}", linestyle=("-", "--", ":", "-.")[j % 4],
                    marker="o", label=f"{name}: {attack}")  # fmt: skip
            drawn = True
    if drawn:
        ax.set_xlabel("eps (1/255)")
        ax.set_ylabel("accuracy (%)")
        ax.set_ylim(0, 100)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        report.save_figure(fig, out / "baselines_vs_eps.png")
        lines += ["", "![winner and baselines against eps](baselines_vs_eps.png)"]
    else:
        plt.close(fig)
    return [*lines, ""]


def write_report(
    out: Path,
    searched: dict[str, Any],
    trained: dict[str, Any],
    evaluated: dict[str, Any],
    baselines: dict[str, Any] | None = None,
) -> Path:
    """``report.md`` with the search history and the robustness figures of :mod:`robnas.report`,
    and the winner beside the ``baselines`` (``{name: {"train", "evaluate"}}``) when there are any."""
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
        f"- {trained['epochs']} epochs in `{trained['folder']}`"
        + (f" ({trained['seconds']:.0f} s)" if trained.get("seconds") is not None else "")
        + "; last epoch: "
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
    if baselines:
        lines += _comparison(out, searched, trained, evaluated, baselines)
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path


def check_config(config: dict[str, Any]) -> None:
    """Check every stage's settings before any work: names (space, strategy, recipe, attacks,
    corruptions), recipe settings and counts; a bad one raises ConfigError naming its section."""
    from robnas import evaluate, spaces, targets, train
    from robnas.search.base import STRATEGIES
    from robnas.search.config import SearchConfig
    from robnas.train.recipes import settings_from_255

    s, t, e = config["search"], config["train"], config["evaluate"]
    search = SearchConfig.from_mapping({k: v for k, v in s.items() if k != "winner"})  # its keys and types
    needing = search.needs_data() if "data" not in s else []
    if needing:  # as robnas search: no silent random images where a value depends on them
        raise ConfigError(
            f"[search] {', '.join(needing)} depend{'s' if len(needing) == 1 else ''} on the images: set "
            'data = "PATH.npz" (or "cifar10:ROOT", "imagefolder:DIR", ...; "synthetic": random images, only to test)'
        )
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
        ("train", lambda: train.get(t.get("recipe", "standard")).replace(**settings_from_255(options))),
        ("evaluate", lambda: [evaluate.parse_attack(a) for a in targets.split_specs(e.get("attacks", []))]),
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
    current["train"].pop("baselines", None)  # baselines are trained beside the run, never change it
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
    baselines = stage_baselines(config, out, *stages, log=log) if config["train"].get("baselines") else None
    return write_report(out, *stages, baselines=baselines)
