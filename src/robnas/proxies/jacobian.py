"""Activation- and input-Jacobian proxies: jacob_cov, NASWOT and EPE-NAS.

Each uses one minibatch at initialisation with BatchNorm in train mode. ``inputs`` is
(B, C, H, W) as the network consumes it, ``targets`` (B,) integer labels (only EPE-NAS reads
them). Batches of 2 or more images are required.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from robnas.errors import ProxyError
from robnas.proxies.base import register

NASWOT = "Mellor et al., Neural Architecture Search without Training, ICML 2021"
EPE_NAS = "Lopes et al., EPE-NAS: Efficient Performance Estimation Without Training, ICANN 2021"
_K = 1e-5


def input_jacobian(net: nn.Module, inputs: Tensor) -> tuple[Tensor, int]:
    """``d(sum of all logits)/dx`` per image, flattened to (B, C*H*W) float64, and the class count."""
    if inputs.dim() < 2 or len(inputs) < 2:
        raise ProxyError(
            f"a Jacobian proxy needs a batch of at least 2 inputs, got shape {tuple(inputs.shape)}"
        )
    x = inputs.detach().requires_grad_(True)
    out = net(x)
    (jac,) = torch.autograd.grad(out.sum(), x)
    return jac.reshape(len(x), -1).double(), out.shape[-1]


@register("jacov", copy=False, paper=NASWOT + " (first version, arXiv 2006.04647v1); zero-cost-nas jacob_cov")
def jacov(net: nn.Module, inputs: Tensor, targets: Tensor) -> float:
    """``-sum_i [log(l_i + k) + 1/(l_i + k)]``, ``k = 1e-5``, over the eigenvalues ``l_i`` of the
    (B, B) correlation matrix of the per-image input Jacobians of the summed logits.

    The eigenvalues come from ``eigvalsh`` (the matrix is symmetric; the reference's general
    ``eig`` can return spurious complex pairs). An image whose Jacobian is constant makes the
    correlation undefined: the proxy then fails (NaN through :func:`robnas.proxies.run`), as
    the reference does.
    """
    jac, _ = input_jacobian(net, inputs)
    corr = torch.corrcoef(jac)
    if not torch.isfinite(corr).all():
        raise ProxyError("jacov: an input Jacobian is constant, its correlation is undefined")
    lam = torch.linalg.eigvalsh(corr)
    return float(-(torch.log(lam + _K) + 1.0 / (lam + _K)).sum())


@register("nwot", copy=False, paper=NASWOT + " (second version)")
def nwot(net: nn.Module, inputs: Tensor, targets: Tensor) -> float:
    """``log|det K|`` with ``K_ij = sum over ReLU units of [c_i == c_j]`` (units minus Hamming
    distance) of the binary codes ``c = (input of ReLU > 0)`` of images i and j.

    Every ``nn.ReLU`` module contributes, as in NAS-Bench-Suite-Zero; a module called twice
    contributes twice. ``K`` is accumulated in float64 and ``slogdet`` gives the log of the
    absolute determinant (the reference ignores the sign too). One forward pass, no gradient.
    """
    n = len(inputs)
    if n < 2:
        raise ProxyError(f"nwot needs a batch of at least 2 inputs, got {n}")
    kernel = torch.zeros(n, n, dtype=torch.float64, device=inputs.device)

    def accumulate(m: nn.Module, args: tuple[Tensor, ...]) -> None:
        codes = args[0].detach().reshape(n, -1) > 0
        units = codes.shape[1]
        exact = torch.float32 if units < 2**24 else torch.float64  # integer sums stay exact
        ones = codes.to(exact)
        both = (ones @ ones.T).double()  # units active in both images
        active = both.diagonal()
        # agreements = units - hamming = units - (n_i + n_j - 2 * both)
        kernel.add_(units - active[:, None] - active[None, :] + 2 * both)

    handles = [m.register_forward_pre_hook(accumulate) for m in net.modules() if isinstance(m, nn.ReLU)]
    try:
        with torch.no_grad():
            net(inputs)
    finally:
        for h in handles:
            h.remove()
    return float(torch.linalg.slogdet(kernel).logabsdet)


@register("epe_nas", copy=False, paper=EPE_NAS)
def epe_nas(net: nn.Module, inputs: Tensor, targets: Tensor) -> float:
    """Per-class Jacobian correlation score of EPE-NAS.

    For each class ``c`` present in the batch, ``s_c = sum log(|R_c| + 1e-5)`` over the entries
    of the correlation matrix ``R_c`` of the input Jacobians (of the summed logits) of that
    class's images. With at most 100 classes the score is ``sum_c |s_c|``; with more,
    ``s_c`` is divided by the class's image count and the score is
    ``sum_{c, c'} |s_c - s_c'| / (number of classes present)``, and (as in the reference)
    classes with a single image are left out in that case.
    """
    jac, n_classes = input_jacobian(net, inputs)
    labels = targets.to(jac.device)
    scores: list[Tensor] = []
    for c in torch.unique(labels):
        rows = jac[labels == c]
        if len(rows) == 1 and n_classes > 100:
            continue
        corr = torch.corrcoef(rows).reshape(len(rows), len(rows))
        s = torch.log(corr.abs() + _K).sum()
        scores.append(s / len(rows) if n_classes > 100 else s)
    if not scores:
        raise ProxyError("epe_nas: no class of the batch has enough images")
    s_c = torch.stack(scores)
    if n_classes <= 100:
        return float(s_c.abs().sum())
    return float((s_c[:, None] - s_c[None, :]).abs().sum() / len(s_c))
