"""CRoZe: consistency-based robust zero-cost proxy (Ha et al., NeurIPS 2023, arXiv 2306.05031).

CRoZe compares a network ``theta`` with a "robust surrogate" ``theta^r`` (the same network
after one layer-wise adversarial weight step) on a clean batch ``x`` and a perturbed batch
``x'``. For every Conv2d / Linear layer it multiplies three consistencies -- weights, weight
gradients, features -- and sums the products over layers (Eq. 10 of the paper).

Two registered proxies:

* ``croze``: the authors' code (HyeonjeongHa/CRoZe at 3e89e3d) reproduced quirk for quirk,
  so that rankings match theirs (see :func:`croze`).
* ``croze_fixed``: the proxy as the paper describes it, with the code's quirks corrected
  (see :func:`croze_fixed`).

Both take what the network consumes: CIFAR-normalised images (B, 3, H, W) and integer labels
(B,). :func:`robnas.proxies.run` gives them a private float64 copy of the caller's network
with BatchNorm removed (``bn="remove"``: NAS-Bench-201 residual reduction blocks keep theirs,
in train mode, exactly like the reference's rebuilt ``bn=False`` copy; DARTS networks lose all
BN).

The stage-level feature map comes from the network's :class:`robnas.spaces.base.FeatureNetwork`
protocol (``forward_features``, ``layer_feature_indices``). A network without it falls back to
a generic map: each Conv2d / Linear layer is compared on its own output (captured with forward
hooks), which is not what the reference does for any space.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from robnas.data import MEAN_STD
from robnas.errors import ProxyError
from robnas.proxies.base import LastResult, linearize, register
from robnas.spaces.base import FeatureNetwork

#: Input step of the reference, in normalised input units, applied with a minus sign.
FAITHFUL_INPUT_STEP = 0.01
#: Size of the layer-wise weight step, in units of the layer's own Frobenius norm.
WEIGHT_STEP = 2.0
#: Learning rate of the reference's ascent step; it cancels except against ``NORM_EPS``.
ASCENT_LR = 1e-3
#: The reference's guard against dividing by a zero step norm.
NORM_EPS = 1e-30
#: ``torch.nn.CosineSimilarity``'s default eps (zero vectors give cosine 0).
COS_EPS = 1e-8

PAPER = (
    "Ha et al., Generalizable Lightweight Proxy for Robust NAS against Diverse Perturbations, NeurIPS 2023"
)


# ---------------------------------------------------------------------------------------
# layer -> feature map


@dataclass
class FeatureMap:
    """The scored layers (Conv2d / Linear, ``modules()`` order) and the feature each uses.

    ``index[i]`` is the position in the feature list of layer ``layers[i]``. ``generic`` is
    True for the fallback map (one feature per layer: its own output).
    """

    layers: list[nn.Module]
    index: list[int]
    generic: bool


def feature_map(net: nn.Module) -> FeatureMap:
    """The layer -> feature map of ``net``: its ``layer_feature_indices()`` or the generic one."""
    if isinstance(net, FeatureNetwork):
        pairs = net.layer_feature_indices()
        return FeatureMap([m for m, _ in pairs], [i for _, i in pairs], False)
    layers = [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    return FeatureMap(layers, list(range(len(layers))), True)


@contextmanager
def _captured_outputs(layers: Sequence[nn.Module]) -> Iterator[list[Tensor | None]]:
    """Record a detached copy of each layer's (last) output while the block runs."""
    outputs: list[Tensor | None] = [None] * len(layers)

    def hook(position: int):
        def store(_module: nn.Module, _inputs: object, output: Tensor) -> None:
            outputs[position] = output.detach().clone()

        return store

    handles = [layer.register_forward_hook(hook(i)) for i, layer in enumerate(layers)]
    try:
        yield outputs
    finally:
        for handle in handles:
            handle.remove()


def forward_with_features(
    net: nn.Module, x: Tensor, fmap: FeatureMap, scaling: BlockScaling | None = None
) -> tuple[Tensor, list[Tensor | None]]:
    """Logits and the features ``fmap.index`` points into (stage features or layer outputs);
    with ``scaling``, each divided by the power of two of the block that made it."""
    if scaling is not None:
        scaling.reset()
    if not fmap.generic:
        logits, feats = net.forward_features(x)  # type: ignore[operator]
        return logits, list(feats)
    with _captured_outputs(fmap.layers) as outputs:
        logits = net(x)
    return logits, outputs


# ---------------------------------------------------------------------------------------
# float32 with exact rescaling


_FLOAT32_TINY = torch.finfo(torch.float32).tiny
#: A block whose input peaks within ``2**±RESCALE_BAND`` is entered unscaled (see :class:`BlockScaling`).
RESCALE_BAND = 12


