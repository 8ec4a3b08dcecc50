"""One-shot robust search: RobNets' FSP filter, Wsr-NAS's noise estimator and loss predictor.

``noise_estimator(variant, mode)`` builds the AN-E (:mod:`robnas.oneshot.noise`);
``loss_predictor()`` the EWSS LSTM (:mod:`robnas.oneshot.predictor`); :mod:`robnas.oneshot.fsp`
computes RobNets' FSP loss of a cell network between clean and adversarial inputs.
``supernet(space, **options)`` builds a weight-sharing supernet (:mod:`robnas.oneshot.supernet`):
``net(x, arch)`` runs one path, ``net.subnet(arch)`` is the standalone network with inherited weights;
``train_supernet`` trains one on the common trainer and ``load_supernet`` reads it back
(:mod:`robnas.oneshot.training`). ``run_wsr(WsrConfig(), data, out)`` runs Wsr-NAS's whole
wide-spectrum search (:mod:`robnas.oneshot.wsr`).
"""

from __future__ import annotations

from robnas.oneshot.noise import l2_to_linf, linf_to_l2, noise_estimator
from robnas.oneshot.predictor import loss_predictor
from robnas.oneshot.supernet import SUPERNETS, Supernet, recalibrate_bn, supernet
from robnas.oneshot.training import SinglePath, load_supernet, train_supernet
from robnas.oneshot.wsr import WsrConfig, WsrResult, run_wsr

__all__ = [
    "SUPERNETS",
    "SinglePath",
    "Supernet",
    "WsrConfig",
    "WsrResult",
    "l2_to_linf",
    "linf_to_l2",
    "load_supernet",
    "loss_predictor",
    "noise_estimator",
    "recalibrate_bn",
    "run_wsr",
    "supernet",
    "train_supernet",
]
