"""Empirical-NTK proxies and the HNAS criterion (Shu et al., "Unifying and Boosting
Gradient-Based Training-Free Neural Architecture Search", NeurIPS 2022).

``g_i`` is the gradient of the true-class logit ``f_{y_i}(x_i)`` with respect to the weights
of every Conv2d and Linear layer (biases and BatchNorm parameters excluded, as in HNAS);
the empirical NTK of the batch is ``Theta = G G^T`` (B x B) with rows ``g_i``.

Per-sample gradients with BatchNorm in train mode: the batch statistics couple the images,
so "the gradient of sample i" is not unique. ``per_sample="hooks"`` (default, faithful)
follows HNAS's autograd-hacks: one backward pass of ``R = sum_i f_{y_i}(x_i)``, and for each
layer ``g_i = dR/d(out_i) (x) in_i`` from that sample's layer input and output gradient.
``per_sample="exact"`` takes each ``g_i = d f_{y_i}(x_i) / dW`` through the whole batch
(rows of the batch Jacobian, several vectorised backward passes); without BatchNorm in train
mode the two agree. Inputs: (B, C, H, W) as the network consumes them, (B,) labels.
"""

from __future__ import annotations

import math
import sys
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from robnas.errors import ConfigError, ProxyError
from robnas.proxies import gradient
from robnas.proxies.base import register, weight_layers

HNAS = "Shu et al., Unifying and Boosting Gradient-Based Training-Free NAS, NeurIPS 2022"
PerSample = Literal["hooks", "exact"]
#: Condition number HNAS uses where the eigenvalue ratio is NaN.
NAN_CONDITION = 1e5
HNAS_METRICS = ("ntk_trace", "grad_norm", "snip", "grasp")


