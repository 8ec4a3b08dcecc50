"""One-shot robust search: what the papers share, and one room per paper.

Shared here: ``supernet(space, **options)`` builds a weight-sharing supernet
(:mod:`robnas.oneshot.supernet`): ``net(x, arch)`` runs one path, ``net.subnet(arch)`` is the
standalone network with inherited weights; ``train_supernet`` trains one with single-path
sampling on the common trainer and ``load_supernet`` reads it back (:mod:`robnas.oneshot.training`).

Each paper's method in its own package:

* :mod:`robnas.oneshot.robnets` (RobNets, CVPR 2020): the FSP filter, the scoring of candidates
  with inherited weights, the three analyses;
* :mod:`robnas.oneshot.wsr` (Wsr-NAS, AAAI 2023): the Adversarial Noise Estimator, the EWSS loss
  predictor and the wide-spectrum search loop (``run_wsr(WsrConfig(), data, out)``).
"""

from __future__ import annotations

import importlib
from typing import Any

# eager: the function ``supernet`` must shadow the submodule of the same name
from robnas.oneshot.supernet import SUPERNETS, Supernet, recalibrate_bn, supernet

_LAZY = {
    "SinglePath": "robnas.oneshot.training",
    "load_supernet": "robnas.oneshot.training",
    "train_supernet": "robnas.oneshot.training",
}


def __getattr__(name: str) -> Any:  # the training loop and each paper's room load on first use
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name in ("robnets", "wsr", "training"):
        return importlib.import_module(f"robnas.oneshot.{name}")
    raise AttributeError(f"module 'robnas.oneshot' has no attribute {name!r}")


__all__ = ["SUPERNETS", "SinglePath", "Supernet", "load_supernet", "recalibrate_bn", "supernet", "train_supernet"]
