"""The inner maximisation of adversarial training, written for speed (no attack-library overhead).

All functions take images ``x`` in [0, 1], shape (B, C, H, W), a model that maps such images
to logits (normalisation, if any, lives inside the model), and return ``x_adv`` in [0, 1]
with ``|x_adv - x|_inf <= eps``. Gradients are taken with :func:`torch.autograd.grad` with
respect to the input only, so parameter gradients are never touched. The random start is
passed in (``start``, same shape as ``x``) so that callers control its seed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def logits_of(output: Tensor | tuple | list) -> Tensor:
    """The main logits of a network whose forward may return ``(logits, aux_logits)``."""
    return output[0] if isinstance(output, (tuple, list)) else output


def _project(x_adv: Tensor, x: Tensor, eps: float) -> Tensor:
    return torch.min(torch.max(x_adv, x - eps), x + eps).clamp_(0.0, 1.0)


def pgd(
    model: Callable[[Tensor], Any],
    x: Tensor,
    y: Tensor,
    eps: float,
    step_size: float,
    steps: int,
    start: Tensor | None = None,
    clamp_start: bool = False,
) -> Tensor:
    """L-inf PGD on the cross-entropy (Madry et al., ICLR 2018), robnas's one PGD loop: training,
    validation and the ``random_start="normal"`` evaluation attack of :mod:`robnas.attacks`.

    ``model`` is any callable from images to logits. ``start`` is the initial perturbation (e.g.
    uniform in [-eps, eps]); as in the CRoZe and RobNets training code the first point is not
    clamped to [0, 1] before the first step unless ``clamp_start`` (CRoZe's evaluation attack
    clamps it). With ``steps=1`` and ``step_size`` > ``eps`` this is FGSM with random start
    (Wong et al. 2020). The loss is summed over the batch: the sign of its gradient is that of
    the mean's.
    """
    x = x.detach()
    x_adv = x + start if start is not None else x.clone()
    if clamp_start:
        x_adv = x_adv.clamp(0.0, 1.0)
    for _ in range(steps):
        x_adv.requires_grad_(True)
        loss = F.cross_entropy(logits_of(model(x_adv)).float(), y, reduction="sum")
        (grad,) = torch.autograd.grad(loss, x_adv)
        x_adv = _project(x_adv.detach() + step_size * grad.sign(), x, eps)
    return x_adv.detach()


def trades(
    model: nn.Module,
    x: Tensor,
    eps: float,
    step_size: float,
    steps: int,
    start: Tensor,
    clean_logits: Tensor | None = None,
) -> Tensor:
    """TRADES inner maximisation of KL(f(x) || f(x_adv)) (Zhang et al., ICML 2019).

    ``start`` is the initial perturbation, 0.001 * N(0, 1) in the official code.
    """
    x = x.detach()
    with torch.no_grad():
        p_clean = F.softmax(
            (clean_logits if clean_logits is not None else logits_of(model(x))).float(), dim=1
        )
    x_adv = x + start
    for _ in range(steps):
        x_adv.requires_grad_(True)
        log_p_adv = F.log_softmax(logits_of(model(x_adv)).float(), dim=1)
        loss = F.kl_div(log_p_adv, p_clean, reduction="sum")
        (grad,) = torch.autograd.grad(loss, x_adv)
        x_adv = _project(x_adv.detach() + step_size * grad.sign(), x, eps)
    return x_adv.detach()


def trades_loss(clean_logits: Tensor, adv_logits: Tensor, y: Tensor, beta: float) -> Tensor:
    """CE(f(x), y) + beta * KL(f(x) || f(x_adv)) averaged over the batch (official TRADES)."""
    natural = F.cross_entropy(clean_logits.float(), y)
    robust = F.kl_div(
        F.log_softmax(adv_logits.float(), dim=1),
        F.softmax(clean_logits.float(), dim=1),
        reduction="batchmean",
    )
    return natural + beta * robust


__all__ = ["logits_of", "pgd", "trades", "trades_loss"]
