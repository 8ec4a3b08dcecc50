"""Robustness evaluation: clean accuracy, attacks x eps and corruptions x severity in one table.

``run(model, data, attacks=[...], corruptions=[...])`` returns the table as a **list of row
dicts** (``to_dataframe`` turns it into a pandas DataFrame), one row per (perturbation,
strength), with the columns of :data:`COLUMNS`:

* ``kind`` ``clean`` | ``attack`` | ``corruption``; ``name`` (attack or corruption name);
  ``label`` (``pgd@8:steps=20``, ``fog@3``, ``clean``); ``params`` (JSON, Python units);
* ``eps`` (fraction of [0, 1], L-inf attacks), ``eps_255`` (the same in 1/255), ``severity``
  (corruptions, 1-5);
* ``n``, ``correct``, ``accuracy`` (a fraction in [0, 1]);
* ``linf_mean`` and ``l2_mean``: mean over images of the L-inf / L2 norm of
  ``perturbed - clean`` (pixel units in [0, 1]);
* ``seconds``.

The model receives images in [0, 1]. A network trained on normalised inputs must be wrapped
(:func:`robnas.attacks.with_normalization`, or :func:`robnas.models.load_model`, which follows
the checkpoint's record or the dataset's ``MEAN_STD``).

``summary(table, baseline=None)`` condenses the table: clean accuracy, robust accuracy per
attack, the Wsr-NAS average robust accuracy over an eps range, the harmonic robustness score
HRS = 2CR/(C+R) (CRoZe), the mean corruption accuracy and, against a baseline table,
Hendrycks & Dietterich's mCE.

``run_in_folder(folder, settings, model, data, ...)`` keeps the table in ``evaluation.csv`` and
``evaluation.json``, rewritten atomically after every finished row; rerun with the same
``settings`` it keeps the finished rows (one line to ``log``) and computes the rest, with other
settings it raises a ConfigError (``robnas evaluate`` and the pipeline's evaluation stage).

Attack specs: ``pgd@8`` or ``pgd@8:steps=20,alpha=2`` (eps and alpha in 1/255), a bare
``cw``, ``preset:croze-eval``, or ``(name, params)`` in Python units. Corruption specs:
``fog@3``, ``fog`` (all severities), ``all``. Generated corruptions use the preset made for the
image size (:func:`default_preset`: 16 ``imagenet16``, 32 ``cifar``, 224 ``imagenet``); other
sizes need an explicit ``corruption_preset``.
"""

from __future__ import annotations

import csv
import json
import math
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from robnas import attacks as attacks_mod
from robnas import corruptions as corruptions_mod
from robnas import targets
from robnas.data import ImageArrays
from robnas.errors import ConfigError, DataError, RobnasError
from robnas.fingerprint import file_digest
from robnas.runtime import resolve_device
from robnas.units import PIXEL_KEYS

COLUMNS = (
    "kind",
    "name",
    "label",
    "params",
    "eps",
    "eps_255",
    "severity",
    "n",
    "correct",
    "accuracy",
    "linf_mean",
    "l2_mean",
    "seconds",
)
EPS_KEYS = PIXEL_KEYS
Row = dict[str, Any]
#: ``perturb(x, y, batch index) -> perturbed x`` (an attack, a corruption)
Perturb = Callable[[Tensor, Tensor, int], Tensor]
AttackSpec = tuple[str, dict[str, Any]]


# ----------------------------------------------------------------------------------------------
# devices and specs


def parse_attack(spec: str) -> list[AttackSpec]:
    """``pgd@8:steps=20,alpha=2`` -> ``[("pgd", {"eps": 8/255, "steps": 20, "alpha": 2/255})]``.

    The grammar of :mod:`robnas.targets` (eps, alpha and step sizes in 1/255, converted);
    ``preset:NAME`` expands a preset of :mod:`robnas.attacks` (already in Python units).
    """
    text = spec.strip()
    if text.startswith("preset:"):
        value = attacks_mod.preset(text.partition(":")[2])
        return value if isinstance(value, list) else [value]
    target = targets.parse(text, "attack spec")
    name = target.name
    attacks_mod.ATTACKS.get(name)  # UnknownName with suggestions
    params = target.attack_params()
    attacks_mod.validate_params(name, params)
    return [(name, params)]