def _layer_sample_grads(m: nn.Module, a: Tensor, b: Tensor) -> Tensor:
    """Per-sample weight gradients (B, numel(W)) of one call, from input ``a`` and output gradient ``b``."""
    n = a.shape[0]
    if isinstance(m, nn.Linear):
        a2 = a.reshape(n, -1, m.in_features)
        b2 = b.reshape(n, -1, m.out_features)
        return torch.bmm(b2.transpose(1, 2), a2).reshape(n, -1)
    if not isinstance(m, nn.Conv2d):
        raise ProxyError(f"per-sample gradients support Conv2d and Linear, not {type(m).__name__}")
    if isinstance(m.padding, str) or m.padding_mode != "zeros":
        raise ProxyError("per_sample='hooks' needs numeric zero padding; use per_sample='exact'")
    cols = F.unfold(a, m.kernel_size, dilation=m.dilation, padding=m.padding, stride=m.stride)
    groups = m.groups
    cols = cols.reshape(n, groups, -1, cols.shape[-1])
    outs = b.reshape(n, groups, m.out_channels // groups, -1)
    return torch.einsum("ngol,ngil->ngoi", outs, cols).reshape(n, -1)


def _true_class_logits(net: nn.Module, inputs: Tensor, targets: Tensor) -> Tensor:
    logits = net(inputs)
    return logits.gather(1, targets.reshape(-1, 1).to(logits.device)).squeeze(1)


def _gram_hooks(net: nn.Module, inputs: Tensor, targets: Tensor, full: bool) -> Tensor:
    calls: list[tuple[nn.Module, Tensor, Tensor]] = []

    def keep(m: nn.Module, args: tuple[Tensor, ...], out: Tensor) -> None:
        if out.requires_grad:
            calls.append((m, args[0].detach(), out))

    handles = [m.register_forward_hook(keep) for m in weight_layers(net)]
    try:
        selected = _true_class_logits(net, inputs, targets)
    finally:
        for h in handles:
            h.remove()
    n = len(inputs)
    gram = selected.new_zeros((n, n) if full else (n,)).detach()
    if not calls:
        return gram
    backs = torch.autograd.grad(selected.sum(), [out for _, _, out in calls], allow_unused=True)
    for (m, a, _), b in zip(calls, backs, strict=True):
        if b is None:
            continue
        g = _layer_sample_grads(m, a, b)
        gram += g @ g.T if full else g.pow(2).sum(1)
    return gram


def _gram_exact(net: nn.Module, inputs: Tensor, targets: Tensor, full: bool, chunk: int) -> Tensor:
    weights = gradient.scored_weights(net)
    selected = _true_class_logits(net, inputs, targets)
    n = len(inputs)
    eye = torch.eye(n, dtype=selected.dtype, device=selected.device)
    rows = []
    for start in range(0, n, chunk):
        grads = torch.autograd.grad(
            selected,
            weights,
            grad_outputs=eye[start : start + chunk],
            is_grads_batched=True,
            retain_graph=True,
            allow_unused=True,
        )
        used = [g.flatten(1) for g in grads if g is not None]
        rows.append(torch.cat(used, 1) if used else eye.new_zeros(len(eye[start : start + chunk]), 0))
    jac = torch.cat(rows)
    return jac @ jac.T if full else jac.pow(2).sum(1)


def ntk_gram(
    net: nn.Module, inputs: Tensor, targets: Tensor, per_sample: PerSample = "hooks", chunk: int = 8
) -> Tensor:
    """The empirical NTK ``Theta = G G^T`` (B, B) of the true-class logits (see the module doc)."""
    if per_sample == "hooks":
        return _gram_hooks(net, inputs, targets, full=True).detach()
    if per_sample == "exact":
        return _gram_exact(net, inputs, targets, full=True, chunk=chunk).detach()
    raise ConfigError(f"per_sample must be 'hooks' or 'exact', got {per_sample!r}")


def _trace_norm(net: nn.Module, inputs: Tensor, targets: Tensor, per_sample: PerSample, chunk: int) -> float:
    if per_sample == "hooks":
        sq = _gram_hooks(net, inputs, targets, full=False)
    elif per_sample == "exact":
        sq = _gram_exact(net, inputs, targets, full=False, chunk=chunk)
    else:
        raise ConfigError(f"per_sample must be 'hooks' or 'exact', got {per_sample!r}")
    return math.sqrt(float(sq.sum()) / len(inputs))


def condition_number(gram: Tensor) -> float:
    """``lambda_max / lambda_min`` of a symmetric matrix (``eigvalsh`` in float64).

    As HNAS (``numpy.nan_to_num(..., nan=1e5)``): NaN becomes 1e5 and +-inf the largest
    float. A numerically negative smallest eigenvalue gives a negative ratio, kept as is.
    """
    lam = torch.linalg.eigvalsh(gram.double())
    ratio = float(lam[-1] / lam[0])
    if math.isnan(ratio):
        return NAN_CONDITION
    if math.isinf(ratio):
        return math.copysign(sys.float_info.max, ratio)
    return ratio


@register("ntk_trace", paper=HNAS)
def ntk_trace(
    net: nn.Module, inputs: Tensor, targets: Tensor, per_sample: PerSample = "hooks", chunk: int = 8
) -> float:
    """NTK trace norm ``M = sqrt(tr(Theta) / B) = sqrt(mean_i ||g_i||^2)``. Higher: larger NTK.

    For a bias-free linear model ``f(x) = W x``, ``g_i`` is ``x_i`` in row ``y_i``, so
    ``M = sqrt(mean_i ||x_i||^2)``.
    """
    return _trace_norm(net, inputs, targets, per_sample, chunk)


@register("ntk_condnum", paper=HNAS)
def ntk_condnum(
    net: nn.Module, inputs: Tensor, targets: Tensor, per_sample: PerSample = "hooks", chunk: int = 8
) -> float:
    """Condition number ``kappa = lambda_max(Theta) / lambda_min(Theta)`` of the empirical NTK.

    LOWER is better (a well-conditioned NTK). NaN becomes 1e5 as in HNAS
    (:func:`condition_number`).
    """
    return condition_number(ntk_gram(net, inputs, targets, per_sample, chunk))


@register("hnas", paper=HNAS)
def hnas(
    net: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    nu: float = 2500.0,
    mu: float = 1e-2,
    metric: str = "ntk_trace",
    per_sample: PerSample = "hooks",
    chunk: int = 8,
) -> float:
    """Minus the HNAS criterion: ``-S`` with ``S = mu * |M^2 - nu^2| + kappa / M``.

    HNAS picks the architecture with the SMALLEST ``S``; the registered value is ``-S`` so
    that, like every robnas proxy, HIGHER is better. ``M`` is ``metric`` (``ntk_trace``,
    ``grad_norm``, ``snip`` or ``grasp``, computed on the same network and batch), ``kappa``
    always the NTK condition number. HNAS tunes ``nu = t * scale`` (t in [0, 1], scale 5e3 on
    NAS-Bench-201, 1e2 on DARTS) and ``mu = 10**c`` (c in [-4, 0] on NB201, [-4, 1] on DARTS)
    by Bayesian optimisation; the defaults are the middle of the NB201 box (t = 0.5, c = -2).
    """
    if metric not in HNAS_METRICS:
        raise ConfigError(f"hnas metric must be one of {HNAS_METRICS}, got {metric!r}")
    if not (math.isfinite(nu) and nu >= 0):
        raise ConfigError(f"hnas nu must be a finite number >= 0, got {nu}")
    if not (math.isfinite(mu) and mu > 0):
        raise ConfigError(f"hnas mu must be a finite number > 0, got {mu}")
    gram = ntk_gram(net, inputs, targets, per_sample, chunk)
    kappa = condition_number(gram)
    if metric == "ntk_trace":
        m = math.sqrt(float(gram.diagonal().sum()) / len(inputs))
    else:
        m = getattr(gradient, metric)(net, inputs, targets)
    if m == 0:
        raise ProxyError(f"hnas: the metric {metric} is 0, kappa / M is undefined")
    return -(mu * abs(m * m - nu * nu) + kappa / m)
