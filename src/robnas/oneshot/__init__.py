"""One-shot robust search: Wsr-NAS's adversarial noise estimator and wide-spectrum loss predictor.

``noise_estimator(variant, mode)`` builds the AN-E (:mod:`robnas.oneshot.noise`);
``loss_predictor()`` the EWSS LSTM (:mod:`robnas.oneshot.predictor`).
"""

from __future__ import annotations

from robnas.oneshot.noise import l2_to_linf, linf_to_l2, noise_estimator
from robnas.oneshot.predictor import loss_predictor

__all__ = ["l2_to_linf", "linf_to_l2", "loss_predictor", "noise_estimator"]