def parse_corruption(spec: str) -> list[tuple[str, int]]:
    """``fog@3`` -> [("fog", 3)]; ``fog`` -> severities 1-5; ``all`` / ``common`` / ``extra``."""
    text = spec.strip()
    name, at, sev = text.partition("@")
    if name in ("all", "common", "extra"):
        chosen = corruptions_mod.names("common" if name == "all" else name)
    else:
        corruptions_mod.CORRUPTIONS.get(name)
        chosen = [name]
    if at:
        try:  # fog@2+5: the targets fog@2 and fog@5
            levels = [targets.parse(f"{name}@{level}", "corruption spec").severity for level in sev.split("+")]
        except RobnasError:
            raise ConfigError(f"corruption spec {spec!r}: severity after '@' must be 1-5") from None
        for s in levels:
            if not 1 <= s <= 5:
                raise ConfigError(f"corruption spec {spec!r}: severity must be 1-5, got {s}")
    else:
        levels = [1, 2, 3, 4, 5]
    return [(n, s) for n in chosen for s in levels]


def attack_label(name: str, params: dict[str, Any]) -> str:
    """``pgd@8:steps=20`` style label (eps in 1/255, other non-default params listed)."""
    defaults = {
        k: v
        for k, v in attacks_mod.validate_params(name, {}).items()
        if k not in ("train_data", "num_classes", "seed")
    }
    eps = params.get("eps")
    label = name if eps is None or "eps" not in defaults else f"{name}@{_fmt(eps * 255)}"
    extras = []
    for key, value in params.items():
        if key in ("eps", "train_data", "num_classes") or defaults.get(key, object()) == value:
            continue
        shown = _fmt(value * 255) if key in EPS_KEYS and isinstance(value, float) else value
        extras.append(f"{key}={shown}")
    return label + (":" + ",".join(extras) if extras else "")


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def _jsonable(params: dict[str, Any]) -> str:
    return json.dumps({k: v for k, v in params.items() if k != "train_data"}, sort_keys=True, default=str)


# ----------------------------------------------------------------------------------------------
# data


def _batches(data: Any, batch_size: int, limit: int | None) -> Iterator[tuple[Tensor, Tensor]]:
    if isinstance(data, ImageArrays):
        n = len(data) if limit is None else min(limit, len(data))
        for start in range(0, n, batch_size):
            yield data.tensors(np.arange(start, min(start + batch_size, n)))
        return
    if isinstance(data, tuple | list) and len(data) == 2 and isinstance(data[0], Tensor):
        x, y = data
        n = len(x) if limit is None else min(limit, len(x))
        for start in range(0, n, batch_size):
            yield x[start : min(start + batch_size, n)], y[start : min(start + batch_size, n)]
        return
    if isinstance(data, DataLoader | Iterable):
        seen = 0
        for x, y in data:
            if limit is not None and seen >= limit:
                return
            if limit is not None and seen + len(x) > limit:
                x, y = x[: limit - seen], y[: limit - seen]
            seen += len(x)
            yield x, y
        return
    raise ConfigError(
        "data must be a DataLoader of (images, labels), an (images, labels) pair or ImageArrays"
    )


def _count(data: Any, batch_size: int, limit: int | None) -> int:
    if isinstance(data, ImageArrays) or (isinstance(data, tuple | list) and len(data) == 2):
        n = len(data) if isinstance(data, ImageArrays) else len(data[0])
        n = n if limit is None else min(limit, n)
        return math.ceil(n / batch_size)
    if isinstance(data, DataLoader):
        total = len(data)
        if limit is not None and data.batch_size:
            total = min(total, math.ceil(limit / data.batch_size))
        return total
    return 0


#: image side -> the corruption preset made for it: ImageNet16-120 as CRoZe corrupts it (16),
#: CIFAR-10-C / CIFAR-100-C (32), ImageNet-C (224, centre crops)
PRESET_SIZES = {16: "imagenet16", 32: "cifar", 224: "imagenet"}


def default_preset(height: int, width: int | None = None) -> str:
    """The corruption preset of :mod:`robnas.corruptions` made for ``height`` x ``width`` images.

    Only the sizes of :data:`PRESET_SIZES` have one; any other size (Tiny-ImageNet's 64x64, whose
    Tiny-ImageNet-C parameters are not implemented, or an uncropped ImageNet image) raises a
    :class:`ConfigError` asking for an explicit preset, since parameters tuned for another size
    give corruptions of another strength.
    """
    width = height if width is None else width
    if height == width and height in PRESET_SIZES:
        return PRESET_SIZES[height]
    known = ", ".join(f"{name} ({size}x{size})" for size, name in PRESET_SIZES.items())
    raise ConfigError(
        f"no corruption preset is made for {height}x{width} images (presets: {known}); "
        "choose one with corruption_preset (CLI: --corruption-preset)"
    )


