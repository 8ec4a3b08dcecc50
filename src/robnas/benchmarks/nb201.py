"""NAS-Bench-201 accuracy tables (Dong and Yang, ICLR 2020; NATS-Bench topology space, TPAMI 2021).

Three sources, one interface (:class:`NB201Benchmark`: ``arch_strings``, ``index_of``,
``info(index, dataset, hp)``, ``accuracy(dataset, split, hp)``):

* :class:`NB201Csv`: a CSV with one row per index and an ``arch_str`` column (the layout of
  ``nb201_merged_by_index.csv``); accuracies in percent.
* :class:`NATSTopology`: the official NATS-Bench topology folder of ``pickle.pbz2`` files
  (``meta.pickle.pbz2`` plus ``<index:06d>.pickle.pbz2``, e.g. ``NATS-tss-v1_0-3ffb9-simple``),
  read with numpy and the standard library only; each index's file is read when first asked.
* :class:`NB201Pth`: the original ``NAS-Bench-201-v1_*.pth`` through the optional
  ``nas-bench-201`` package.

Splits follow the official API: ``cifar10-valid`` has ``valid`` (x-valid) and ``test``
(ori-test); ``cifar10`` has ``test`` (ori-test); ``cifar100`` and ``ImageNet16-120`` have
``valid`` (x-valid) and ``test`` (x-test). Accuracies are in percent, averaged over the
training seeds, at the last epoch of the ``hp`` schedule (``"200"`` or ``"12"``).
"""

from __future__ import annotations

import bz2
import csv
import io
import pickle
from abc import ABC, abstractmethod
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from robnas.errors import ConfigError, DataError, UnknownName

NATS_SOURCE = (
    "the official files come from https://github.com/D-X-Y/NATS-Bench "
    "(NATS-tss-v1_0-3ffb9-simple.tar; NAS-Bench-201-v1_1-096897.pth for the original benchmark)"
)
NB201_DATASETS: tuple[str, ...] = ("cifar10-valid", "cifar10", "cifar100", "ImageNet16-120")
#: The evaluation set behind each (dataset, split), as the official API defines it.
SPLIT_SET: dict[tuple[str, str], str] = {
    ("cifar10-valid", "valid"): "x-valid",
    ("cifar10-valid", "test"): "ori-test",
    ("cifar10", "test"): "ori-test",
    ("cifar100", "valid"): "x-valid",
    ("cifar100", "test"): "x-test",
    ("ImageNet16-120", "valid"): "x-valid",
    ("ImageNet16-120", "test"): "x-test",
}


def _split_set(dataset: str, split: str) -> str:
    if (dataset, split) not in SPLIT_SET:
        known = ", ".join(f"{d}/{s}" for d, s in SPLIT_SET)
        raise UnknownName(f"NAS-Bench-201 has no split {split!r} for {dataset!r} (known: {known})")
    return SPLIT_SET[(dataset, split)]


class NB201Benchmark(ABC):
    """A NAS-Bench-201 table indexed 0..15624."""

    source: str = ""

    @property
    @abstractmethod
    def arch_strings(self) -> list[str]:
        """The official string of every index."""

    @cached_property
    def _string_index(self) -> dict[str, int]:
        return {s: i for i, s in enumerate(self.arch_strings)}

    def __len__(self) -> int:
        return len(self.arch_strings)

    def index_of(self, arch: str | int) -> int:
        """The index of an index or an architecture string (any spacing)."""
        if isinstance(arch, (int, np.integer)):
            if not 0 <= int(arch) < len(self):
                raise DataError(f"NAS-Bench-201 index {arch} is outside 0..{len(self) - 1} of {self.source}")
            return int(arch)
        found = self._string_index.get(arch)
        if found is None:
            from robnas import spaces

            space = spaces.get("nb201")
            found = self._string_index.get(space.format(space.parse(arch)))
        if found is None:
            raise DataError(f"architecture {arch} is not listed in {self.source}")
        return found

    @abstractmethod
    def info(self, arch: str | int, dataset: str = "cifar10", hp: str = "200") -> dict[str, float]:
        """``train``, ``valid`` (where it exists), ``test`` accuracy in percent, ``params`` (M), ``flops`` (M)."""

    def accuracy(
        self, dataset: str = "cifar10", split: str = "test", hp: str = "200", indices: Any = None
    ) -> np.ndarray:
        """Accuracy (percent) of ``indices`` (default: every index) as a float64 array."""
        _split_set(dataset, split)
        chosen = range(len(self)) if indices is None else indices
        return np.array([self.info(i, dataset, hp)[split] for i in chosen], dtype=np.float64)


