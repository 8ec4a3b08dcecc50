"""Tiny-RobustBench: DARTS-space networks after adversarial training (Feng et al., ICLR 2025).

Feng et al., "Zero-Cost Proxy for Adversarial Robustness Evaluation", ICLR 2025, released with
their code (https://github.com/fyqsama/ZCP, ``zcp.zip``, ``exps/NAS-RF/robust_arch_dataset/``)
a set of DARTS-space architectures, each trained from scratch with PGD-7 adversarial training on
CIFAR-10 (eps 8/255, step 0.01, 105 epochs). The folder holds any number of JSON files
(``robust_bench_seed_0_1000.json``, ...), each a list of entries::

    {"seed": 0,
     "net": {"genotype": {"normal": [["sep_conv_3x3", 0], ...], "normal_concat": [2, 3, 4, 5],
                          "reduce": [...], "reduce_concate": [2, 3, 4, 5]},
             "depth": 8, "width": 16, "aux": false, "drop_prob": 0.0},
     "adversarial_param": {"adv_loss": "pgd", "epsilon": 0.0313..., "num_steps": 7, "step_size": 0.01},
     "cutout": false, "optim": {...},
     "max_test_top1_original": 75.4, "max_test_top1_adv": 41.99,   # percent, best over epochs
     "train_ep_...": [...], "test_ep_...": [...]}                   # per-epoch logs

(``reduce_concate`` is the files' spelling; ``reduce_concat`` is read too.) Genotypes are parsed
into the ``darts`` space; ``depth`` and ``width`` are the network's ``layers`` and ``C``, so
:meth:`TinyRobustBench.build` gives the network the dataset trained.

Targets, in the one target grammar, as fractions like every robnas benchmark reader:
``clean`` (``max_test_top1_original`` / 100) and the attack the entries were trained and tested
with, written ``ATTACK@EPS`` with EPS in 1/255 (``pgd@8``: ``max_test_top1_adv`` / 100). Every
entry is one row; a genotype listed twice (trained twice) is one row holding the mean of its
entries.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from robnas.benchmarks.robustness import format_eps, parse_target
from robnas.errors import DataError, RobnasError, UnknownName

if TYPE_CHECKING:  # torch is imported when a genotype is first parsed, not with the package
    from torch import nn

    from robnas.spaces.darts import DartsSpace, Genotype

SOURCE = (
    "the official files come from https://github.com/fyqsama/ZCP "
    "(zcp.zip, exps/NAS-RF/robust_arch_dataset/robust_bench_seed_*.json)"
)
EXPECTED = (
    "a JSON list of entries with net.genotype (normal, normal_concat, reduce, reduce_concate), "
    "net.depth, net.width, adversarial_param, max_test_top1_original and max_test_top1_adv"
)
DATASET = "cifar10"


@dataclass(frozen=True)
class Entry:
    """One trained network of Tiny-RobustBench.

    ``clean`` and ``robust`` are the best test accuracies over the epochs, as fractions;
    ``attack`` is the canonical target name of ``robust`` (``pgd@8``); ``C``, ``layers``,
    ``auxiliary`` and ``drop_path_prob`` are the settings the network was trained with.
    """

    genotype: Genotype
    arch: str
    clean: float
    robust: float
    attack: str
    C: int
    layers: int
    auxiliary: bool
    drop_path_prob: float
    cutout: bool
    seed: int | None
    source: str
    position: int

    @property
    def build_options(self) -> dict[str, Any]:
        """``DartsSpace.build`` keywords of the trained network."""
        return {
            "C": self.C,
            "layers": self.layers,
            "auxiliary": self.auxiliary,
            "drop_path_prob": self.drop_path_prob,
        }


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
        raise DataError(f"{where} is {value!r}, not a finite number; expected {EXPECTED}; {SOURCE}")
    return float(value)


def _attack_name(param: Any, where: str) -> str:
    if not isinstance(param, dict) or not isinstance(param.get("adv_loss"), str):
        raise DataError(f"{where}: adversarial_param lacks adv_loss; expected {EXPECTED}; {SOURCE}")
    eps = _number(param.get("epsilon"), f"{where}: adversarial_param.epsilon") * 255.0
    return f"{param['adv_loss'].lower()}@{format_eps(round(eps, 3))}"


def read_entries(path: Path, space: DartsSpace) -> list[Entry]:
    """The entries of one Tiny-RobustBench JSON file; :class:`DataError` names the file and the entry."""
    from robnas.spaces.darts import make_genotype

    try:
        with path.open("r", encoding="utf-8") as fh:
            data = json.load(fh)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(
            f"{path}: truncated or malformed JSON ({exc}); expected {EXPECTED}; {SOURCE}"
        ) from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc})") from None
    if not isinstance(data, list):
        raise DataError(
            f"{path}: top level is a {type(data).__name__}, not a list; expected {EXPECTED}; {SOURCE}"
        )
    entries = []
    for i, item in enumerate(data):
        where = f"{path}: entry {i}"
        try:
            net = item["net"]
            genes = net["genotype"]
            reduce_concat = genes["reduce_concate"] if "reduce_concate" in genes else genes["reduce_concat"]
            genotype = space.validate(
                make_genotype(genes["normal"], genes["normal_concat"], genes["reduce"], reduce_concat)
            )
            clean = _number(item["max_test_top1_original"], f"{where}: max_test_top1_original")
            robust = _number(item["max_test_top1_adv"], f"{where}: max_test_top1_adv")
            C, layers = net["width"], net["depth"]
            if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in (C, layers)):
                raise DataError(
                    f"{where}: net.width {C!r} and net.depth {layers!r} must be positive integers"
                )
            entries.append(
                Entry(
                    genotype=genotype,
                    arch=space.format(genotype),
                    clean=clean / 100.0,
                    robust=robust / 100.0,
                    attack=_attack_name(item.get("adversarial_param"), where),
                    C=C,
                    layers=layers,
                    auxiliary=bool(net.get("aux", False)),
                    drop_path_prob=_number(net.get("drop_prob", 0.0), f"{where}: net.drop_prob"),
                    cutout=bool(item.get("cutout", False)),
                    seed=item.get("seed") if isinstance(item.get("seed"), int) else None,
                    source=path.name,
                    position=i,
                )
            )
        except DataError:
            raise
        except (KeyError, TypeError) as exc:
            raise DataError(f"{where} lacks {exc}; expected {EXPECTED}; {SOURCE}") from None
        except RobnasError as exc:  # an invalid genotype
            raise DataError(f"{where}: {exc}") from None
    return entries


class TinyRobustBench:
    """Reader of a Tiny-RobustBench folder (or one of its JSON files) at ``path``.

    >>> bench = TinyRobustBench("data/tiny_robustbench")          # doctest: +SKIP
    >>> bench.target_values("cifar10", "pgd@8")[:2]                # doctest: +SKIP
    array([0.4199, 0.4012])
    >>> net = bench.build(bench.keys[0])  # C=16, 8 cells, as trained  # doctest: +SKIP

    Rows (:attr:`keys`) are the canonical ``darts`` genotype texts, in the order of the files
    (sorted by name) and of their lists. Files are read on first use.
    """

    space = "darts"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if self.path.is_dir():
            self.files = sorted(p for p in self.path.glob("*.json") if p.is_file())
            if not self.files:
                raise DataError(f"{self.path}: no .json files in the Tiny-RobustBench folder; {SOURCE}")
        elif self.path.is_file():
            self.files = [self.path]
        else:
            raise DataError(f"{self.path}: Tiny-RobustBench folder not found; expected {EXPECTED}; {SOURCE}")

    @cached_property
    def _space(self) -> DartsSpace:
        from robnas.spaces.darts import DartsSpace

        return DartsSpace()

    def __repr__(self) -> str:
        return f"TinyRobustBench({str(self.path)!r})"

    def __len__(self) -> int:
        return len(self.keys)

    @cached_property
    def entries(self) -> list[Entry]:
        """Every entry of every file, in file order."""
        return [e for f in self.files for e in read_entries(f, self._space)]

    @cached_property
    def _groups(self) -> dict[str, list[Entry]]:
        groups: dict[str, list[Entry]] = {}
        for e in self.entries:
            groups.setdefault(e.arch, []).append(e)
        for members in groups.values():
            if len({(m.C, m.layers, m.auxiliary, m.drop_path_prob) for m in members}) > 1:
                raise DataError(
                    f"{members[0].source}: entry {members[0].position} and {members[1].source}: entry "
                    f"{members[1].position} train the same genotype with different network settings"
                )
        return groups

    @property
    def keys(self) -> list[str]:
        """The evaluated genotypes (canonical ``darts`` text), one per row."""
        return list(self._groups)

    @cached_property
    def _row(self) -> dict[str, int]:
        return {k: i for i, k in enumerate(self.keys)}

    def datasets(self) -> list[str]:
        return [DATASET]

    def _check_dataset(self, dataset: str) -> None:
        if dataset != DATASET:
            raise UnknownName(f"Tiny-RobustBench has one dataset, {DATASET}; got {dataset!r}")

    def target_names(self, dataset: str = DATASET) -> list[str]:
        """``clean`` and the attack every entry was evaluated with (``pgd@8``)."""
        self._check_dataset(dataset)
        return ["clean", *dict.fromkeys(e.attack for e in self.entries)]

    def canonical_target(self, name: str) -> str:
        """The canonical spelling of ``name`` (``pgd@8.0`` -> ``pgd@8``); UnknownName if not held."""
        canonical = parse_target(name).name
        known = self.target_names()
        if canonical not in known:
            raise UnknownName(f"Tiny-RobustBench has no target {name!r} (known: {', '.join(known)})")
        return canonical

    def target_values(self, dataset: str, target: str) -> np.ndarray:
        """``target`` of every row of :attr:`keys` (fractions, float64); repeated genotypes averaged."""
        self._check_dataset(dataset)
        name = self.canonical_target(target)
        out = np.empty(len(self.keys))
        for i, members in enumerate(self._groups.values()):
            if name == "clean":
                out[i] = np.mean([m.clean for m in members])
                continue
            other = [m for m in members if m.attack != name]
            if other:
                raise DataError(
                    f"{other[0].source}: entry {other[0].position} was evaluated with {other[0].attack}, "
                    f"not {name}; the files mix attacks"
                )
            out[i] = np.mean([m.robust for m in members])
        return out

    def target(self, arch: str | Sequence[str], target: str, dataset: str = DATASET) -> float | np.ndarray:
        """The value of ``target`` for one genotype (a float) or for each of a sequence."""
        values = self.target_values(dataset, target)
        if isinstance(arch, str):
            return float(values[self.rows([arch])[0]])
        return values[self.rows(list(arch))]

    def _key(self, arch: str | Genotype) -> str:
        if isinstance(arch, str) and arch in self._row:
            return arch
        text = self._space.format(self._space.parse(arch) if isinstance(arch, str) else arch)
        if text not in self._row:
            raise DataError(f"genotype {text} is not listed in {self.path}")
        return text

    def rows(self, archs: Sequence[str | Genotype | int]) -> np.ndarray:
        """The row of each genotype (text or :class:`Genotype`) or row index."""
        out = []
        for a in archs:
            if isinstance(a, (int, np.integer)):
                if not 0 <= int(a) < len(self.keys):
                    raise DataError(f"row {a} is outside 0..{len(self.keys) - 1} of {self.path}")
                out.append(int(a))
            else:
                out.append(self._row[self._key(a)])
        return np.asarray(out, dtype=np.int64)

    def weights(self) -> np.ndarray:
        """Every listed architecture was trained on its own: weight 1 per row."""
        return np.ones(len(self.keys))

    def entry(self, arch: str | Genotype | int) -> Entry:
        """The (first) entry of a genotype or a row index."""
        key = self.keys[int(arch)] if isinstance(arch, (int, np.integer)) else self._key(arch)
        return self._groups[key][0]

    def build_options(self, arch: str | Genotype | int) -> dict[str, Any]:
        """The ``darts`` build settings the genotype was trained with (``C``, ``layers``, ...)."""
        return self.entry(arch).build_options

    def build(self, arch: str | Genotype | int, num_classes: int = 10) -> nn.Module:
        """The network of an entry as the dataset trained it (its ``C``, ``layers``, head, drop-path)."""
        e = self.entry(arch)
        return self._space.build(e.genotype, num_classes=num_classes, **e.build_options)


__all__ = ["Entry", "TinyRobustBench", "read_entries"]