class _Rescale(torch.autograd.Function):
    """``t * forward`` on the way in, ``grad * backward`` on the way back (powers of two, so
    exact; a factor below float32's normal range gives zeros: see :class:`BlockScaling`)."""

    @staticmethod
    def forward(ctx: Any, t: Tensor, forward: float, backward: float) -> Tensor:
        ctx.backward_factor = backward
        return t.view_as(t) if forward == 1.0 else _times(t, forward)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        return _times(grad, ctx.backward_factor), None, None


def _times(t: Tensor, factor: float) -> Tensor:
    return t * factor if factor >= _FLOAT32_TINY else torch.zeros_like(t)


class BlockScaling:
    """Float32 passes through a network whose |W|-linearised activations outgrow float32.

    Without BN, the linearised NAS-Bench-201 network's activations reach ~1e30 (clean) and
    ~1e48 (surrogate), beyond float32's 3.4e38, which is why the reference needs float64 (and
    float64 convolutions are 3-9x slower on the CPU). But every quantity CRoZe reads is
    invariant to a positive factor per pass: the input step takes a sign, the weight step a
    per-layer direction, and the cosines compare directions. So the network runs in float32
    with its activations divided by a power of two ``S`` (exact in binary floating point)
    where they enter each block of ``net.rescale_blocks()``. A block maps ``h / S`` to
    ``block(h) / S`` once its conv / linear biases are divided by ``S``; between blocks only
    positively homogeneous operations may run (ReLU, pooling, identity). A power-of-two factor
    changes no float32 mantissa, so the values do not depend on where the factors are taken
    (but for terms that fall below float32's range in one frame and not in another):
    a block whose input's peak lies within ``2**±RESCALE_BAND`` is entered as it is (the band
    keeps every activation, gradient and squared norm inside float32's range), which saves the
    multiplications.

    A block holding BN declares ``restart_branch() -> (first, last)`` (NB201's residual
    reduction blocks): a branch whose ``first`` module ends in a train-mode BN, added to a
    positively homogeneous rest. That BN restarts the activations at the scale of its affine
    parameters whatever its input's scale, so the branch runs at the true network's scale
    (the BN's eps divided by ``S**2``, nothing else changed: a conv bias before a train-mode BN
    cancels) and is multiplied by ``1/S`` where it leaves ``last``. There it is below the rest's
    float32 rounding once ``S`` leaves float32's normal range, and is taken as 0. Backward,
    that ``1/S`` is not applied inside the branch, where it would take the gradients below
    float32's range: the branch's layers see their gradients times ``S * k`` and the gradient
    leaves the branch times ``1 / (S * k)``. Each layer's weight step and cosines are blind to a
    positive factor of its own (:meth:`branch_factors` gives them, for the weight step's
    guard); where two passes' gradients add up (the faithful surrogate), :meth:`anchor` sets
    ``k`` so that both carry the factor of the first. A block holding BN without
    ``restart_branch()`` (or a BN outside the blocks) makes :meth:`attach` decline.

    ``scale`` is the running ``S`` of the current pass (1 at its start, :meth:`reset`); the
    logits come out divided by it and :class:`_TrueScaleCrossEntropy` takes the loss of the
    true logits. The gradients that flow back are then those of the true network divided by
    the final ``S``: the same factor for every layer of a pass (times the branch factors).
    """

    def __init__(self, blocks: Sequence[nn.Module]) -> None:
        self.scale = 1.0
        self.blocks = list(blocks)
        self._entry = [1.0] * len(self.blocks)  # S where each block was entered, this pass
        self._anchor: list[float] | None = None
        self._biases: list[list[tuple[Tensor, Tensor]]] = []
        self._bns: list[list[tuple[nn.Module, float]]] = []
        self._branch_params: list[list[Tensor]] = []
        self._handles = []
        for i, block in enumerate(self.blocks):
            branch = block.restart_branch() if hasattr(block, "restart_branch") else ()
            inside = {id(m) for part in branch for m in part.modules()}
            self._biases.append([
                (m.bias, m.bias.detach().double().clone())
                for m in block.modules()
                if isinstance(m, (nn.Conv2d, nn.Linear)) and m.bias is not None and id(m) not in inside
            ])
            self._bns.append([(m, m.eps) for m in branch[0].modules() if isinstance(m, _BatchNorm)] if branch else [])
            self._branch_params.append([p for part in branch for p in part.parameters()])
            self._handles.append(block.register_forward_pre_hook(self._enter(i)))
            if branch:
                first, last = branch
                self._handles.append(first.register_forward_pre_hook(self._branch_entry(i)))
                self._handles.append(last.register_forward_hook(self._branch_exit(i)))

    @classmethod
    def attach(cls, net: nn.Module) -> BlockScaling | None:
        """Scaling for ``net`` when it declares ``rescale_blocks()`` and every BatchNorm lies in
        a block's restart branch (where its output follows the true scale); None otherwise."""
        blocks_of = getattr(net, "rescale_blocks", None)
        if blocks_of is None:
            return None
        blocks = list(blocks_of())
        allowed = {
            id(m) for b in blocks if hasattr(b, "restart_branch") for part in b.restart_branch() for m in part.modules()
        }
        if any(isinstance(m, _BatchNorm) and id(m) not in allowed for m in net.modules()):
            return None
        return cls(blocks)

    def reset(self) -> None:
        self.scale = 1.0

    def anchor(self) -> None:
        """From now on, give each branch's gradients the factor of the pass that just ran."""
        self._anchor = list(self._entry)

    def branch_factors(self) -> dict[int, float]:
        """``id(parameter) -> factor`` of the branch parameters' gradients in the last pass,
        relative to the other layers' (those not listed have 1)."""
        return {id(p): self._factor(i) * self._entry[i] for i, ps in enumerate(self._branch_params) for p in ps}

    def _factor(self, index: int) -> float:  # k of the class docstring
        return 1.0 if self._anchor is None else self._anchor[index] / self._entry[index]

    def _enter(self, index: int):
        def enter(_module: nn.Module, args: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
            (h,) = args
            low, high = torch.aminmax(h.detach())
            peak = max(-float(low), float(high))
            if 0.0 < peak < math.inf:
                exponent = math.frexp(peak)[1]
                if abs(exponent) > RESCALE_BAND:
                    h = h * 2.0**-exponent
                    self.scale *= 2.0**exponent
            self._entry[index] = self.scale
            with torch.no_grad():
                for param, true in self._biases[index]:
                    param.copy_(true / self.scale)
            for bn, eps in self._bns[index]:
                bn.eps = max(eps / self.scale / self.scale, _FLOAT32_TINY)
            return (h,)

        return enter

    def _branch_entry(self, index: int):
        def enter(_module: nn.Module, args: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
            (h,) = args
            return (_Rescale.apply(h, 1.0, 1.0 / (self._entry[index] * self._factor(index))),)

        return enter

    def _branch_exit(self, index: int):
        def leave(_module: nn.Module, _args: object, out: Tensor) -> Tensor:
            return _Rescale.apply(out, 1.0 / self._entry[index], self._factor(index))

        return leave

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()


class _TrueScaleCrossEntropy(torch.autograd.Function):
    """Mean cross-entropy of the true logits ``logits * scale`` (float64), whose backward hands
    ``weight * dCE/d(true logits)`` to the scaled logits (the common factor ``1 / scale`` of
    :class:`BlockScaling`'s gradients, times ``weight``)."""

    @staticmethod
    def forward(ctx: Any, logits: Tensor, targets: Tensor, scale: float, weight: float) -> Tensor:
        true = logits.detach().double() * scale
        ctx.save_for_backward(true, targets)
        ctx.weight = weight
        return F.cross_entropy(true, targets)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        true, targets = ctx.saved_tensors
        g = torch.softmax(true, dim=1)
        g[torch.arange(len(targets)), targets] -= 1.0
        g = g * (grad / len(targets) * ctx.weight)
        return g.float(), None, None, None


def _ce(logits: Tensor, y: Tensor, scaling: BlockScaling | None, weight: float = 1.0) -> Tensor:
    """CE of the pass that just ran; with ``scaling``, that of its true logits (see above)."""
    if scaling is None:
        return F.cross_entropy(logits, y)
    return _TrueScaleCrossEntropy.apply(logits, y, scaling.scale, weight)


def _forward(net: nn.Module, x: Tensor, scaling: BlockScaling | None) -> Tensor:
    if scaling is not None:
        scaling.reset()
    return net(x)


# ---------------------------------------------------------------------------------------
# the two perturbations


def _weight_names(net: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """The parameters the reference perturbs: ``ndim > 1`` and ``'weight'`` in the name."""
    return [(n, p) for n, p in net.named_parameters() if p.ndim > 1 and "weight" in n]


@torch.no_grad()
def apply_weight_step(
    net: nn.Module,
    grads: dict[str, Tensor | None],
    size: float = WEIGHT_STEP,
    lr: float = ASCENT_LR,
    norm_eps: float | Mapping[str, float] = NORM_EPS,
) -> list[str]:
    """Move each conv / linear weight along its CE gradient by ``size`` times its own norm.

    ``W <- W + size * ||W||_F / (||d||_F + 1e-30) * d`` with ``d = lr * grads[name]`` (the
    reference's SGD difference on ``-CE``; ``1e-30`` is ``norm_eps``, to be divided by the
    factor the gradients were divided by, per name if it differs by layer); names without a
    gradient do not move. Biases and BN are untouched. Returns the names moved.
    """
    moved: list[str] = []
    for name, param in _weight_names(net):
        grad = grads.get(name)
        if grad is None:
            continue
        step = grad * lr
        step_norm = float(step.norm())  # in Python floats, where norm_eps cannot underflow
        guard = norm_eps if isinstance(norm_eps, float) else norm_eps[name]
        if step_norm > 0:
            param.add_(step * (size * float(param.norm()) / (step_norm + guard)))
        moved.append(name)
    return moved


def perturb_weights(
    net: nn.Module, x: Tensor, y: Tensor, size: float = WEIGHT_STEP, lr: float = ASCENT_LR
) -> list[str]:
    """The robust surrogate's weight step (paper Eq. 3), in place; returns the names moved.

    One cross-entropy ascent gradient on the clean batch at the current weights, then
    :func:`apply_weight_step`: a layer with a non-zero gradient moves by exactly ``size``
    times its own Frobenius norm, a layer without gradient does not move.
    """
    named = _weight_names(net)
    if not named:
        raise ProxyError("the network has no conv / linear weights to perturb")
    loss = F.cross_entropy(net(x), y)
    grads = torch.autograd.grad(loss, [p for _, p in named], allow_unused=True)
    return apply_weight_step(net, {n: g for (n, _), g in zip(named, grads, strict=True)}, size, lr)


def surrogate_input_gradient(net: nn.Module, x: Tensor, y: Tensor, scaling: BlockScaling | None = None) -> Tensor:
    """``grad_x CE(net(x))`` for normalised ``x``, from one forward / backward that also leaves the
    parameter gradients of the pass in ``net`` (``.grad`` zeroed first); with ``scaling``, every
    gradient divided by the pass's final ``scaling.scale``. The input step of both variants reads
    its sign: the same pass, so ``croze_fixed`` after ``croze`` reuses it (:class:`_CleanPass`)."""
    x0 = x.detach().clone().requires_grad_(True)
    net.zero_grad(set_to_none=True)
    _ce(_forward(net, x0, scaling), y, scaling).backward()
    assert x0.grad is not None
    return x0.grad


def faithful_input_step(
    net: nn.Module,
    x: Tensor,
    y: Tensor,
    step: float = FAITHFUL_INPUT_STEP,
    scaling: BlockScaling | None = None,
    grad: Tensor | None = None,
) -> Tensor:
    """The reference's ``fgsm_attack``: ``clamp(x - step * sign(grad_x CE(net(x))), 0, 1)``.

    ``x`` is normalised, so the [0, 1] clamp changes most entries far more than ``step``, and
    the minus sign makes it a loss-decreasing step. The backward leaves the parameter
    gradients of this pass in ``net`` (the reference never zeroes them; with ``scaling``,
    divided by the pass's final ``scaling.scale``). ``grad``: that input gradient when the
    caller has it (:func:`surrogate_input_gradient`; then nothing runs).
    """
    if grad is None:
        grad = surrogate_input_gradient(net, x, y, scaling)
    return torch.clamp(x.detach() - step * grad.sign(), 0.0, 1.0)


def fgsm_pixel_step(
    net: nn.Module,
    x: Tensor,
    y: Tensor,
    eps: float = 8 / 255,
    mean: Sequence[float] = MEAN_STD["cifar10"][0],
    std: Sequence[float] = MEAN_STD["cifar10"][1],
    scaling: BlockScaling | None = None,
    grad: Tensor | None = None,
) -> Tensor:
    """FGSM ascent in pixel space (Goodfellow et al. 2015) on normalised inputs.

    Un-normalises ``x`` with ``mean``/``std``, steps ``+eps * sign(grad)`` (``eps`` in [0, 1]
    pixel units), clamps to [0, 1] and normalises again. The pixel gradient is ``grad_x / std``
    with ``std > 0``, so its sign is that of ``grad_x CE(net(x))`` (:func:`surrogate_input_gradient`,
    or ``grad`` when the caller has it). Parameter gradients are left zeroed (None).
    """
    if grad is None:
        grad = surrogate_input_gradient(net, x, y, scaling)
    net.zero_grad(set_to_none=True)
    m = torch.as_tensor(mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    s = torch.as_tensor(std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    adv = torch.clamp(x.detach() * s + m + eps * grad.sign(), 0.0, 1.0)
    return (adv - m) / s


# ---------------------------------------------------------------------------------------
# one CRoZe pass


@dataclass
class CrozeState:
    """Everything the score is read from, per scored layer of ``fmap`` (``modules()`` order).

    ``weights`` / ``grads``: the clean network's ``|W|`` and ``grad CE(net(x))``;
    ``adv_weights`` / ``adv_grads``: the surrogate's ``W^r`` and its gradients (accumulated in
    faithful mode). A gradient is ``None`` where the layer never ran. ``net`` itself is left
    holding the surrogate's weights. ``rescaled``: the passes ran under :class:`BlockScaling`,
    so logits, features and gradients are the true ones divided by powers of two.
    """

    net: nn.Module
    fmap: FeatureMap
    weights: list[Tensor]
    grads: list[Tensor | None]
    adv_weights: list[Tensor]
    adv_grads: list[Tensor | None]
    x_adv: Tensor
    feats: list[Tensor | None]
    adv_feats: list[Tensor | None]
    logits: Tensor
    adv_logits: Tensor
    rescaled: bool = False


@dataclass
class _CleanPass:
    """What CRoZe's clean pass leaves for the passes after it: the clean logits, features,
    ``|W|`` and gradients, and the surrogate's stepped conv / linear weights."""

    logits: Tensor
    feats: list[Tensor | None]
    weights: list[Tensor]
    grads: list[Tensor | None]
    stepped: list[Tensor]
    #: ``grad_x CE(surrogate(x))``, once the input step of either variant has computed it
    input_grad: Tensor | None = None


#: The last clean pass: ``croze`` and ``croze_fixed`` share it on one network and batch.
_LAST_CLEAN_PASS: LastResult[_CleanPass] = LastResult()


def _clean_pass(
    net: nn.Module, x: Tensor, y: Tensor, fmap: FeatureMap, scaling: BlockScaling | None
) -> _CleanPass:
    """The clean forward / backward and the weight step, which leaves ``net`` as the surrogate.

    It is the same for ``croze`` and ``croze_fixed``; when the previous call saw the same
    network (structure and state), batch and arithmetic, its result is reused: the stepped
    weights are copied in and the pass is skipped (the values are the same either way)."""
    clean, key = _LAST_CLEAN_PASS.lookup(net, x, y, tag=f"croze clean pass, rescaled={scaling is not None}")
    named = _weight_names(net)
    if clean is not None:
        with torch.no_grad():
            for (_, param), stepped in zip(named, clean.stepped, strict=True):
                param.copy_(stepped)
        return clean
    # The surrogate starts equal to the clean network, so the clean backward gives both the
    # clean gradients and the ascent direction of the weight step (the reference computes the
    # same gradient a second time on a throw-away copy).
    logits, feats = forward_with_features(net, x, fmap, scaling)
    _ce(logits, y, scaling).backward()
    weights = [layer.weight.detach().clone() for layer in fmap.layers]
    grads = [layer.weight.grad for layer in fmap.layers]
    # the reference's 1e-30 guard, in the units of these gradients
    norm_eps: float | dict[str, float] = NORM_EPS
    if scaling is not None:
        factors = scaling.branch_factors()
        norm_eps = {n: NORM_EPS / scaling.scale * factors.get(id(p), 1.0) for n, p in net.named_parameters()}
    apply_weight_step(net, {n: p.grad for n, p in net.named_parameters()}, norm_eps=norm_eps)
    net.zero_grad(set_to_none=True)
    clean = _CleanPass(
        logits.detach(),
        [None if f is None else f.detach() for f in feats],
        weights,
        grads,
        [param.detach().clone() for _, param in named],
    )
    return _LAST_CLEAN_PASS.put(key, clean)


def croze_pass(
    net: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    faithful: bool = True,
    linearize_weights: bool = True,
    eps: float = 8 / 255,
    mean: Sequence[float] = MEAN_STD["cifar10"][0],
    std: Sequence[float] = MEAN_STD["cifar10"][1],
    rescale_float32: bool = False,
) -> CrozeState:
    """Run CRoZe's perturbations and backwards on ``net``, which ends as the surrogate.

    ``faithful=True``: the reference's input step on the weight-perturbed network with
    gradient accumulation. ``faithful=False``: pixel-space FGSM ascent (``eps``, ``mean``,
    ``std``) and only ``grad CE(advnet(x'))`` left in the surrogate.

    ``rescale_float32=True``, for a network with ``rescale_blocks()`` (NAS-Bench-201): cast
    ``net`` and ``x`` to float32 and run every pass under :class:`BlockScaling`. Logits,
    features and gradients are then those of the true network divided by a power of two per
    pass (features: per block), which the score's signs, directions and cosines do not see;
    the surrogate's two accumulated gradients are brought to a common factor. Otherwise (or
    for other networks) everything runs in ``net``'s own dtype.

    The reference keeps the clean network and the surrogate as two deep copies. The surrogate
    differs only in its conv / linear weights, so one network is enough: the clean weights and
    gradients are kept aside, then the weight step is applied in place.
    """
    if linearize_weights:
        linearize(net)
    net.zero_grad(set_to_none=True)
    fmap = feature_map(net)
    if not fmap.layers or not _weight_names(net):
        raise ProxyError("the network has no Conv2d / Linear layer to score")
    scaling = BlockScaling.attach(net) if rescale_float32 else None
    if scaling is not None:
        net.float()
        x = x.float()
        scored = {id(p) for _, p in _weight_names(net)}
        for p in net.parameters():  # only the conv / linear weights' gradients are read
            p.requires_grad_(id(p) in scored)
    try:
        clean = _clean_pass(net, x, y, fmap, scaling)
        logits, feats, weights, grads = clean.logits, clean.feats, clean.weights, clean.grads

        # both input steps take the sign of one gradient; the faithful step also leaves that
        # pass's parameter gradients in net (the FGSM step none), so it always runs the pass
        if faithful or clean.input_grad is None:
            clean.input_grad = surrogate_input_gradient(net, x, y, scaling)
        if faithful:
            x_adv = faithful_input_step(net, x, y, grad=clean.input_grad)
        else:
            x_adv = fgsm_pixel_step(net, x, y, eps, mean, std, grad=clean.input_grad)
        first_scale = scaling.scale if scaling is not None else 1.0
        if scaling is not None and faithful:  # the two surrogate gradients add up: one factor per layer
            scaling.anchor()
        adv_logits, adv_feats = forward_with_features(net, x_adv.detach(), fmap, scaling)
        # faithful: both surrogate gradients at the first pass's factor before they add up
        weight = scaling.scale / first_scale if scaling is not None and faithful else 1.0
        _ce(adv_logits, y, scaling, weight).backward()
    finally:
        if scaling is not None:
            scaling.remove()
    adv_weights = [layer.weight.detach() for layer in fmap.layers]
    adv_grads = [layer.weight.grad for layer in fmap.layers]
    return CrozeState(
        net,
        fmap,
        weights,
        grads,
        adv_weights,
        adv_grads,
        x_adv,
        feats,
        adv_feats,
        logits,
        adv_logits,
        scaling is not None,
    )


# ---------------------------------------------------------------------------------------
# the three consistencies


def _rescaled(stacked: Tensor) -> Tensor:
    """Each ``stacked[i]`` divided by its largest |entry| (cosines are unchanged; squared norms
    stay finite); an all-zero member is left as it is."""
    low, high = torch.aminmax(stacked.detach().reshape(len(stacked), -1), dim=1)  # one pass, no |copy|
    peak = torch.maximum(-low, high).view(-1, *[1] * (stacked.dim() - 1))
    return stacked / torch.where(peak > 0, peak, torch.ones_like(peak))


def cosine(a: Tensor, b: Tensor, dim: int, eps: float = COS_EPS) -> Tensor:
    """``torch.nn.functional.cosine_similarity(a, b, dim, eps)``, the same formula, faster.

    torch divides each input by ``max(||.||_2, eps)`` along ``dim`` and sums the product; it
    takes the norms with ``linalg.vector_norm``, which is ~30x slower than a plain sum of
    squares when ``dim`` is not the innermost axis (the batch axis of feature maps, float64
    on CPU). Equal to torch's result to rounding, including its behaviour on zero vectors
    (cosine 0) and on overflowing squared norms (cosine 0).
    """
    a_norm = (a * a).sum(dim, keepdim=True).sqrt().clamp_min(eps)
    b_norm = (b * b).sum(dim, keepdim=True).sqrt().clamp_min(eps)
    return ((a / a_norm) * (b / b_norm)).sum(dim)


def axis0_cosines(pairs: Sequence[tuple[Tensor, Tensor]], rescale: bool = False) -> list[Tensor]:
    """``cos_0(a, b)`` (torch ``CosineSimilarity(dim=0, eps=1e-8)``) for each pair.

    One cosine per index of the trailing axes, taken along axis 0. Pairs of equal shape are
    stacked and computed in one call. ``rescale=True`` first divides every tensor by its own
    largest |entry| so that huge (linearised) values cannot overflow the squared norms, where
    torch silently returns 0.
    """
    out: list[Tensor | None] = [None] * len(pairs)
    groups: dict[tuple[int, ...], list[int]] = defaultdict(list)
    for i, (a, _) in enumerate(pairs):
        groups[tuple(a.shape)].append(i)
    for members in groups.values():
        a = torch.stack([pairs[i][0] for i in members])
        b = torch.stack([pairs[i][1] for i in members])
        if rescale:
            a, b = _rescaled(a), _rescaled(b)
        cos = cosine(a, b, dim=1)
        for k, i in enumerate(members):
            out[i] = cos[k]
    return out  # type: ignore[return-value]


@dataclass
class LayerConsistency:
    """Per-layer sums (or means) of the three consistencies; ``used`` is False without grad."""

    weight: float
    grad: float
    feature: float
    used: bool

    @property
    def term(self) -> float:
        return abs(self.weight * self.grad * self.feature) if self.used else 0.0


def layer_consistencies(
    state: CrozeState,
    *,
    mean: bool = False,
    rescale: bool = False,
    updated_params: bool = False,
    eta: float = 1e-3,
) -> list[LayerConsistency]:
    """The weight, gradient and feature consistencies of every scored layer.

    Weight: ``1 + cos_0(W^r, W)``; gradient: ``|cos_0(g^r, g)|``; feature:
    ``1 + cos_0(Z'_m, Z_m)`` (the cosine over the batch axis for feature maps). Summed over
    positions (``mean=False``, the reference) or averaged (``mean=True``). A layer whose
    weight has no gradient (it never ran) is unused and contributes 0. ``updated_params``
    compares ``W - eta*g`` with ``W^r - eta*g^r`` instead of ``W`` with ``W^r`` (paper Eqs. 6-8).
    ``rescale``: see :func:`axis0_cosines`.
    """
    count = len(state.fmap.layers)
    used = [i for i in range(count) if state.grads[i] is not None and state.adv_grads[i] is not None]
    weight_pairs, grad_pairs = [], []
    with torch.no_grad():
        for i in used:
            w, wr, g, gr = state.weights[i], state.adv_weights[i], state.grads[i], state.adv_grads[i]
            if updated_params:
                w, wr = w - eta * g, wr - eta * gr
            weight_pairs.append((wr, w))
            grad_pairs.append((gr, g))
        weight_cos = axis0_cosines(weight_pairs, rescale)
        grad_cos = axis0_cosines(grad_pairs, rescale)

        feature_value: dict[int, float] = {}
        out = [LayerConsistency(0.0, 0.0, 0.0, False) for _ in range(count)]
        for k, i in enumerate(used):
            m = state.fmap.index[i]
            if m not in feature_value:
                z, zr = state.feats[m], state.adv_feats[m]
                if z is None or zr is None:
                    raise ProxyError(f"layer {i} has a gradient but feature {m} was never computed")
                (cos,) = axis0_cosines([(zr, z)], rescale)
                feature_value[m] = _reduce(1 + cos, mean)
            out[i] = LayerConsistency(
                _reduce(1 + weight_cos[k], mean), _reduce(grad_cos[k].abs(), mean), feature_value[m], True
            )
    return out


def _reduce(t: Tensor, mean: bool) -> float:
    t = t.double()
    return float(t.mean() if mean else t.sum())


# ---------------------------------------------------------------------------------------
# the registered proxies


@register("croze", bn="remove", dtype=torch.float64, paper=PAPER)
def croze(net: nn.Module, inputs: Tensor, targets: Tensor, rescale_float32: bool = True) -> float:
    """CRoZe exactly as the authors' code computes it (float64, BN removed).

    Quirks reproduced (``docs/reference/croze.md`` sections 1.3-1.6):

    1. synflow's linearisation: every floating state tensor of BOTH networks (weights,
       biases, BN affine parameters and running statistics) is replaced by its absolute value.
    2. float64 throughout; activations reach ~1e30-1e48, beyond the float32 range.
    3. BN policy ``remove``: NB201 residual reduction blocks keep their BN in train mode (batch
       statistics), every other BN is identity.
    4. Weight step: one CE-ascent gradient on the linearised copy, clean batch; each conv /
       linear weight (ndim > 1) moves by exactly 2x its Frobenius norm along it; biases and BN
       are untouched (:func:`perturb_weights`).
    5. Input step computed on the weight-perturbed copy: ``clamp(x - 0.01*sign(grad), 0, 1)`` on
       NORMALISED inputs -- a loss-decreasing step whose [0, 1] clamp dominates
       (:func:`faithful_input_step`).
    6. Gradient accumulation: that step's backward is not zeroed, so the surrogate's gradients
       are ``grad CE(advnet(x)) + grad CE(advnet(x'))``; the clean net's are ``grad CE(net(x))``.
       (The reference gets both from one backward of ``CE(net(x)) + CE(advnet(x'))``; the two
       graphs are disjoint, so two backwards give the same gradients.)
    7. The compared parameters are the pre-step ``|W|`` and ``W^r`` (no one-step update).
    8. Cosines along axis 0 (over output channels for weights, over the BATCH for features),
       summed over positions, not averaged: ``1+cos`` for weights and features, ``|cos|`` for
       gradients; per-layer term ``|S_w * S_g * S_z|``; plain sum over Conv2d / Linear layers.
    9. Stage-level features: NB201 layers use ``cells_met // 5`` (+1 for the classifier), so
       the 5th cell of a stage is paired with the next stage's feature. The last ReLU of the
       NB201 head runs in place, so Z3 is rectified, as in the reference.
    10. Unused operations contribute 0. The reference instantiates all five candidate
        operations per NB201 edge and skips those without gradient; our networks build only
        the chosen ones, which gives the same sum. A chosen conv whose output is multiplied
        by zero (``none`` downstream) has a zero gradient, hence ``|cos| = 0`` and term 0.
    11. No NaN guard: a non-finite score is recorded as NaN by :func:`robnas.proxies.run`.

    Arithmetic: ``rescale_float32=True`` (default) runs networks that declare
    ``rescale_blocks()`` (NAS-Bench-201) in float32 with exact power-of-two rescaling between
    blocks (:class:`BlockScaling`; the residual reduction blocks too, through their restart
    branch), the same quantities up to float32 rounding (Spearman 1.000 and at most 1e-4
    relative difference to float64 over 200 architectures), about 2x faster on the CPU
    (``benchmarks/results/croze_speed.md``);
    other networks, and ``rescale_float32=False``, use float64 as the reference.

    Cheaper than the reference, same numbers: the weight step's gradient is the clean
    network's own gradient (the surrogate is still an exact copy of it at that point), which
    saves the reference's third network copy and one forward/backward; the surrogate is
    the same network with its weights stepped in place (the clean weights and gradients are
    kept aside), which saves the second copy; and ``croze`` and ``croze_fixed`` run on the same
    network and batch share that clean pass (:func:`_clean_pass`) and the input step's gradient
    on the surrogate (both steps take its sign, :func:`surrogate_input_gradient`). Networks without the
    ``FeatureNetwork`` protocol use the generic per-layer-output map (see module docstring).
    """
    state = croze_pass(net, inputs, targets, faithful=True, rescale_float32=rescale_float32)
    # rescaled gradients may be far below the cosine's absolute eps: compare them at unit scale
    return math.fsum(c.term for c in layer_consistencies(state, rescale=state.rescaled))


def _check_finite(what: str, t: Tensor) -> None:
    if not bool(torch.isfinite(t).all()):
        raise ProxyError(
            f"croze_fixed: {what} is not finite in {t.dtype} (the |W|-linearised network without "
            "BatchNorm overflowed, or the inputs hold NaN/inf); try linearize_weights=False"
        )


@register("croze_fixed", bn="remove", dtype=torch.float64, paper=PAPER)
def croze_fixed(
    net: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    eps: float = 8 / 255,
    mean: Sequence[float] = MEAN_STD["cifar10"][0],
    std: Sequence[float] = MEAN_STD["cifar10"][1],
    updated_params: bool = False,
    eta: float = 1e-3,
    linearize_weights: bool = True,
    rescale_float32: bool = True,
) -> float:
    """CRoZe as the paper describes it; inputs CIFAR-normalised with ``mean`` / ``std``.

    Differences from :func:`croze`:

    1. The input perturbation is a real FGSM ascent, ``x + eps*sign(grad)`` in [0, 1] pixel
       space (``eps`` default 8/255), clamped to [0, 1] and normalised again with
       ``mean`` / ``std`` (default CIFAR-10 statistics); still computed on the surrogate.
    2. The surrogate's gradients are zeroed after that step, so ``g^r = grad CE(advnet(x'))``.
    3. Per-element means replace the sums, so a layer's size does not dominate its term
       (each term lies in [0, 4]); layers are still summed (paper Eq. 10).
    4. ``updated_params=True`` compares the one-step updated parameters
       ``W - eta*g`` and ``W^r - eta*g^r`` (paper Eqs. 6-8). With linearised weights the
       gradients are huge, so this term then mostly measures gradient direction.
    5. Cosines are taken on tensors rescaled by their largest |entry| (exact for a cosine), so
       squared norms cannot overflow float64, where torch silently returns 0.
    6. A non-finite forward pass, gradient or score raises :class:`ProxyError`.

    ``rescale_float32``: as in :func:`croze`; not with ``updated_params``, which compares
    gradients at their true magnitude (float64 then).

    Kept on purpose: the |W| linearisation (``linearize_weights=True``, as the authors' code,
    so rankings stay comparable; ``False`` scores the network's own signed weights), float64,
    the BN policy, the 2x-norm weight step, cosines along axis 0, and the stage feature map.
    """
    state = croze_pass(
        net,
        inputs,
        targets,
        faithful=False,
        linearize_weights=linearize_weights,
        eps=eps,
        mean=mean,
        std=std,
        rescale_float32=rescale_float32 and not updated_params,
    )
    _check_finite("the clean forward pass", state.logits)
    _check_finite("the perturbed forward pass", state.adv_logits)
    for grad in (*state.grads, *state.adv_grads):
        if grad is not None:
            _check_finite("a weight gradient", grad)
    value = math.fsum(
        c.term
        for c in layer_consistencies(state, mean=True, rescale=True, updated_params=updated_params, eta=eta)
    )
    if not math.isfinite(value):
        raise ProxyError(f"croze_fixed: the score is not finite ({value})")
    return value


__all__ = [
    "BlockScaling",
    "CrozeState",
    "FeatureMap",
    "LayerConsistency",
    "axis0_cosines",
    "croze",
    "croze_fixed",
    "croze_pass",
    "faithful_input_step",
    "feature_map",
    "fgsm_pixel_step",
    "layer_consistencies",
    "perturb_weights",
    "surrogate_input_gradient",
]