# ---------------------------------------------------------------------------------------- CSV
#: (dataset, split, hp) -> column of ``nb201_merged_by_index.csv``.
CSV_COLUMNS: dict[tuple[str, str, str], str] = {
    ("cifar10", "test", "200"): "c10_test_acc_200ep",
    ("cifar100", "test", "200"): "c100_test_acc_200ep",
    ("ImageNet16-120", "test", "200"): "im16_test_acc_200ep",
    ("cifar10-valid", "valid", "200"): "c10valid_valid_acc_200ep__naswot",
    ("cifar10-valid", "test", "200"): "c10valid_test_acc_200ep__naswot",
    ("cifar10-valid", "valid", "12"): "c10valid_valid_acc_12ep__robot",
}


class NB201Csv(NB201Benchmark):
    """A per-index CSV table with an ``arch_str`` column (numbers parsed as float, blanks as NaN)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.source = str(self.path)
        if not self.path.is_file():
            raise DataError(
                f"{self.path}: file not found; expected a CSV with one row per NAS-Bench-201 index "
                f"and an 'arch_str' column; {NATS_SOURCE}"
            )
        try:
            with self.path.open(newline="", encoding="utf-8") as fh:
                rows = list(csv.DictReader(fh))
        except (UnicodeDecodeError, csv.Error) as exc:
            raise DataError(f"{self.path}: not a readable CSV ({exc})") from None
        if not rows or "arch_str" not in rows[0]:
            raise DataError(
                f"{self.path}: expected a header with an 'arch_str' column and one row per index; {NATS_SOURCE}"
            )
        if "nb201_index" in rows[0]:
            try:
                order = [int(r["nb201_index"]) for r in rows]
            except (TypeError, ValueError):
                raise DataError(f"{self.path}: 'nb201_index' holds a non-integer") from None
            if sorted(order) != list(range(len(rows))):
                raise DataError(f"{self.path}: 'nb201_index' is not a permutation of 0..{len(rows) - 1}")
            rows = [rows[j] for j in np.argsort(order)]
        self._archs = [r["arch_str"] for r in rows]
        self.columns: dict[str, np.ndarray] = {}
        for name in rows[0]:
            if name in ("arch_str", "nb201_index"):
                continue
            try:
                self.columns[name] = np.array(
                    [float(r[name]) if r[name] not in ("", None) else np.nan for r in rows]
                )
            except (TypeError, ValueError):
                continue  # a text column (e.g. a tuple encoding); not a number table
        self._rows = len(rows)

    @property
    def arch_strings(self) -> list[str]:
        return self._archs

    def column(self, name: str) -> np.ndarray:
        """A numeric column by its CSV name."""
        if name not in self.columns:
            raise UnknownName(
                f"{self.path} has no numeric column {name!r} (known: {', '.join(self.columns)})"
            )
        return self.columns[name]

    def _column_for(self, dataset: str, split: str, hp: str) -> str | None:
        name = CSV_COLUMNS.get((dataset, split, hp))
        return name if name in self.columns else None

    def info(self, arch: str | int, dataset: str = "cifar10", hp: str = "200") -> dict[str, float]:
        i = self.index_of(arch)
        out: dict[str, float] = {}
        for split in ("train", "valid", "test"):
            name = self._column_for(dataset, split, hp)
            if name is not None:
                out[split] = float(self.columns[name][i])
        if "params_M" in self.columns:
            out["params"] = float(self.columns["params_M"][i])
        return out

    def accuracy(
        self, dataset: str = "cifar10", split: str = "test", hp: str = "200", indices: Any = None
    ) -> np.ndarray:
        _split_set(dataset, split)
        name = self._column_for(dataset, split, hp)
        if name is None:
            raise UnknownName(
                f"{self.path} has no column for {dataset}/{split} at hp={hp} "
                f"(columns known for: {', '.join('/'.join(k) for k in CSV_COLUMNS)})"
            )
        values = self.columns[name]
        return values.copy() if indices is None else values[np.asarray(indices, dtype=np.int64)]


# ------------------------------------------------------------------------------ NATS pbz2
def _numpy_scalar() -> Any:
    try:
        from numpy._core.multiarray import scalar  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import scalar
    return scalar


class _BenchmarkUnpickler(pickle.Unpickler):
    """Unpickles plain containers and numpy scalars only (no code runs from the file)."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("collections", "OrderedDict"):
            import collections

            return collections.OrderedDict
        if (module, name) == ("numpy", "dtype"):
            return np.dtype
        if name == "scalar" and module in ("numpy.core.multiarray", "numpy._core.multiarray"):
            return _numpy_scalar()
        raise pickle.UnpicklingError(f"unexpected object {module}.{name} in a benchmark file")


