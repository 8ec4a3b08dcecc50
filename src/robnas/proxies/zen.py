"""Zen-score (Lin et al., Zen-NAS, ICCV 2021), as NAS-Bench-Suite-Zero computes it."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from robnas.errors import ProxyError
from robnas.proxies.base import register

ZEN_NAS = "Lin et al., Zen-NAS: A Zero-Shot NAS for High-Performance Image Recognition, ICCV 2021"


@torch.no_grad()
def gaussian_init(net: nn.Module, generator: torch.Generator | None = None) -> None:
    """Zen-NAS initialisation: Conv2d / Linear weights ~ N(0, 1), biases 0, norm scales 1 and shifts 0."""
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.normal_(m.weight, generator=generator)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)) and m.weight is not None:
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def _pre_pooling(net: nn.Module) -> nn.Module:
    pools = [m for m in net.modules() if isinstance(m, nn.AdaptiveAvgPool2d)]
    if not pools:
        raise ProxyError("zen needs a global average pooling layer (nn.AdaptiveAvgPool2d) in the network")
    return pools[-1]


@register("zen", needs_data=False, paper=ZEN_NAS)
def zen(
    net: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    mixup_gamma: float = 1e-2,
    repeat: int = 1,
    seed: int | None = None,
) -> float:
    """``log E|f(x) - f(x + gamma * e)|_1 + sum_BN log sqrt(mean running_var)``.

    The network is re-initialised with Gaussian weights (it is a private copy), ``x`` and
    ``e`` are standard Gaussian batches of ``inputs.shape``, ``f`` is the feature map that
    enters the last global average pooling, the L1 norm is over (C, H, W) and ``E`` the
    batch mean. As in NAS-Bench-Suite-Zero, BatchNorm runs in train mode and the scaling
    term reads each BatchNorm2d's running variance after the two forward passes (layers
    without running statistics are skipped). ``repeat`` averages independent draws; ``seed``
    fixes them (otherwise the global torch generator is used). Data independent.
    """
    if repeat < 1:
        raise ProxyError(f"zen: repeat must be at least 1, got {repeat}")
    generator = None
    if seed is not None:
        generator = torch.Generator(device=inputs.device)
        generator.manual_seed(seed)
    features: list[Tensor] = []
    hook = _pre_pooling(net).register_forward_pre_hook(lambda m, args: features.append(args[0]))
    scores = []
    try:
        with torch.no_grad():
            for _ in range(repeat):
                gaussian_init(net, generator)
                x = torch.randn(inputs.shape, generator=generator, dtype=inputs.dtype, device=inputs.device)
                e = torch.randn(inputs.shape, generator=generator, dtype=inputs.dtype, device=inputs.device)
                net(x)
                clean = features[-1]
                net(x + mixup_gamma * e)
                diff = (clean - features[-1]).abs().flatten(1).sum(1).mean()
                features.clear()
                log_bn = sum(
                    math.log(math.sqrt(float(m.running_var.mean())))
                    for m in net.modules()
                    if isinstance(m, nn.BatchNorm2d) and m.running_var is not None
                )
                scores.append(math.log(float(diff)) + log_bn)
    finally:
        hook.remove()
    return sum(scores) / len(scores)
