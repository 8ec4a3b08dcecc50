"""Model-size baselines: parameter count, multiply-accumulates, weight norms.

These are the ``params``, ``flops`` and ``l2_norm`` columns of NAS-Bench-Suite-Zero
(Krishnakumar et al., NeurIPS 2022 Datasets and Benchmarks). They ignore the labels; ``flops``
uses only the shape of one input image.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from robnas.errors import ProxyError
from robnas.proxies.base import register, weight_layers

SUITE_ZERO = "Krishnakumar et al., NAS-Bench-Suite-Zero, NeurIPS 2022 Datasets and Benchmarks"

_POOLS = (nn.AvgPool2d, nn.MaxPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm)
_ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.GELU, nn.SiLU, nn.Hardswish, nn.Sigmoid, nn.Tanh)


@register("params", copy=False, needs_data=False, paper=SUITE_ZERO)
def params(net: nn.Module, inputs: Tensor, targets: Tensor) -> float:
    """Number of parameters in millions, every parameter counted (as NAS-Bench-201 does).

    ``sum(p.numel() for p in net.parameters()) / 1e6``; BN running statistics are buffers
    and not counted. An NB201 network whose cell is all ``none`` gives 0.073306.
    """
    return sum(p.numel() for p in net.parameters()) / 1e6


def _conv_macs(m: nn.Conv2d | nn.Linear, out: Tensor) -> int:
    """Multiply-accumulates of one Conv2d / Linear call for one sample (bias not counted)."""
    per_output = (
        m.in_features if isinstance(m, nn.Linear) else (m.in_channels // m.groups) * math.prod(m.kernel_size)
    )
    return per_output * out[0].numel()


def _elementwise_ops(m: nn.Module, inp: Tensor, out: Tensor) -> int:
    """Operations counted for pooling (kernel size per output), normalisation (2 per element)
    and activations (1 per element) in ``include_elementwise`` mode."""
    if isinstance(m, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
        return inp[0].numel()  # every input element enters exactly one output window
    if isinstance(m, (nn.AvgPool2d, nn.MaxPool2d)):
        k = m.kernel_size if isinstance(m.kernel_size, tuple) else (m.kernel_size, m.kernel_size)
        return math.prod(k) * out[0].numel()
    if isinstance(m, _NORMS):
        return 2 * out[0].numel()
    return out[0].numel()


@register("flops", copy=False, needs_data=False, paper=SUITE_ZERO)
def flops(net: nn.Module, inputs: Tensor, targets: Tensor, include_elementwise: bool = False) -> float:
    """Multiply-accumulates (millions) of one forward pass of a single image of the batch's size.

    MACs = sum over Conv2d calls of ``out_elements * in_channels / groups * kh * kw`` plus
    sum over Linear calls of ``out_elements * in_features``, for input shape
    ``(1, *inputs.shape[1:])`` (so 16x16 ImageNet16 images give a quarter of CIFAR's count).
    ``include_elementwise=True`` adds pooling (kernel size per output element), BatchNorm (2
    per element) and activations (1 per element), the way the tensorwatch counter behind
    NAS-Bench-Suite-Zero's ``flops`` column adds them. Counted with forward hooks, so a
    module called twice is counted twice.
    """
    if inputs.dim() < 2:
        raise ProxyError(f"flops needs a batch of inputs (B, ...), got shape {tuple(inputs.shape)}")
    total = [0]

    def count(m: nn.Module, args: tuple[Any, ...], out: Tensor) -> None:
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            total[0] += _conv_macs(m, out)
        elif include_elementwise:
            total[0] += _elementwise_ops(m, args[0], out)

    kinds: tuple[type[nn.Module], ...] = (nn.Conv2d, nn.Linear)
    if include_elementwise:
        kinds = kinds + _POOLS + _NORMS + _ACTIVATIONS
    handles = [m.register_forward_hook(count) for m in net.modules() if isinstance(m, kinds)]
    net.eval()  # one image: batch statistics are not needed to count operations
    try:
        with torch.no_grad():
            net(inputs[:1])
    finally:
        for h in handles:
            h.remove()
    return total[0] / 1e6


@register("l2_norm", copy=False, needs_data=False, paper=SUITE_ZERO)
def l2_norm(net: nn.Module, inputs: Tensor, targets: Tensor) -> float:
    """Sum over Conv2d and Linear layers of the Frobenius norm of the weight, ``sum_l ||W_l||_2``.

    Depends only on the initialisation (zero-cost-nas ``l2_norm``; NAS-Bench-Suite-Zero).
    """
    with torch.no_grad():
        norms = [m.weight.norm() for m in weight_layers(net)]
    return float(torch.stack(norms).sum()) if norms else 0.0
