"""NAS-RobBench-201 (Wu, Liu, Simon-Gabriel, Chrysos and Cevher, ICLR 2024): NAS-Bench-201 after
adversarial training.

All 6,466 non-isomorphic NAS-Bench-201 cells, each trained with PGD-7 adversarial training
(eps 8/255, step 2/255, 50 epochs), then evaluated on CIFAR-10, CIFAR-100 and ImageNet16-120:
clean accuracy, FGSM and PGD at 3/255 and 8/255, and AutoAttack at 8/255 (fractions).

Official files (the benchmark's project page, https://tt2408.github.io/nasrobbench201hp/), in one
folder::

    NAS-RobBench-201_html.json   acc={"": [18 column names], "<index>": [18 fractions] | "<index>", ...}
    ops.json                     arch=["<6 digits>", ...]

``acc`` is keyed by NAS-Bench-201 index (as text); key ``""`` lists the columns
(``cifar10#val_acc``, ``cifar10#val_fgsm_3_acc``, ``cifar10#val_pgd_3_acc``,
``cifar10#val_fgsm_8_acc``, ``cifar10#val_pgd_8_acc``, ``cifar10#autoattack``, then the same for
``cifar100`` and ``imagenet``); an index that is an isomorphic copy holds the index of its
representative (as text) instead of values. ``arch[i]`` is index ``i``'s cell: one digit per edge
in NAS-Bench-201 string order, 0 ``none``, 1 ``skip_connect``, 2 ``nor_conv_1x1``,
3 ``nor_conv_3x3``, 4 ``avg_pool_3x3``.

Rows (:attr:`NASRobBench201.keys`) are the representatives' indices as text: the isomorphism
classes of the NAS-Bench-201 robustness dataset of Jung et al. (its ``meta.json`` ``isomorph``
ids are the same indices), so one split or class id means the same network in both.
:meth:`~NASRobBench201.weights` counts each class's NAS-Bench-201 strings (the ``strings``
population).

Targets (one value per architecture, in the target grammar: eps in 1/255) are those of
:data:`TARGETS`; datasets those of :data:`DATASETS` (``ImageNet16-120`` and ``imagenet`` are read
as ``imagenet16-120``). Only the standard library and numpy are used; both files are read on first
use and kept.

>>> bench = NASRobBench201("data/nas_robbench201")                       # doctest: +SKIP
>>> bench.target("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|",
...              "cifar10", "pgd@8")                                     # doctest: +SKIP
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from robnas.benchmarks.base import nb201_index
from robnas.errors import DataError, UnknownName
from robnas.units import from_255

ACC_FILE = "NAS-RobBench-201_html.json"
OPS_FILE = "ops.json"
SOURCE = (
    "the official files NAS-RobBench-201_html.json and ops.json come from the benchmark's project "
    "page https://tt2408.github.io/nasrobbench201hp/ (repository TT2408/nasrobbench201hp, folder files/)"
)

#: Target name (target grammar, eps in 1/255) -> the column suffix of the official file.
TARGETS: dict[str, str] = {
    "clean": "val_acc",
    "fgsm@3": "val_fgsm_3_acc",
    "pgd@3": "val_pgd_3_acc",
    "fgsm@8": "val_fgsm_8_acc",
    "pgd@8": "val_pgd_8_acc",
    "aa@8": "autoattack",
}
#: Dataset name -> the column prefix of the official file.
DATASETS: dict[str, str] = {"cifar10": "cifar10", "cifar100": "cifar100", "imagenet16-120": "imagenet"}
_DATASET_ALIASES = {"imagenet": "imagenet16-120", "imagenet16": "imagenet16-120"}
#: The official column order (key ``""`` of the file).
COLUMNS: tuple[str, ...] = tuple(f"{p}#{s}" for p in DATASETS.values() for s in TARGETS.values())
#: Edge operations by digit of ``ops.json``.
OPERATIONS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")


def nb201_string(code: str) -> str:
    """The NAS-Bench-201 string of a six-digit ``ops.json`` code (``"421211"`` -> ``|avg_pool_3x3~0|+...``)."""
    ops = [OPERATIONS[int(d)] for d in code]
    return f"|{ops[0]}~0|+|{ops[1]}~0|{ops[2]}~1|+|{ops[3]}~0|{ops[4]}~1|{ops[5]}~2|"


def canonical_target(name: str) -> str:
    """The canonical spelling of a NAS-RobBench-201 target (:mod:`robnas.targets` grammar, eps in 1/255:
    ``pgd@8.0`` -> ``pgd@8``, ``AA@8`` -> ``aa@8``, ``autoattack`` -> ``aa@8``)."""
    from robnas import targets

    text = name.strip().lower() if isinstance(name, str) else ""
    if text in ("autoattack", "aa"):
        return "aa@8"
    parsed = targets.parse(text, "NAS-RobBench-201 target").without_params("NAS-RobBench-201")
    if parsed.level is not None:
        from_255("eps", parsed.level)  # in 1/255: a fraction (pgd@0.031) is refused with a hint
    if parsed.text in TARGETS:
        return parsed.text
    close = difflib.get_close_matches(parsed.text, list(TARGETS), n=2)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise UnknownName(
        f"NAS-RobBench-201 has no target {name!r}{hint} (it has: {', '.join(TARGETS)}; eps in 1/255, "
        "aa = AutoAttack)"
    )


def canonical_dataset(name: str) -> str:
    """``cifar10``, ``cifar100`` or ``imagenet16-120`` (``ImageNet16-120`` and ``imagenet`` accepted)."""
    text = name.strip().lower()
    text = _DATASET_ALIASES.get(text, text)
    if text not in DATASETS:
        raise UnknownName(f"NAS-RobBench-201 has no dataset {name!r} (it has: {', '.join(DATASETS)})")
    return text


def _assignment(path: Path, name: str, expected: str) -> Any:
    """The JSON value of the JavaScript assignment ``name=...`` in ``path``."""
    if not path.is_file():
        raise DataError(f"{path}: file not found; expected {expected}; {SOURCE}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a text file; expected {expected}; {SOURCE}") from None
    head, sep, body = text.partition("=")
    if not sep or head.strip().removeprefix("var ").strip() != name:
        raise DataError(f"{path}: does not start with '{name}='; expected {expected}; {SOURCE}")
    body = body.strip().removesuffix(";")
    try:
        return json.loads(body)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: truncated or malformed JSON ({exc}); expected {expected}; {SOURCE}") from None


class NASRobBench201:
    """Reader of NAS-RobBench-201 at ``root`` (the folder with ``NAS-RobBench-201_html.json`` and ``ops.json``).

    A :class:`robnas.benchmarks.base.TargetBenchmark`: rows are isomorphism classes (see the
    module docstring); architectures are NAS-Bench-201 indices or strings (any spacing, any
    member of a class).
    """

    space = "nb201"

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError(f"{self.root}: NAS-RobBench-201 folder not found; expected {ACC_FILE} and {OPS_FILE}; {SOURCE}")

    def __repr__(self) -> str:
        return f"NASRobBench201({str(self.root)!r})"

    # ---- ops.json: the NB201 string of every index
    @cached_property
    def arch_strings(self) -> list[str]:
        """NAS-Bench-201 strings by index (``arch_strings[i]`` is index ``i``)."""
        path = self.root / OPS_FILE
        expected = 'arch=["<6 digits 0-4, one per edge>", ...] (one per NAS-Bench-201 index)'
        codes = _assignment(path, "arch", expected)
        if not isinstance(codes, list) or not codes:
            raise DataError(f"{path}: 'arch' is not a non-empty list; expected {expected}; {SOURCE}")
        for i, code in enumerate(codes):
            if not (isinstance(code, str) and len(code) == 6 and all(c in "01234" for c in code)):
                raise DataError(f"{path}: arch[{i}] = {code!r} is not six digits 0-4; expected {expected}; {SOURCE}")
        return [nb201_string(c) for c in codes]

    @cached_property
    def _string_index(self) -> dict[str, int]:
        return {s: i for i, s in enumerate(self.arch_strings)}

    # ---- NAS-RobBench-201_html.json: values and representatives
    @cached_property
    def _parsed(self) -> tuple[list[int], np.ndarray]:
        """(representative index of every NB201 index, values ``(n_classes, 18)`` in class order)."""
        path = self.root / ACC_FILE
        expected = 'acc={"": [18 column names], "<index>": [18 fractions] or "<representative index>"}'
        acc = _assignment(path, "acc", expected)
        if not isinstance(acc, dict):
            raise DataError(f"{path}: 'acc' is not a mapping; expected {expected}; {SOURCE}")
        columns = acc.pop("", None)
        if not isinstance(columns, list) or tuple(columns) != COLUMNS:
            raise DataError(
                f"{path}: key \"\" should list the 18 columns {COLUMNS[0]} ... {COLUMNS[-1]}, got "
                f"{str(columns)[:120]}; {SOURCE}"
            )
        n = len(self.arch_strings)
        indices: dict[int, Any] = {}
        for key, value in acc.items():
            if not key.isdigit() or not 0 <= int(key) < n:
                raise DataError(f"{path}: key {key!r} is not a NAS-Bench-201 index 0..{n - 1} of {OPS_FILE}; {SOURCE}")
            indices[int(key)] = value
        missing = [i for i in range(n) if i not in indices]
        if missing:
            raise DataError(
                f"{path}: {len(missing)} of the {n} indices of {OPS_FILE} are missing (first: {missing[0]}); "
                f"the file is incomplete; {SOURCE}"
            )
        own = sorted(i for i, v in indices.items() if isinstance(v, list))
        row_of = {i: r for r, i in enumerate(own)}
        try:
            values = np.array([indices[i] for i in own], dtype=np.float64)
        except (TypeError, ValueError):
            values = np.empty((0, 0))
        if values.shape != (len(own), len(COLUMNS)) or not np.isfinite(values).all():
            bad = next(
                (i for i in own if len(indices[i]) != len(COLUMNS)
                 or not all(isinstance(v, (int, float)) for v in indices[i])),
                own[0] if own else None,
            )
            raise DataError(f"{path}: index {bad} does not hold {len(COLUMNS)} finite numbers; {SOURCE}")
        representative = []
        for i in range(n):
            value = indices[i]
            if isinstance(value, list):
                representative.append(i)
                continue
            target = int(value) if isinstance(value, (str, int)) and str(value).isdigit() else None
            if target is None or target not in row_of:
                raise DataError(
                    f"{path}: index {i} refers to {value!r}, which is not an index holding values; {SOURCE}"
                )
            representative.append(target)
        return representative, values

    @cached_property
    def keys(self) -> list[str]:
        """The representatives' indices as text, ascending: the rows of every value array."""
        representative, _ = self._parsed
        return [str(i) for i in sorted(set(representative))]

    @cached_property
    def _key_row(self) -> dict[str, int]:
        return {k: r for r, k in enumerate(self.keys)}

    @cached_property
    def isomorphs(self) -> list[str]:
        """The class (representative index, as text) of every NAS-Bench-201 index."""
        return [str(r) for r in self._parsed[0]]

    def index_of(self, arch: str | int) -> int:
        """The NAS-Bench-201 index of an index or an architecture string (any spacing)."""
        return nb201_index(arch, self.arch_strings, self._string_index, self.root / OPS_FILE)

    def isomorph(self, arch: str | int) -> str:
        """The class id (its representative's index, as text) of ``arch`` (an index or a string)."""
        return self.isomorphs[self.index_of(arch)]

    def representative(self, arch: str | int) -> str:
        """The NAS-Bench-201 string of the network that stands for ``arch``'s class."""
        return self.arch_strings[int(self.isomorph(arch))]

    def rows(self, archs: Sequence[str | int]) -> np.ndarray:
        """Row of each architecture (index or string), as an int array."""
        key_row = self._key_row
        return np.fromiter((key_row[self.isomorph(a)] for a in archs), dtype=np.int64, count=len(archs))

    def weights(self) -> np.ndarray:
        """The number of NAS-Bench-201 strings in each class (rows of :attr:`keys`)."""
        counts = np.zeros(len(self.keys))
        np.add.at(counts, self.rows(list(range(len(self.arch_strings)))), 1.0)
        return counts

    # ---- targets
    def datasets(self) -> list[str]:
        return list(DATASETS)

    def target_names(self, dataset: str = "cifar10") -> list[str]:
        canonical_dataset(dataset)
        return list(TARGETS)

    def canonical_target(self, name: str) -> str:
        return canonical_target(name)

    def column(self, dataset: str, target: str) -> str:
        """The official column name of ``target`` on ``dataset`` (``cifar10#val_pgd_8_acc``)."""
        return f"{DATASETS[canonical_dataset(dataset)]}#{TARGETS[canonical_target(target)]}"

    def target_values(self, dataset: str, target: str) -> np.ndarray:
        """The value (fraction) of ``target`` for every class of :attr:`keys`."""
        return self._parsed[1][:, COLUMNS.index(self.column(dataset, target))]

    def target(self, arch: str | int | Sequence[str | int], dataset: str, name: str) -> float | np.ndarray:
        """The value of target ``name`` for one architecture (a float) or for each of a sequence."""
        values = self.target_values(dataset, name)
        if isinstance(arch, (str, int, np.integer)):
            return float(values[self._key_row[self.isomorph(arch)]])
        return values[self.rows(list(arch))]


__all__ = [
    "COLUMNS",
    "DATASETS",
    "OPERATIONS",
    "TARGETS",
    "NASRobBench201",
    "canonical_dataset",
    "canonical_target",
    "nb201_string",
]
