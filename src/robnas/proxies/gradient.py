"""Gradient-based zero-cost proxies of zero-cost-nas (Abdelfattah et al., ICLR 2021).

All are sums over the weights of every Conv2d and Linear layer (biases and BatchNorm
parameters are not scored) of a per-weight saliency computed from one minibatch at
initialisation. ``L`` is the mean cross-entropy of the batch; BatchNorm runs in train mode
(batch statistics) except for ``synflow``, which removes it and needs no data.

Inputs: ``inputs`` (B, C, H, W) as the network consumes them (CIFAR-normalised images for
NB201), ``targets`` (B,) integer labels. A layer that does not reach the output scores 0.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from robnas.proxies.base import LastResult, linearize, register, weight_layers

ZERO_COST = "Abdelfattah et al., Zero-Cost Proxies for Lightweight NAS, ICLR 2021"


def scored_weights(net: nn.Module) -> list[Tensor]:
    """The weights the proxies score (Conv2d and Linear), made differentiable."""
    weights = [m.weight for m in weight_layers(net)]
    for w in weights:
        w.requires_grad_(True)
    return weights


#: The last ``dL/dW``: ``grad_norm``, ``snip`` and ``plain`` share it on one network and batch.
_LAST_GRADIENTS: LastResult[list[Tensor | None]] = LastResult()


def loss_gradients(
    net: nn.Module, inputs: Tensor, targets: Tensor, create_graph: bool = False
) -> tuple[list[Tensor], list[Tensor | None]]:
    """The scored weights and ``dL/dW`` of the batch cross-entropy (None where unused).

    Without ``create_graph`` the gradients of the previous call are reused when it saw the
    same network (structure and state) and batch: the pass is deterministic, so the values
    are the same either way."""
    weights = scored_weights(net)
    if create_graph:
        loss = F.cross_entropy(net(inputs), targets)
        return weights, list(torch.autograd.grad(loss, weights, allow_unused=True, create_graph=True))
    grads, key = _LAST_GRADIENTS.lookup(net, inputs, targets, tag="loss gradients")
    if grads is None:
        loss = F.cross_entropy(net(inputs), targets)
        grads = _LAST_GRADIENTS.put(key, list(torch.autograd.grad(loss, weights, allow_unused=True)))
    return weights, grads


def _total(terms: list[Tensor], like: Tensor) -> float:
    return float(torch.stack(terms).detach().sum()) if terms else 0.0


@register("grad_norm", copy=False, paper=ZERO_COST)
def grad_norm(net: nn.Module, inputs: Tensor, targets: Tensor) -> float:
    """``sum_l ||dL/dW_l||_2``: per-layer Frobenius norms of the loss gradient, summed.

    Not the global gradient norm and not squared, as zero-cost-nas defines it.
    """
    _, grads = loss_gradients(net, inputs, targets)
    return _total([g.norm() for g in grads if g is not None], inputs)


@register("snip", copy=False, paper="Lee et al., SNIP, ICLR 2019; " + ZERO_COST)
def snip(net: nn.Module, inputs: Tensor, targets: Tensor) -> float:
    """``sum |W * dL/dW|``, the connection sensitivity of SNIP (equal to the gradient with
    respect to an all-ones multiplicative mask, as zero-cost-nas computes it)."""
    weights, grads = loss_gradients(net, inputs, targets)
    return _total([(w * g).abs().sum() for w, g in zip(weights, grads, strict=True) if g is not None], inputs)


@register("plain", copy=False, paper=ZERO_COST)
def plain(net: nn.Module, inputs: Tensor, targets: Tensor) -> float:
    """``sum W * dL/dW``, signed (no absolute value)."""
    weights, grads = loss_gradients(net, inputs, targets)
    return _total([(w * g).sum() for w, g in zip(weights, grads, strict=True) if g is not None], inputs)


@register("grasp", bn="second-order", paper="Wang et al., GraSP, ICLR 2020; " + ZERO_COST)
def grasp(net: nn.Module, inputs: Tensor, targets: Tensor) -> float:
    """``sum -W * (H g)`` with ``g = dL/dW`` (held constant) and ``H`` the Hessian of ``L``.

    Signed, with zero-cost-nas's minus sign so that higher is better; temperature 1. ``H g``
    is the gradient of ``z = <stop_grad(g), dL/dW>``. The reference takes ``g`` from a first
    forward pass and ``dL/dW`` from a second one on the same batch; the two are identical in
    train mode, so one forward pass serves both here. BatchNorm runs in train mode with its
    backward written in tensor operations (``bn="second-order"``, ``SecondOrderBatchNorm``):
    the same function, differentiated twice faster than torch's fused kernel.
    """
    weights, grads = loss_gradients(net, inputs, targets, create_graph=True)
    used = [(w, g) for w, g in zip(weights, grads, strict=True) if g is not None]
    if not used:
        return 0.0
    z = torch.stack([(g.detach() * g).sum() for _, g in used]).sum()
    if not z.requires_grad:  # the loss is linear in every weight: zero curvature
        return 0.0
    hg = torch.autograd.grad(z, [w for w, _ in used], allow_unused=True)
    terms = [(-w.detach() * h).sum() for (w, _), h in zip(used, hg, strict=True) if h is not None]
    return _total(terms, inputs)


@register("fisher", copy=False, paper="Turner et al., BlockSwap, ICLR 2020; Theis et al. 2018; " + ZERO_COST)
def fisher(net: nn.Module, inputs: Tensor, targets: Tensor) -> float:
    """Channel-wise Fisher information of each Conv2d / Linear output, broadcast to weights.

    For the output ``a`` (B, C, ...) of a layer and its gradient ``dL/da``, each channel
    scores ``F_c = 1/2 * mean_b (sum_spatial a * dL/da)^2``. As in zero-cost-nas, ``|F_c|``
    is broadcast to the ``in/groups * kh * kw`` weights of its channel before summing, so the
    score is ``sum_l sum_c |F_c| * fan_in_l``. A layer called more than once accumulates one
    ``F`` per call (the reference fails in that case).
    """
    outputs: list[tuple[nn.Module, Tensor]] = []

    def keep(m: nn.Module, args: tuple[Tensor, ...], out: Tensor) -> None:
        if out.requires_grad:
            outputs.append((m, out))

    handles = [m.register_forward_hook(keep) for m in weight_layers(net)]
    try:
        loss = F.cross_entropy(net(inputs), targets)
    finally:
        for h in handles:
            h.remove()
    if not outputs:
        return 0.0
    grads = torch.autograd.grad(loss, [a for _, a in outputs], allow_unused=True)
    per_layer: dict[nn.Module, Tensor] = {}
    for (m, a), g in zip(outputs, grads, strict=True):
        if g is None:
            continue
        act = a.detach()
        g_nk = (act * g).flatten(2).sum(2) if act.dim() > 2 else act * g
        f_c = g_nk.pow(2).mean(0).mul(0.5)
        per_layer[m] = per_layer[m] + f_c if m in per_layer else f_c
    terms = [f_c.abs().sum() * m.weight[0].numel() for m, f_c in per_layer.items()]
    return _total(terms, inputs)


@register(
    "synflow",
    needs_data=False,
    bn="remove",
    dtype=torch.float64,
    paper="Tanaka et al., SynFlow, NeurIPS 2020; " + ZERO_COST,
)
def synflow(net: nn.Module, inputs: Tensor, targets: Tensor) -> float:
    """Synaptic flow ``sum |W * dR/dW|`` of the linearised network, data independent.

    Every state tensor is replaced by its absolute value, the network runs in float64 with
    BatchNorm removed (NB201 reduction blocks keep theirs, as the reference does), the input
    is one all-ones image of shape (1, C, H, W) taken from ``inputs.shape`` and ``R`` is the
    sum of the outputs. Values grow exponentially with depth (about 1e19 to 1e40 on NB201);
    NAS-Bench-Suite-Zero publishes ``log`` of it, which ranks the same.
    """
    linearize(net)
    weights = scored_weights(net)
    x = torch.ones(
        (1, *inputs.shape[1:]), dtype=weights[0].dtype if weights else inputs.dtype, device=inputs.device
    )
    r = net(x).sum()
    grads = torch.autograd.grad(r, weights, allow_unused=True)
    return _total([(w * g).abs().sum() for w, g in zip(weights, grads, strict=True) if g is not None], inputs)
