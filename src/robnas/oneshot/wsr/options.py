"""Wsr-NAS's settings that the search strategies take as they are (no torch: ``robnas.search``
imports them); :class:`robnas.oneshot.wsr.search.WsrConfig` extends them with the rest."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass
class WsrOptions:
    """Wsr-NAS's settings that the strategies take as they are, with the reference's defaults
    (spec B5); :class:`robnas.oneshot.wsr.search.WsrConfig` extends them with the rest."""

    warmup_epochs: int = 100
    memory_epochs: int = 100
    search_epochs: int = 200
    C: int = 16
    layers: int = 8
    batch_size: int = 64
    pgd_steps: int = 7
    #: where the search phase measures the clean loss: "train" (the reference, C2) or "valid"
    search_clean_on: Literal["train", "valid"] = "train"
    #: the path that runs: "genotype" (the top-2 genotype of the sample) or "argmax" (the
    #: reference's MixedOp: every edge's arg-max operation, scaled by its weight)
    path: Literal["genotype", "argmax"] = "genotype"
    # the AN-E
    estimator: Literal["basic", "plus"] = "basic"
    estimator_mode: Literal["faithful", "fixed"] = "faithful"
    #: the plus AN-E's image size (the reference hard-codes 32)
    estimator_image_size: int = 32
    noise_memory: int = 600
    noise_batches: int = 10
    # the EWSS loss predictor
    predictor_warmup_passes: int = 500
    predictor_passes: int = 501


__all__ = ["WsrOptions"]
