"""``robust_zc``: a label-free robustness proxy that ranks NAS-Bench-201 better than model size.

It is the signal of MeCo (Jiang, Wang and Bie, "MeCo: Zero-Shot NAS with One Data and Single
Forward Pass via Minimum Eigenvalue of Correlation", NeurIPS 2023): how far from collinear the
channels of each feature map of the untrained network are, measured by the smallest eigenvalue
of their correlation matrix. MeCo proposed it for clean accuracy; on the NB201 robustness
dataset it also ranks FGSM and corruption accuracy well above the parameter count. It was chosen
among zero-cost candidates (CRoZe, jacob_cov, ZiCo, input-gradient norms, activation flips under
noise, their sums) on the development half of ``benchmarks/results/nb201_split.json`` only
(``benchmarks/results/robust_zc_selection.md``).

Here the feature maps are the inputs of every ``nn.ReLU`` call (in NB201 and DARTS cells, the
inputs of each ReLU-Conv-BN operation; the network's own stem and head ReLUs too), and every
image of the batch contributes: the per-image eigenvalues are averaged. One forward pass with
BatchNorm in train mode, no gradient, no labels.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from robnas.errors import ProxyError
from robnas.proxies.base import register

MECO = "Jiang, Wang and Bie, MeCo: Zero-Shot NAS with One Data and Single Forward Pass via Minimum " \
    "Eigenvalue of Correlation, NeurIPS 2023"


@torch.no_grad()
def channel_decorrelation(net: nn.Module, inputs: Tensor) -> float:
    """Sum over ``nn.ReLU`` calls of the mean over images of the smallest eigenvalue of the (C, C)
    Pearson correlation matrix of the channels of the ReLU's input, each channel a vector of
    its H*W positions.

    ``inputs`` (B, C, H, W), as the network consumes them; any B >= 1. A ReLU input with at
    least as many channels as positions has a singular correlation matrix (its rank is at most
    H*W - 1) and contributes 0 without an eigendecomposition; so do inputs that are not 4-D.
    A constant channel counts as a zero row (the matrix is then singular too). Eigenvalues in
    float64. A network without ``nn.ReLU`` is a :class:`ProxyError`.
    """
    total = [0.0]

    def visit(_module: nn.Module, args: tuple[Tensor, ...]) -> None:
        t = args[0]
        if t.dim() != 4 or t.shape[1] < 2 or t.shape[1] >= t.shape[2] * t.shape[3]:
            return
        f = t.detach().flatten(2).to(torch.float64, copy=True)  # its own copy: changed in place below
        f.sub_(f.mean(2, keepdim=True))
        f.div_(f.norm(dim=2, keepdim=True).clamp_min_(1e-300))  # a zero row (norm 0) stays zero
        total[0] += float(torch.linalg.eigvalsh(f @ f.transpose(1, 2))[:, 0].mean())

    relus = [m for m in net.modules() if isinstance(m, nn.ReLU)]
    if not relus:
        raise ProxyError("robust_zc: the network has no nn.ReLU module whose inputs it could score")
    handles = [m.register_forward_pre_hook(visit) for m in relus]
    try:
        net(inputs)
    finally:
        for h in handles:
            h.remove()
    return total[0]


@register("robust_zc", copy=False, paper=MECO)
def robust_zc(net: nn.Module, inputs: Tensor, targets: Tensor) -> float:
    """MeCo's channel-decorrelation signal summed over ReLU inputs (:func:`channel_decorrelation`);
    higher ranks as more robust.

    ``inputs`` (B, 3, H, W) CIFAR-normalised images, any B >= 1; ``targets`` is not read (no
    label, no benchmark accuracy). Works on every network built of ``nn.ReLU`` modules (NB201,
    DARTS, RobNet). One forward pass, no backward.

    Measured on NAS-Bench-201 CIFAR-10 (1,000 isomorphism classes, batch of 8 real images,
    ``benchmarks/results/robust_zc_selection.md``), Spearman rho, robust_zc / params:

    =========================  =============  =============  =============
    half, population           clean          fgsm@8         cc_mean
    =========================  =============  =============  =============
    dev, each class once       0.908 / 0.775  0.874 / 0.781  0.770 / 0.661
    dev, weighted by strings   0.920 / 0.661  0.803 / 0.594  0.813 / 0.597
    test, each class once      0.932 / 0.779  0.868 / 0.790  0.750 / 0.688
    test, weighted by strings  0.948 / 0.739  0.865 / 0.752  0.712 / 0.637
    =========================  =============  =============  =============

    521 development and 479 test classes; ``cc_mean`` is the mean accuracy over 15 corruptions x
    5 severities. Test-half 95% bootstrap intervals, each class once: clean 0.917-0.943,
    fgsm@8 0.839-0.890, cc_mean 0.700-0.795. Against CRoZe's averaged statistic
    ``croze_mean15`` it gains less (test classes: 0.512 against params 0.477).
    """
    return channel_decorrelation(net, inputs)