# ----------------------------------------------------------------------------------------------
# the evaluation


def _norms(delta: Tensor) -> tuple[Tensor, Tensor]:
    flat = delta.flatten(1).float()
    return flat.abs().amax(1), flat.norm(dim=1)


class _Tally:
    def __init__(self) -> None:
        self.n = self.correct = 0
        self.linf = self.l2 = 0.0
        self.start = time.perf_counter()

    def add(self, logits: Tensor, y: Tensor, delta: Tensor | None) -> None:
        self.n += len(y)
        self.correct += int((logits.argmax(1) == y).sum())
        if delta is not None:
            linf, l2 = _norms(delta)
            self.linf += float(linf.sum())
            self.l2 += float(l2.sum())

    def row(self, with_norms: bool, **fields: Any) -> Row:
        row: Row = {c: None for c in COLUMNS}
        row.update(fields)
        row["n"] = self.n
        row["correct"] = self.correct
        row["accuracy"] = self.correct / self.n if self.n else float("nan")
        if with_norms:
            row["linf_mean"] = self.linf / self.n if self.n else float("nan")
            row["l2_mean"] = self.l2 / self.n if self.n else float("nan")
        row["seconds"] = round(time.perf_counter() - self.start, 4)
        return row


def _predict(model: nn.Module, x: Tensor, amp: bool) -> Tensor:
    with (
        torch.no_grad(),
        torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp and x.device.type == "cuda"),
    ):
        return model(x).float()


def _expand(
    attacks: Iterable[str | AttackSpec], corruptions: Iterable[str | tuple[str, int]]
) -> tuple[list[AttackSpec], list[tuple[str, int]]]:
    attack_specs: list[AttackSpec] = []
    for spec in attacks:
        attack_specs.extend(parse_attack(spec) if isinstance(spec, str) else [(spec[0], dict(spec[1]))])
    corruption_specs: list[tuple[str, int]] = []
    for spec in corruptions:
        corruption_specs.extend(
            parse_corruption(spec) if isinstance(spec, str) else [(spec[0], int(spec[1]))]
        )
    return attack_specs, corruption_specs


def row_key(row: Row) -> str:
    """What a row measures, ``kind:label`` (``attack:pgd@8:steps=20``): the unit of resume."""
    return f"{row['kind']}:{row['label']}"


def planned_keys(
    attacks: Iterable[str | AttackSpec] = (), corruptions: Iterable[str | tuple[str, int]] = ()
) -> list[str]:
    """The :func:`row_key` of every row :func:`run` computes for these specs, in table order."""
    attack_specs, corruption_specs = _expand(attacks, corruptions)
    return (
        ["clean:clean"]
        + [f"attack:{attack_label(name, params)}" for name, params in attack_specs]
        + [f"corruption:{name}@{severity}" for name, severity in corruption_specs]
    )