def read_pbz2(path: str | Path, expected: str = "a NATS-Bench pickle.pbz2 file") -> Any:
    """The object in a bz2-compressed pickle, with one :class:`DataError` for any problem."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found; expected {expected}; {NATS_SOURCE}")
    try:
        with bz2.open(path, "rb") as fh:
            data = fh.read()
        return _BenchmarkUnpickler(io.BytesIO(data)).load()
    except (OSError, EOFError, ValueError, pickle.UnpicklingError) as exc:
        raise DataError(
            f"{path}: truncated or malformed pickle.pbz2 ({type(exc).__name__}: {exc}); "
            f"expected {expected}; {NATS_SOURCE}"
        ) from None


class NATSTopology(NB201Benchmark):
    """The NATS-Bench topology files in ``directory`` (``meta.pickle.pbz2`` + ``<index:06d>.pickle.pbz2``)."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.source = str(self.directory)
        if not self.directory.is_dir():
            raise DataError(
                f"{self.directory}: NATS-Bench folder not found; expected meta.pickle.pbz2 and "
                f"<index:06d>.pickle.pbz2 files; {NATS_SOURCE}"
            )
        self._records: dict[int, dict[str, Any]] = {}

    @cached_property
    def meta(self) -> dict[str, Any]:
        path = self.directory / "meta.pickle.pbz2"
        expected = "a dict with 'meta_archs' (the 15,625 architecture strings)"
        meta = read_pbz2(path, expected)
        if not isinstance(meta, dict) or not isinstance(meta.get("meta_archs"), list):
            raise DataError(f"{path}: wrong content; expected {expected}; {NATS_SOURCE}")
        return meta

    @property
    def arch_strings(self) -> list[str]:
        return self.meta["meta_archs"]

    def record(self, arch: str | int) -> dict[str, Any]:
        """The raw per-index record ``{hp: {"all_results": {(dataset, seed): {...}}, ...}}``."""
        i = self.index_of(arch)
        if i not in self._records:
            path = self.directory / f"{i:06d}.pickle.pbz2"
            expected = "a dict {'12': {...}, '200': {...}} each with 'all_results' and 'dataset_seed'"
            record = read_pbz2(path, expected)
            if not isinstance(record, dict) or not all(
                isinstance(v, dict) and "all_results" in v and "dataset_seed" in v for v in record.values()
            ):
                raise DataError(f"{path}: wrong keys; expected {expected}; {NATS_SOURCE}")
            self._records[i] = record
        return self._records[i]

    def info(self, arch: str | int, dataset: str = "cifar10", hp: str = "200") -> dict[str, float]:
        i = self.index_of(arch)
        record = self.record(i)
        path = self.directory / f"{i:06d}.pickle.pbz2"
        if hp not in record:
            raise UnknownName(f"{path}: no hp {hp!r} (known: {', '.join(record)})")
        entry = record[hp]
        seeds = entry["dataset_seed"].get(dataset)
        if not seeds:
            raise UnknownName(
                f"{path}: no dataset {dataset!r} at hp={hp} (known: {', '.join(entry['dataset_seed'])})"
            )
        runs = [entry["all_results"].get((dataset, seed)) for seed in seeds]
        if any(run is None for run in runs):
            raise DataError(f"{path}: results of {dataset} for seeds {seeds} are incomplete; {NATS_SOURCE}")
        try:
            last = int(runs[0]["epochs"]) - 1
            out = {"train": float(np.mean([r["train_acc1es"][last] for r in runs]))}
            for split in ("valid", "test"):
                if (dataset, split) in SPLIT_SET:
                    key = f"{SPLIT_SET[(dataset, split)]}@{last}"
                    out[split] = float(np.mean([r["eval_acc1es"][key] for r in runs]))
            out["params"] = float(runs[0]["params"])
            out["flops"] = float(runs[0]["flop"])
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"{path}: a result lacks {exc} for {dataset} at hp={hp}; {NATS_SOURCE}") from None
        return out


