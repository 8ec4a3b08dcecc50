"""Readers of published benchmark tables, in their official formats.

``robnas.benchmarks.open("robustness", path)`` returns a reader by name:

* ``robustness``: :class:`RobustnessDataset` (Jung et al., ICLR 2023; ``meta.json`` + JSON files);
* ``nas-robbench-201``: :class:`NASRobBench201` (Wu et al., ICLR 2024; NB201 after adversarial
  training: ``NAS-RobBench-201_html.json`` + ``ops.json``);
* ``nb201``: :func:`open_nb201` (a CSV, a NATS-Bench ``pickle.pbz2`` folder or a ``.pth``);
* ``nb201-csv``, ``nats-tss``, ``nb201-pth``: one format each;
* ``tiny-robustbench``: :class:`TinyRobustBench` (Feng et al., ICLR 2025; DARTS-space networks
  after adversarial training, a folder of JSON lists).

The target benchmarks (``robustness``, ``nas-robbench-201``, ``tiny-robustbench``) answer one query interface,
:class:`~robnas.benchmarks.base.TargetBenchmark`, which ``robnas correlate`` and ``bench:``
objectives use.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from robnas.benchmarks.base import TargetBenchmark
from robnas.benchmarks.nas_robbench import NASRobBench201
from robnas.benchmarks.nb201 import NATSTopology, NB201Benchmark, NB201Csv, NB201Pth, open_nb201
from robnas.benchmarks.robustness import (
    ATTACKS,
    CC_GROUPS,
    CORRUPTIONS,
    SEVERITIES,
    RobustnessDataset,
    Target,
    parse_target,
)
from robnas.benchmarks.tiny_robustbench import TinyRobustBench
from robnas.errors import ConfigError, UnknownName
from robnas.registry import Registry

BENCHMARKS: Registry[Any] = Registry("benchmark")
BENCHMARKS.register(
    "robustness", RobustnessDataset, paper="Jung, Lukasik and Keuper, ICLR 2023", targets=True
)
BENCHMARKS.register(
    "nas-robbench-201", NASRobBench201, paper="Wu, Liu, Simon-Gabriel, Chrysos and Cevher, ICLR 2024", targets=True
)
BENCHMARKS.register("nb201", open_nb201, paper="Dong and Yang, ICLR 2020")
BENCHMARKS.register("nb201-csv", NB201Csv, paper="Dong and Yang, ICLR 2020")
BENCHMARKS.register("nats-tss", NATSTopology, paper="Dong et al., TPAMI 2021")
BENCHMARKS.register("nb201-pth", NB201Pth, paper="Dong and Yang, ICLR 2020")
BENCHMARKS.register("tiny-robustbench", TinyRobustBench, paper="Feng et al., ICLR 2025", targets=True)


def open(name: str, path: str | Path) -> Any:
    """The reader registered as ``name`` opened on ``path``."""
    return BENCHMARKS.get(name)(path)


def names(pattern: str = "*") -> list[str]:
    return BENCHMARKS.names(pattern)


def target_benchmarks() -> list[str]:
    """The names of the readers that answer :class:`TargetBenchmark` (registered with ``targets=True``)."""
    return [n for n in BENCHMARKS.names() if BENCHMARKS.meta(n).get("targets")]


def from_spec(spec: str | Path | TargetBenchmark) -> TargetBenchmark:
    """A target benchmark from ``NAME:PATH`` (``nas-robbench-201:data/nas_robbench201``) or a bare
    ``PATH``, read as the robustness dataset folder (``robustness:PATH``); a reader is returned as is."""
    if isinstance(spec, TargetBenchmark):
        return spec
    text = str(spec)
    name, sep, path = text.partition(":")
    known = target_benchmarks()
    if not sep or name not in BENCHMARKS:
        if sep and len(name) > 1 and "/" not in name and "\\" not in name:
            raise UnknownName(
                f"unknown benchmark {name!r} in {text!r}; write NAME:PATH with NAME one of {', '.join(known)}"
            )
        name, path = "robustness", text
    if name not in known:
        raise ConfigError(
            f"{name!r} is not a benchmark of per-architecture targets; give NAME:PATH with NAME one of "
            f"{', '.join(known)}"
        )
    return open(name, path)


__all__ = [
    "ATTACKS",
    "BENCHMARKS",
    "CC_GROUPS",
    "CORRUPTIONS",
    "SEVERITIES",
    "NASRobBench201",
    "NATSTopology",
    "NB201Benchmark",
    "NB201Csv",
    "NB201Pth",
    "RobustnessDataset",
    "Target",
    "TargetBenchmark",
    "TinyRobustBench",
    "from_spec",
    "names",
    "open",
    "open_nb201",
    "parse_target",
    "target_benchmarks",
]