def run(
    model: nn.Module,
    data: Any,
    attacks: Iterable[str | AttackSpec] = (),
    corruptions: Iterable[str | tuple[str, int]] = (),
    *,
    batch_size: int = 128,
    limit: int | None = None,
    device: str | torch.device = "auto",
    seed: int = 0,
    corruption_preset: str | None = None,
    corruption_root: str | Path | None = None,
    train_data: Any = None,
    amp: bool = False,
    progress: Callable[[str, int, int], None] | None = None,
    on_row: Callable[[Row], None] | None = None,
    done: Iterable[Row] = (),
) -> list[Row]:
    """Evaluate ``model`` (takes [0, 1] images) on clean data, each attack and each corruption.

    ``data``: a DataLoader of (images in [0, 1], labels), an ``(images, labels)`` pair or
    :class:`ImageArrays`. ``limit`` keeps the first N images. Corruptions are generated per
    batch with seed ``seed + batch index`` and preset ``corruption_preset`` (default: the one
    made for the image size, :func:`default_preset`), or read from the CIFAR-10-C files in
    ``corruption_root``. ``train_data`` is passed to attacks that need a training split (lgv).
    ``progress(label, done, total)`` is called after every batch and ``on_row(row)`` after every
    newly computed row. ``done``: finished rows of an earlier run of the same model and
    settings; a perturbation whose row is among them (same :func:`row_key`) is not computed
    again, its row is returned as it was.
    Returns the list of row dicts described in the module docstring.
    """
    if batch_size < 1:
        raise ConfigError(f"batch size must be positive, got {batch_size}")
    dev = resolve_device(device)
    model = model.to(dev).eval()
    attack_specs, corruption_specs = _expand(attacks, corruptions)
    finished = {row_key(r): r for r in done}
    total = _count(data, batch_size, limit)
    preset = corruption_preset
    if corruption_specs and corruption_root is None and preset is None:
        first = next(iter(_batches(data, batch_size, limit)), None)
        if first is None:
            raise DataError("no images to evaluate (empty data or --limit 0)")
        preset = default_preset(first[0].shape[-2], first[0].shape[-1])  # refused before any work
    rows: list[Row] = []

    def finish(row: Row) -> None:
        rows.append(row)
        if on_row is not None:
            on_row(row)

    def measure(source: Any, perturb: Perturb | None, label: str, check: bool = False) -> _Tally:
        """The accuracy of ``model`` on the batches of ``source``, each perturbed by
        ``perturb(x, y, batch index)`` when given (the one loop of clean, attacks, corruptions)."""
        tally = _Tally()
        for i, (x, y) in enumerate(_batches(source, batch_size, limit)):
            if check:
                _check_batch(x, y)
            x, y = x.to(dev), y.to(dev)
            if perturb is None:
                tally.add(_predict(model, x, amp), y, None)
            else:
                bad = perturb(x, y, i)
                tally.add(_predict(model, bad, amp), y, bad - x)
            if progress is not None:
                progress(label, i + 1, total)
        return tally

    # clean
    if "clean:clean" in finished:
        rows.append(finished["clean:clean"])
    else:
        tally = measure(data, None, "clean", check=True)
        if tally.n == 0:
            raise DataError("no images to evaluate (empty data or --limit 0)")
        finish(tally.row(False, kind="clean", name="clean", label="clean", params="{}"))

    # attacks: each built once, reused for every batch
    for name, params in attack_specs:
        if name == "lgv" and "train_data" not in params:
            if train_data is None:
                raise ConfigError("lgv needs a training split: pass train_data (CLI: --train-data)")
            params = {**params, "train_data": train_data}
        label = attack_label(name, params)
        if f"attack:{label}" in finished:
            rows.append(finished[f"attack:{label}"])
            continue
        attack = attacks_mod.get(name, model, **params)
        tally = measure(data, lambda x, y, i, attack=attack: attack(x, y), label)
        eps = attack.eps
        finish(
            tally.row(
                True,
                kind="attack",
                name=name,
                label=label,
                params=_jsonable(attack.params),
                eps=eps,
                eps_255=None if eps is None else round(eps * 255, 6),
            )
        )

    # corruptions
    for name, severity in corruption_specs:
        label = f"{name}@{severity}"
        if f"corruption:{label}" in finished:
            rows.append(finished[f"corruption:{label}"])
            continue
        if corruption_root is not None:  # the files hold the corrupted images
            tally = measure(corruptions_mod.load_cifar_c(corruption_root, name, severity), None, label)
        else:
            tally = measure(
                data,
                lambda x, y, i, name=name, severity=severity: corruptions_mod.apply(
                    x, name, severity, seed=seed + i, preset=preset
                ),
                label,
            )
        finish(
            tally.row(
                corruption_root is None,
                kind="corruption",
                name=name,
                label=label,
                params=json.dumps(
                    {"preset": preset} if corruption_root is None else {"files": str(corruption_root)}
                ),
                severity=severity,
            )
        )
    return rows


def _check_batch(x: Tensor, y: Tensor) -> None:
    attacks_mod.check_inputs(x, y)


# ----------------------------------------------------------------------------------------------
# summary


def _harmonic(c: float, r: float) -> float:
    return 2 * c * r / (c + r) if c + r > 0 else 0.0


