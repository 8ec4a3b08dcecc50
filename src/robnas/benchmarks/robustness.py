"""The NAS-Bench-201 robustness dataset of Jung, Lukasik and Keuper (ICLR 2023).

Official layout (https://github.com/steffen-jung/robustness-dataset, data at
https://data.robustness.vision)::

    ROOT/meta.json                          {"ids": {"<nb201 index>": {"nb201-string": ..., "isomorph": "<id>"}},
                                             "epsilons": {"fgsm@Linf": [0.1, ..., 8.0, 255.0], ...}}
    ROOT/<dataset>/<measure>_accuracy.json  {"<dataset>": {"<measure>": {"accuracy": {"<id>": value}}}}

``<dataset>`` is ``cifar10``, ``cifar100`` or ``ImageNet16-120``. ``<measure>`` is ``clean`` (one
fraction per network), an attack (``fgsm@Linf``, ``pgd@Linf``, ``aa_apgd-ce@Linf``,
``aa_square@Linf``: one fraction per epsilon of ``meta["epsilons"]``, epsilons in units of 1/255)
or one of 15 corruptions (one fraction per severity 1..5). The 15,625 NAS-Bench-201 indices map
onto the 6,466 evaluated non-isomorphic networks through ``meta["ids"][i]["isomorph"]``.

Target names (the grammar of :mod:`robnas.targets`, read by :func:`parse_target`; every name is
ONE value per architecture, a fraction, and means the same in search objectives and in
``robnas correlate``; a looked-up value has no ``:KEY=VALUE`` settings):

==========================  ===================================================================
``clean``                   clean accuracy
``ATTACK@EPS``              accuracy under the attack at epsilon EPS (1/255 units); ATTACK is
                            ``fgsm``, ``pgd``, ``apgd`` (AutoAttack APGD-CE) or ``square``
``hrs_ATTACK@EPS``          harmonic robustness score ``2CR/(C+R)`` of clean ``C`` and robust ``R``
``CORRUPTION@S``            accuracy under one of the 15 corruptions at severity S (1..5)
``CORRUPTION``              that corruption's accuracy, mean over the 5 severities
``cc_GROUP``                mean accuracy over the group's corruptions x 5 severities; groups
                            (as CRoZe): weather, noise, blur, digital (see :data:`CC_GROUPS`)
``cc_mean``                 mean accuracy over all 15 corruptions x 5 severities
==========================  ===================================================================

Older spellings with the same meaning are read too: ``cc_fog`` and ``cc_fog@3`` (now ``fog``,
``fog@3``) and ``cc_avg_acc`` (now ``cc_mean``). Names of statistics that ``robnas correlate``
averages over several accuracies (``croze_weather``, ``croze_mean15``, ...) are not targets.

Only the standard library and numpy are used; each file is read the first time it is asked for
and then kept.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from robnas import targets
from robnas.benchmarks.base import nb201_index
from robnas.errors import DataError, UnknownName
from robnas.units import from_255

SOURCE = (
    "the official files come from https://github.com/steffen-jung/robustness-dataset "
    "(download at https://data.robustness.vision)"
)

#: Short attack names used in target names -> the dataset's measure keys.
ATTACKS: dict[str, str] = {
    "fgsm": "fgsm@Linf",
    "pgd": "pgd@Linf",
    "apgd": "aa_apgd-ce@Linf",
    "square": "aa_square@Linf",
}

#: The 15 common corruptions of Hendrycks and Dietterich (2019), as the dataset names them.
CORRUPTIONS: tuple[str, ...] = (
    "brightness",
    "contrast",
    "defocus_blur",
    "elastic_transform",
    "fog",
    "frost",
    "gaussian_noise",
    "glass_blur",
    "impulse_noise",
    "jpeg_compression",
    "motion_blur",
    "pixelate",
    "shot_noise",
    "snow",
    "zoom_blur",
)
SEVERITIES: tuple[int, ...] = (1, 2, 3, 4, 5)
DATASETS: tuple[str, ...] = ("cifar10", "cifar100", "ImageNet16-120")

#: CRoZe's corruption groups (its ``corr.py``); brightness is "digital" there, and
#: elastic_transform and pixelate are in no group.
CC_GROUPS: dict[str, tuple[str, ...]] = {
    "weather": ("snow", "fog", "frost"),
    "noise": ("gaussian_noise", "shot_noise", "impulse_noise"),
    "blur": ("defocus_blur", "glass_blur", "motion_blur", "zoom_blur"),
    "digital": ("contrast", "brightness", "jpeg_compression"),
}

#: Why an averaged statistic of ``robnas correlate`` is not a target (for error messages).
_STATISTIC_HINT = (
    "names starting with croze_ (and the older cc_mean15) are statistics robnas correlate "
    "averages over several accuracies, not one value per architecture"
)

TARGET_FORMS = (
    "clean; ATTACK@EPS or hrs_ATTACK@EPS with ATTACK in "
    + ", ".join(ATTACKS)
    + " and EPS in 1/255 (fgsm@8, hrs_pgd@1); CORRUPTION@SEVERITY (severity 1-5) or CORRUPTION "
    "(mean over severities) with CORRUPTION in "
    + ", ".join(CORRUPTIONS)
    + "; cc_GROUP (mean accuracy over a group) with GROUP in "
    + ", ".join(CC_GROUPS)
    + "; cc_mean (mean accuracy over the 15 corruptions x 5 severities)"
)

def format_eps(eps: float) -> str:
    """Epsilon (1/255 units) as written in target names: 0.1 -> ``0.1``, 8.0 -> ``8``."""
    return targets.format_level(eps)


@dataclass(frozen=True)
class Target:
    """One per-architecture value of the robustness dataset (see the module docstring).

    ``kind`` is ``clean``, ``attack``, ``hrs``, ``corruption``, ``group`` or ``cc_mean``;
    ``attack`` and ``eps`` are set for attacks and HRS, ``corruption`` (and ``severity``, or
    None for the severity mean) for corruptions, ``group`` for ``cc_GROUP``.
    """

    kind: str
    attack: str = ""
    eps: float | None = None
    corruption: str = ""
    severity: int | None = None
    group: str = ""

    @property
    def name(self) -> str:
        """The canonical name; ``parse_target(t.name) == t``."""
        if self.kind == "clean":
            return "clean"
        if self.kind in ("attack", "hrs"):
            prefix = "hrs_" if self.kind == "hrs" else ""
            return f"{prefix}{self.attack}@{format_eps(self.eps or 0.0)}"
        if self.kind == "corruption":
            return self.corruption if self.severity is None else f"{self.corruption}@{self.severity}"
        if self.kind == "group":
            return f"cc_{self.group}"
        return "cc_mean"

    def __str__(self) -> str:
        return self.name

    @property
    def corruptions(self) -> tuple[str, ...]:
        """The corruptions whose accuracies this target averages (empty for clean and attacks)."""
        if self.kind == "corruption":
            return (self.corruption,)
        if self.kind == "group":
            return CC_GROUPS[self.group]
        if self.kind == "cc_mean":
            return CORRUPTIONS
        return ()

    @property
    def measures(self) -> tuple[str, ...]:
        """The dataset measures (``<measure>_accuracy.json`` files) the value is computed from."""
        if self.kind == "clean":
            return ("clean",)
        if self.kind == "attack":
            return (ATTACKS[self.attack],)
        if self.kind == "hrs":
            return ("clean", ATTACKS[self.attack])
        return self.corruptions


def parse_target(name: str) -> Target:
    """The :class:`Target` written as ``name``; :class:`UnknownName` lists the valid forms."""
    text = name.strip() if isinstance(name, str) else name
    if not isinstance(text, str) or not text:
        raise UnknownName(f"empty robustness target; valid forms: {TARGET_FORMS}")
    if text == "clean":
        return Target("clean")
    if text in ("cc_mean", "cc_avg_acc"):
        return Target("cc_mean")
    if text.startswith("croze_") or text == "cc_mean15":
        new = "croze_mean15" if text == "cc_mean15" else text
        raise UnknownName(
            f"{text!r} is not a robustness target: {_STATISTIC_HINT} (robnas correlate --targets {new}); "
            "as one value per architecture use cc_mean or cc_GROUP"
        )
    parsed = targets.parse(text, "robustness target").without_params("robustness")
    hrs = parsed.name.startswith("hrs_")
    attack = parsed.name[4:] if hrs else parsed.name
    if attack in ATTACKS and parsed.level is not None:
        from_255("eps", parsed.level)  # in 1/255: a fraction (fgsm@0.031) is refused with a hint
        return Target("hrs" if hrs else "attack", attack=attack, eps=parsed.level)
    body = text[3:] if text.startswith("cc_") else text
    if text.startswith("cc_") and body in CC_GROUPS:
        return Target("group", group=body)
    corruption = parsed.name[3:] if parsed.name.startswith("cc_") else parsed.name
    if corruption in CORRUPTIONS:
        if parsed.level is None:
            return Target("corruption", corruption=corruption)
        if parsed.level not in SEVERITIES:
            raise UnknownName(
                f"robustness target {text!r}: severity must be one of {', '.join(map(str, SEVERITIES))}"
            )
        return Target("corruption", corruption=corruption, severity=int(parsed.level))
    if text in ATTACKS or text in ATTACKS.values():
        raise UnknownName(f"robustness target {text!r} needs an epsilon in 1/255 units, e.g. {text}@8")
    examples = [
        "clean",
        "cc_mean",
        *(f"cc_{g}" for g in CC_GROUPS),
        *CORRUPTIONS,
        *(f"{a}@8" for a in ATTACKS),
    ]
    close = difflib.get_close_matches(text, examples, n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise UnknownName(f"unknown robustness target {text!r}{hint} (valid forms: {TARGET_FORMS})")


def _read_json(path: Path, expected: str) -> Any:
    if not path.is_file():
        raise DataError(f"{path}: file not found; expected {expected}; {SOURCE}")
    try:
        with path.open("r", encoding="utf-8") as fh:
            return json.load(fh)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(
            f"{path}: truncated or malformed JSON ({exc}); expected {expected}; {SOURCE}"
        ) from None


class RobustnessDataset:
    """Reader of the robustness dataset at ``root`` (the folder holding ``meta.json``).

    >>> rob = RobustnessDataset("data/robustness")            # doctest: +SKIP
    >>> rob.accuracy("|nor_conv_3x3~0|+|...", "cifar10", "fgsm@Linf", eps=8.0)  # doctest: +SKIP
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError(
                f"{self.root}: robustness dataset folder not found; expected a folder with meta.json "
                f"and <dataset>/<measure>_accuracy.json files; {SOURCE}"
            )
        self._raw: dict[tuple[str, str], dict[str, Any]] = {}
        self._tables: dict[tuple[str, str], np.ndarray] = {}

    #: The search space of its architectures (see :class:`robnas.benchmarks.base.TargetBenchmark`).
    space = "nb201"

    def __repr__(self) -> str:
        return f"RobustnessDataset({str(self.root)!r})"

    # ---- meta.json: ids and epsilons
    @cached_property
    def meta(self) -> dict[str, Any]:
        """The parsed ``meta.json`` (checked to hold ``ids`` and ``epsilons``)."""
        path = self.root / "meta.json"
        expected = 'a JSON object {"ids": {index: {"nb201-string", "isomorph"}}, "epsilons": {attack: [...]}}'
        meta = _read_json(path, expected)
        if not isinstance(meta, dict) or not isinstance(meta.get("ids"), dict):
            raise DataError(f"{path}: no 'ids' mapping; expected {expected}; {SOURCE}")
        if not isinstance(meta.get("epsilons"), dict):
            raise DataError(f"{path}: no 'epsilons' mapping; expected {expected}; {SOURCE}")
        for index, entry in meta["ids"].items():
            if not isinstance(entry, dict) or "nb201-string" not in entry or "isomorph" not in entry:
                raise DataError(
                    f"{path}: ids[{index!r}] lacks 'nb201-string' or 'isomorph'; expected {expected}; {SOURCE}"
                )
        return meta

    @cached_property
    def arch_strings(self) -> list[str]:
        """NAS-Bench-201 strings by index (``arch_strings[i]`` is index ``i``)."""
        ids = self.meta["ids"]
        try:
            return [ids[str(i)]["nb201-string"] for i in range(len(ids))]
        except KeyError as exc:
            raise DataError(
                f"{self.root / 'meta.json'}: ids are not the consecutive indices 0..{len(ids) - 1} "
                f"(missing {exc}); {SOURCE}"
            ) from None

    @cached_property
    def isomorphs(self) -> list[str]:
        """The evaluated network id of every NAS-Bench-201 index."""
        ids = self.meta["ids"]
        return [str(ids[str(i)]["isomorph"]) for i in range(len(self.arch_strings))]

    @cached_property
    def keys(self) -> list[str]:
        """The evaluated (non-isomorphic) network ids, in numeric order: the rows of :meth:`table`."""
        return sorted(set(self.isomorphs), key=lambda k: (len(k), k))

    @cached_property
    def _key_row(self) -> dict[str, int]:
        return {k: i for i, k in enumerate(self.keys)}

    @cached_property
    def _string_index(self) -> dict[str, int]:
        return {s: i for i, s in enumerate(self.arch_strings)}

    def index_of(self, arch: str | int) -> int:
        """The NAS-Bench-201 index of an index or an architecture string (any spacing)."""
        return nb201_index(arch, self.arch_strings, self._string_index, self.root / "meta.json")

    def isomorph(self, arch: str | int) -> str:
        """The id of the evaluated network isomorphic to ``arch`` (an index or a string)."""
        return self.isomorphs[self.index_of(arch)]

    def rows(self, archs: list[str | int]) -> np.ndarray:
        """Row of :meth:`table` for each architecture (index or string), as an int array."""
        key_row = self._key_row
        return np.fromiter((key_row[self.isomorph(a)] for a in archs), dtype=np.int64, count=len(archs))

    def weights(self) -> np.ndarray:
        """The number of NAS-Bench-201 strings in each evaluated network's class (rows of :attr:`keys`)."""
        counts = np.zeros(len(self.keys))
        np.add.at(counts, self.rows(list(range(len(self.arch_strings)))), 1.0)
        return counts

    def epsilons(self, attack: str) -> list[float]:
        """The epsilons (units of 1/255) of an attack, by short (``fgsm``) or official name."""
        key = ATTACKS.get(attack, attack)
        eps = self.meta["epsilons"]
        if key not in eps:
            raise UnknownName(
                f"no epsilons for attack {attack!r} in {self.root / 'meta.json'} (known: {', '.join(eps)})"
            )
        return [float(e) for e in eps[key]]

    # ---- accuracy files
    def datasets(self) -> list[str]:
        """The dataset folders present under the root."""
        return [d.name for d in sorted(self.root.iterdir()) if d.is_dir()]

    def measures(self, dataset: str) -> list[str]:
        """The measures with an ``_accuracy.json`` file for ``dataset``."""
        folder = self.root / dataset
        return sorted(p.name[: -len("_accuracy.json")] for p in folder.glob("*_accuracy.json"))

    def path(self, dataset: str, measure: str, kind: str = "accuracy") -> Path:
        return self.root / dataset / f"{measure}_{kind}.json"

    def raw(self, dataset: str, measure: str) -> dict[str, Any]:
        """``{id: value}`` of one accuracy file, read on first use and cached."""
        cache_key = (dataset, measure)
        if cache_key not in self._raw:
            path = self.path(dataset, measure)
            expected = f'{{"{dataset}": {{"{measure}": {{"accuracy": {{id: value}}}}}}}}'
            data = _read_json(path, expected)
            try:
                values = data[dataset][measure]["accuracy"]
            except (KeyError, TypeError):
                top = list(data)[:3] if isinstance(data, dict) else type(data).__name__
                raise DataError(
                    f"{path}: wrong keys (top level: {top}); expected {expected}; {SOURCE}"
                ) from None
            if not isinstance(values, dict):
                raise DataError(f"{path}: 'accuracy' is not a mapping of ids; expected {expected}; {SOURCE}")
            self._raw[cache_key] = values
        return self._raw[cache_key]

    def _width(self, measure: str) -> int | None:
        if measure == "clean":
            return None
        if measure in self.meta["epsilons"]:
            return len(self.meta["epsilons"][measure])
        if measure in CORRUPTIONS:
            return len(SEVERITIES)
        return None

    def table(self, dataset: str, measure: str) -> np.ndarray:
        """Accuracies (fractions) of every network of :attr:`keys`, float64.

        Shape ``(len(keys),)`` for ``clean``, ``(len(keys), n_eps)`` for an attack and
        ``(len(keys), 5)`` for a corruption (severities 1..5).
        """
        cache_key = (dataset, measure)
        if cache_key not in self._tables:
            values = self.raw(dataset, measure)
            path = self.path(dataset, measure)
            missing = [k for k in self.keys if k not in values]
            if missing:
                raise DataError(
                    f"{path}: {len(missing)} network ids of meta.json are missing (first: {missing[0]}); "
                    f"the file is incomplete; {SOURCE}"
                )
            try:
                array = np.array([values[k] for k in self.keys], dtype=np.float64)
            except (TypeError, ValueError):
                raise DataError(
                    f"{path}: values are not all numbers or lists of equal length; {SOURCE}"
                ) from None
            width = self._width(measure)
            shape_ok = array.ndim == 1 if width is None else (array.ndim == 2 and array.shape[1] == width)
            if not shape_ok:
                want = "one number per id" if width is None else f"a list of {width} numbers per id"
                raise DataError(f"{path}: values have shape {array.shape[1:]}, expected {want}; {SOURCE}")
            self._tables[cache_key] = array
        return self._tables[cache_key]

    def accuracy(
        self,
        arch: str | int,
        dataset: str,
        measure: str,
        eps: float | None = None,
        severity: int | None = None,
    ) -> float:
        """One accuracy: ``clean``, an attack at ``eps`` (1/255 units) or a corruption at ``severity``."""
        measure = ATTACKS.get(measure, measure)
        row = self._key_row[self.isomorph(arch)]
        values = self.table(dataset, measure)
        if values.ndim == 1:
            return float(values[row])
        if measure in CORRUPTIONS:
            if severity not in SEVERITIES:
                raise UnknownName(f"corruption severity must be one of {SEVERITIES}, got {severity!r}")
            return float(values[row, severity - 1])
        eps_list = self.epsilons(measure)
        if eps is None or float(eps) not in eps_list:
            raise UnknownName(f"{measure} has no epsilon {eps!r} (known: {eps_list})")
        return float(values[row, eps_list.index(float(eps))])

    # ---- targets: one value per architecture for a target name
    def target_names(self, dataset: str, severities: bool = False) -> list[str]:
        """Every target name the files of ``dataset`` can answer (``severities`` adds ``CORRUPTION@S``)."""
        if not (self.root / dataset).is_dir():
            raise DataError(
                f"{self.root / dataset}: no such dataset folder (present: {', '.join(self.datasets()) or 'none'})"
            )
        has = set(self.measures(dataset))
        names = ["clean"] if "clean" in has else []
        attacks = [a for a, key in ATTACKS.items() if key in self.meta["epsilons"] and key in has]
        for a in attacks:
            names += [f"{a}@{format_eps(e)}" for e in self.epsilons(a)]
        if "clean" in has:
            for a in attacks:
                names += [f"hrs_{a}@{format_eps(e)}" for e in self.epsilons(a)]
        present = [c for c in CORRUPTIONS if c in has]
        names += present
        if severities:
            names += [f"{c}@{s}" for c in present for s in SEVERITIES]
        names += [f"cc_{g}" for g, members in CC_GROUPS.items() if all(m in has for m in members)]
        if len(present) == len(CORRUPTIONS):
            names.append("cc_mean")
        return names

    def canonical_target(self, name: str) -> str:
        """The canonical spelling of target ``name`` (:func:`parse_target`)."""
        return parse_target(name).name

    def target_values(self, dataset: str, target: str | Target) -> np.ndarray:
        """The value of ``target`` for every network of :attr:`keys` (fractions, float64)."""
        t = target if isinstance(target, Target) else parse_target(target)
        if t.kind == "clean":
            return self.table(dataset, "clean")
        if t.kind in ("attack", "hrs"):
            eps = self.epsilons(t.attack)
            if t.eps not in eps:
                raise UnknownName(
                    f"robustness target {t.name!r}: {t.attack} has no epsilon {format_eps(t.eps or 0.0)} "
                    f"(known, in 1/255: {', '.join(format_eps(e) for e in eps)})"
                )
            robust = self.table(dataset, ATTACKS[t.attack])[:, eps.index(t.eps)]
            if t.kind == "attack":
                return robust
            clean = self.table(dataset, "clean")
            total = clean + robust
            with np.errstate(invalid="ignore", divide="ignore"):
                return np.where(total > 0, 2.0 * clean * robust / total, 0.0)
        if t.kind == "corruption" and t.severity is not None:
            return self.table(dataset, t.corruption)[:, t.severity - 1]
        return np.mean([self.table(dataset, c).mean(axis=1) for c in t.corruptions], axis=0)

    def target(
        self, arch: str | int | Sequence[str | int], dataset: str, name: str | Target
    ) -> float | np.ndarray:
        """The value of target ``name`` for one architecture (a float) or for each of a sequence."""
        values = self.target_values(dataset, name)
        if isinstance(arch, (str, int, np.integer)):
            return float(values[self._key_row[self.isomorph(arch)]])
        return values[self.rows(list(arch))]
