"""One-shot robust search: RobNets' FSP filter, Wsr-NAS's noise estimator and loss predictor.

``noise_estimator(variant, mode)`` builds the AN-E (:mod:`robnas.oneshot.noise`);
``loss_predictor()`` the EWSS LSTM (:mod:`robnas.oneshot.predictor`); :mod:`robnas.oneshot.fsp`
computes RobNets' FSP loss of a cell network between clean and adversarial inputs.
"""

from __future__ import annotations

from robnas.oneshot.noise import l2_to_linf, linf_to_l2, noise_estimator
from robnas.oneshot.predictor import loss_predictor

__all__ = ["l2_to_linf", "linf_to_l2", "loss_predictor", "noise_estimator"]
