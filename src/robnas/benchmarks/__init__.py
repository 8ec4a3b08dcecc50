"""Readers of published benchmark tables, in their official formats.

``robnas.benchmarks.open("robustness", path)`` returns a reader by name:

* ``robustness``: :class:`RobustnessDataset` (Jung et al., ICLR 2023; ``meta.json`` + JSON files);
* ``nas-robbench-201``: :class:`NASRobBench201` (Wu et al., ICLR 2024; NB201 after adversarial
  training: ``NAS-RobBench-201_html.json`` + ``ops.json``);
* ``nb201``: :func:`open_nb201` (a CSV, a NATS-Bench ``pickle.pbz2`` folder or a ``.pth``);
* ``nb201-csv``, ``nats-tss``, ``nb201-pth``: one format each;
* ``tiny-robustbench``: :class:`TinyRobustBench` (Feng et al., ICLR 2025; DARTS-space networks
  after adversarial training, a folder of JSON lists).

The target benchmarks (``robustness``, ``nas-robbench-201``) answer one query interface,
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
from robnas.registry import Registry

BENCHMARKS: Registry[Any] = Registry("benchmark")
BENCHMARKS.register("robustness", RobustnessDataset, paper="Jung, Lukasik and Keuper, ICLR 2023")
BENCHMARKS.register(
    "nas-robbench-201", NASRobBench201, paper="Wu, Liu, Simon-Gabriel, Chrysos and Cevher, ICLR 2024"
)
BENCHMARKS.register("nb201", open_nb201, paper="Dong and Yang, ICLR 2020")
BENCHMARKS.register("nb201-csv", NB201Csv, paper="Dong and Yang, ICLR 2020")
BENCHMARKS.register("nats-tss", NATSTopology, paper="Dong et al., TPAMI 2021")
BENCHMARKS.register("nb201-pth", NB201Pth, paper="Dong and Yang, ICLR 2020")
BENCHMARKS.register("tiny-robustbench", TinyRobustBench, paper="Feng et al., ICLR 2025")


def open(name: str, path: str | Path) -> Any:
    """The reader registered as ``name`` opened on ``path``."""
    return BENCHMARKS.get(name)(path)


def names(pattern: str = "*") -> list[str]:
    return BENCHMARKS.names(pattern)


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
    "names",
    "open",
    "open_nb201",
    "parse_target",
]