def summary(
    table: list[Row], baseline: list[Row] | None = None, eps_range: tuple[float, float] | None = None
) -> dict[str, Any]:
    """Condense a table (accuracies are fractions in [0, 1]).

    * ``clean_accuracy``;
    * ``robust_accuracy`` {attack label: accuracy} and ``hrs`` {label: 2CR/(C+R)} (CRoZe's
      harmonic robustness score with C the clean and R the robust accuracy);
    * ``avg_robust_accuracy`` {attack name: mean accuracy over its eps rows inside
      ``eps_range`` = (low, high) in [0, 1] units, all eps when None} (Wsr-NAS "Avg. Rob.",
      whose table uses eps 0.03, 0.1, 0.17, 0.25);
    * ``corruption_accuracy`` {corruption: mean over severities} and
      ``mean_corruption_accuracy`` (their mean);
    * with ``baseline`` (a table of the reference model, AlexNet in Hendrycks & Dietterich):
      ``ce`` {corruption: 100 * sum_s err / sum_s baseline err} and ``mce`` (their mean, %).
    """
    clean = [r for r in table if r["kind"] == "clean"]
    out: dict[str, Any] = {"clean_accuracy": clean[0]["accuracy"] if clean else None}
    c = out["clean_accuracy"]
    attack_rows = [r for r in table if r["kind"] == "attack"]
    out["robust_accuracy"] = {r["label"]: r["accuracy"] for r in attack_rows}
    out["hrs"] = {r["label"]: _harmonic(c, r["accuracy"]) for r in attack_rows} if c is not None else {}
    avg: dict[str, float] = {}
    for name in dict.fromkeys(r["name"] for r in attack_rows):
        picked = [
            r["accuracy"]
            for r in attack_rows
            if r["name"] == name
            and r["eps"] is not None
            and (eps_range is None or eps_range[0] - 1e-9 <= r["eps"] <= eps_range[1] + 1e-9)
        ]
        if picked:
            avg[name] = float(np.mean(picked))
    out["avg_robust_accuracy"] = avg
    out["corruption_accuracy"] = _per_corruption(
        table, lambda rows: float(np.mean([r["accuracy"] for r in rows]))
    )
    values = list(out["corruption_accuracy"].values())
    out["mean_corruption_accuracy"] = float(np.mean(values)) if values else None
    if baseline is not None:
        ce: dict[str, float] = {}
        base_rows = {(r["name"], r["severity"]): r for r in baseline if r["kind"] == "corruption"}
        for name, rows in _group_corruptions(table).items():
            pairs = [(r, base_rows.get((name, r["severity"]))) for r in rows]
            pairs = [(r, b) for r, b in pairs if b is not None]
            base_err = sum(1 - b["accuracy"] for _, b in pairs)
            if pairs and base_err > 0:
                ce[name] = 100 * sum(1 - r["accuracy"] for r, _ in pairs) / base_err
        out["ce"] = ce
        out["mce"] = float(np.mean(list(ce.values()))) if ce else None
    return out


def _group_corruptions(table: list[Row]) -> dict[str, list[Row]]:
    groups: dict[str, list[Row]] = {}
    for r in table:
        if r["kind"] == "corruption":
            groups.setdefault(r["name"], []).append(r)
    return groups


def _per_corruption(table: list[Row], fn: Callable[[list[Row]], float]) -> dict[str, float]:
    return {name: fn(rows) for name, rows in _group_corruptions(table).items()}


# ----------------------------------------------------------------------------------------------
# output


def to_dataframe(table: list[Row]):
    """The table as a pandas DataFrame with the columns of :data:`COLUMNS`."""
    import pandas as pd

    return pd.DataFrame(table, columns=list(COLUMNS))


def write_csv(table: list[Row], path: str | Path) -> Path:
    """Write the table as CSV with the columns of :data:`COLUMNS` (atomically); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(COLUMNS))
        writer.writeheader()
        for row in table:
            writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in COLUMNS})
    tmp.replace(path)
    return path


def write_json(
    table: list[Row], summary_: dict[str, Any], path: str | Path, meta: dict[str, Any] | None = None
) -> Path:
    """Write ``{"meta", "rows", "summary"}`` as JSON (atomically); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(
        json.dumps({"meta": meta or {}, "rows": table, "summary": summary_}, indent=2, default=str)
    )
    tmp.replace(path)
    return path


# ----------------------------------------------------------------------------------------------
# an evaluation folder that resumes

CSV_NAME = "evaluation.csv"
JSON_NAME = "evaluation.json"


def _canonical(settings: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(settings, sort_keys=True, default=str))


