"""Wsr-NAS (Cheng et al., "Neural Architecture Search for Wide Spectrum Adversarial Robustness",
AAAI 2023): the Adversarial Noise Estimator (:mod:`~robnas.oneshot.wsr.noise`), the EWSS loss
predictor (:mod:`~robnas.oneshot.wsr.predictor`) and the search loop
(:mod:`~robnas.oneshot.wsr.search`). The search strategies ``wsr-nas`` and ``wsr-naive`` are in
:mod:`robnas.search.wsr`.

``noise_estimator(variant, mode)`` builds the AN-E; ``loss_predictor()`` the EWSS LSTM;
``run_wsr(WsrConfig(), data, out)`` runs the whole wide-spectrum search.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "l2_to_linf": "robnas.oneshot.wsr.noise",
    "linf_to_l2": "robnas.oneshot.wsr.noise",
    "noise_estimator": "robnas.oneshot.wsr.noise",
    "loss_predictor": "robnas.oneshot.wsr.predictor",
    "WsrOptions": "robnas.oneshot.wsr.options",
    "WsrConfig": "robnas.oneshot.wsr.search",
    "WsrResult": "robnas.oneshot.wsr.search",
    "run_wsr": "robnas.oneshot.wsr.search",
}


def __getattr__(name: str) -> Any:  # the torch-heavy modules load on first use
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name in ("noise", "options", "predictor", "search"):
        return importlib.import_module(f"robnas.oneshot.wsr.{name}")
    raise AttributeError(f"module 'robnas.oneshot.wsr' has no attribute {name!r}")


__all__ = sorted(_LAZY)