# ------------------------------------------------------------------------------ original .pth
class NB201Pth(NB201Benchmark):
    """The original ``NAS-Bench-201-v1_*.pth`` through ``nas_201_api`` (``pip install nas-bench-201``)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.source = str(self.path)
        if not self.path.is_file():
            raise DataError(f"{self.path}: file not found; expected NAS-Bench-201-v1_*.pth; {NATS_SOURCE}")
        try:
            from nas_201_api import NASBench201API
        except ImportError:
            raise ConfigError(
                "reading the original NAS-Bench-201 .pth needs the optional package nas-bench-201 "
                "(pip install nas-bench-201); the NATS-Bench pickle.pbz2 folder or a CSV needs nothing extra"
            ) from None
        try:
            self.api = NASBench201API(str(self.path), verbose=False)
        except Exception as exc:  # the package raises assorted errors on a bad file
            raise DataError(f"{self.path}: nas_201_api could not read it ({exc}); {NATS_SOURCE}") from None

    @property
    def arch_strings(self) -> list[str]:
        return list(self.api.meta_archs)

    def info(self, arch: str | int, dataset: str = "cifar10", hp: str = "200") -> dict[str, float]:
        i = self.index_of(arch)
        more = self.api.get_more_info(i, dataset, hp=hp, is_random=False)
        cost = self.api.get_cost_info(i, dataset)
        out = {"train": float(more["train-accuracy"])}
        for split in ("valid", "test"):
            if (dataset, split) in SPLIT_SET and f"{split}-accuracy" in more:
                out[split] = float(more[f"{split}-accuracy"])
        out["params"] = float(cost["params"])
        out["flops"] = float(cost["flops"])
        return out


def open_nb201(path: str | Path) -> NB201Benchmark:
    """A NAS-Bench-201 table from a CSV, a NATS-Bench ``pickle.pbz2`` folder or a ``.pth``."""
    p = Path(path)
    if p.is_dir():
        return NATSTopology(p)
    if p.suffix == ".pth":
        return NB201Pth(p)
    if p.suffix == ".csv":
        return NB201Csv(p)
    raise DataError(
        f"{p}: not a NAS-Bench-201 source; expected a .csv table, a NATS-Bench folder of "
        f"pickle.pbz2 files or a .pth; {NATS_SOURCE}"
    )
