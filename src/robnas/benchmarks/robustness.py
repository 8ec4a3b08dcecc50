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

Only the standard library and numpy are used; each file is read the first time it is asked for
and then kept.
"""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from robnas.errors import DataError, UnknownName

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
        if isinstance(arch, (int, np.integer)):
            if not 0 <= int(arch) < len(self.arch_strings):
                raise DataError(
                    f"NAS-Bench-201 index {arch} is outside 0..{len(self.arch_strings) - 1} "
                    f"of {self.root / 'meta.json'}"
                )
            return int(arch)
        found = self._string_index.get(arch)
        if found is not None:
            return found
        from robnas import spaces

        space = spaces.get("nb201")
        text = space.format(space.parse(arch))  # InvalidArchitecture for a malformed string
        found = self._string_index.get(text)
        if found is None:
            raise DataError(f"architecture {text} is not listed in {self.root / 'meta.json'}")
        return found

    def isomorph(self, arch: str | int) -> str:
        """The id of the evaluated network isomorphic to ``arch`` (an index or a string)."""
        return self.isomorphs[self.index_of(arch)]

    def rows(self, archs: list[str | int]) -> np.ndarray:
        """Row of :meth:`table` for each architecture (index or string), as an int array."""
        key_row = self._key_row
        return np.fromiter((key_row[self.isomorph(a)] for a in archs), dtype=np.int64, count=len(archs))

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