def finished_rows(folder: str | Path, settings: dict[str, Any]) -> list[Row]:
    """The rows recorded in ``folder/evaluation.json`` by an evaluation with the same ``settings``.

    No file: ``[]``. A file written with other settings (or none recorded) raises a
    :class:`ConfigError` naming what changed: its rows measured another model or setup and are
    neither reused nor overwritten.
    """
    path = Path(folder) / JSON_NAME
    if not path.is_file():
        return []
    try:
        doc = json.loads(path.read_text())
        rows, recorded = doc["rows"], doc["meta"].get("settings")
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
        raise DataError(f"{path}: not an evaluation written by robnas ({exc}); delete it to start afresh") from None
    current = _canonical(settings)
    if recorded != current:
        recorded = recorded if isinstance(recorded, dict) else {}
        changed = sorted(k for k in set(recorded) | set(current) if recorded.get(k) != current.get(k))
        raise ConfigError(
            f"{path} holds an evaluation with different settings (changed: {', '.join(changed)}); "
            f"choose another output folder, or delete {path.name} and {CSV_NAME} there to start afresh"
        )
    return [r for r in rows if isinstance(r, dict) and set(COLUMNS) <= set(r)]


def run_in_folder(
    folder: str | Path,
    settings: dict[str, Any],
    model: nn.Module,
    data: Any,
    attacks: Iterable[str | AttackSpec] = (),
    corruptions: Iterable[str | tuple[str, int]] = (),
    *,
    meta: dict[str, Any] | None = None,
    log: Callable[[str], None] | None = None,
    on_row: Callable[[Row], None] | None = None,
    **options: Any,
) -> list[Row]:
    """:func:`run` that keeps its table in ``folder`` and resumes it.

    ``settings`` (JSON-able) identify everything that decides the numbers besides the
    perturbations: model and weights (e.g. a :func:`file_digest`), data, limit, seed, batch
    size, corruption preset, device kind. After every finished row, ``evaluation.csv`` and
    ``evaluation.json`` (rows, summary, ``meta`` with the settings and ``complete``) are
    rewritten atomically, so a killed run loses no finished row. A rerun with the same settings
    keeps the rows already there and computes only the missing perturbations (rows of
    perturbations no longer requested stay in the table, after the requested ones); ``log``
    receives one line saying how many were kept. Other settings raise a :class:`ConfigError`
    (:func:`finished_rows`). ``options`` go to :func:`run`. Returns the table.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    attacks, corruptions = list(attacks), list(corruptions)
    previous = finished_rows(folder, settings)
    planned = planned_keys(attacks, corruptions)
    kept = [r for r in previous if row_key(r) in set(planned)]
    extra = [r for r in previous if row_key(r) not in set(planned)]
    if previous and log is not None:
        line = f"{folder / JSON_NAME}: kept {len(kept)} finished rows, computing {len(planned) - len(kept)}"
        log(line + (f"; {len(extra)} earlier rows not requested now stay in the table" if extra else ""))
    head = {**(meta or {}), "settings": _canonical(settings)}
    table: dict[str, Row] = {row_key(r): r for r in previous}

    def save(complete: bool) -> None:
        order = [k for k in planned if k in table] + [row_key(r) for r in extra]
        rows = [table[k] for k in order]
        write_csv(rows, folder / CSV_NAME)
        write_json(rows, summary(rows), folder / JSON_NAME, {**head, "complete": complete})

    def saved(row: Row) -> None:
        table[row_key(row)] = row
        save(False)
        if on_row is not None:
            on_row(row)

    rows = run(model, data, attacks, corruptions, on_row=saved, done=kept, **options)
    save(True)
    return rows + extra


def plot(table: list[Row], out_dir: str | Path) -> list[Path]:
    """``accuracy_vs_eps.png`` (accuracy against eps per L-inf attack, the clean accuracy at eps
    0) and ``corruptions.png`` (a corruption x severity heatmap with the mean over severities),
    each when the table has such rows (:mod:`robnas.report`); returns the paths written."""
    from robnas import report  # matplotlib with the file-only Agg backend

    out_dir = Path(out_dir)
    written = [
        report.accuracy_vs_eps(table, out_dir / "accuracy_vs_eps.png"),
        report.corruption_heatmap(table, out_dir / "corruptions.png"),
    ]
    return [p for p in written if p is not None]


__all__ = [
    "COLUMNS",
    "default_preset",
    "file_digest",
    "finished_rows",
    "parse_attack",
    "parse_corruption",
    "planned_keys",
    "plot",
    "row_key",
    "run",
    "run_in_folder",
    "summary",
    "to_dataframe",
    "write_csv",
    "write_json",
]
