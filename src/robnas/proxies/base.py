"""The proxy registry and the policy every proxy runs under.

A proxy is a function ``(model, inputs, targets, **options) -> float`` registered with what
it needs: data or not, a dtype, a BatchNorm policy, a private copy or not. :func:`run` prepares
the network (a private copy for proxies that change weights or structure; the caller's own
network, put back as it was found, for the read-only ones), applies the policy, calls the
proxy, and turns any failure or non-finite value into NaN plus a recorded reason.
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

import torch
from torch import Tensor, nn

from robnas.errors import ProxyError
from robnas.registry import Registry

ProxyFn = Callable[..., float]
BNPolicy = Literal["keep", "remove", "second-order"]


@dataclass(frozen=True)
class ProxySpec:
    """How a proxy must be run.

    ``bn="keep"``: BatchNorm in train mode (batch statistics), as the reference's BN copies.
    ``bn="remove"``: every BatchNorm becomes identity except inside modules that set
    ``robnas_keep_bn = True`` (the NAS-Bench-201 reduction blocks, as in the reference's
    rebuilt ``bn=False`` networks). ``bn="second-order"``: as ``"keep"``, with every BatchNorm's
    backward written in tensor operations (:class:`SecondOrderBatchNorm`), for proxies that
    differentiate twice. ``dtype``: the copy and inputs are cast to it. ``copy=False``: the
    proxy only reads the network (forward and ``autograd.grad`` passes, hooks it removes), so it
    runs on the caller's network, whose modes, ``requires_grad`` flags and buffers (BatchNorm
    running statistics) :func:`run` puts back afterwards; it needs ``bn="keep"`` and no dtype.
    """

    name: str
    fn: ProxyFn
    needs_data: bool = True
    bn: BNPolicy = "keep"
    dtype: torch.dtype | None = None
    copy: bool = True
    paper: str = ""


PROXIES: Registry[ProxySpec] = Registry("proxy")


def register(
    name: str,
    *,
    needs_data: bool = True,
    bn: BNPolicy = "keep",
    dtype: torch.dtype | None = None,
    copy: bool = True,
    paper: str = "",
) -> Callable[[ProxyFn], ProxyFn]:
    """Decorator registering a proxy function under ``name``."""

    if not copy and (bn != "keep" or dtype is not None):
        raise ValueError(f"proxy {name}: copy=False needs bn='keep' and no dtype (they change the network)")

    def wrap(fn: ProxyFn) -> ProxyFn:
        PROXIES.register(name, ProxySpec(name, fn, needs_data, bn, dtype, copy, paper))
        return fn

    return wrap


@dataclass
class ProxyResult:
    """A proxy value, the seconds it took, and the reason when it is NaN."""

    value: float
    seconds: float
    error: str = ""


def remove_batchnorm(model: nn.Module) -> nn.Module:
    """Replace BatchNorm layers by identity, except inside modules marked ``robnas_keep_bn``."""

    def visit(module: nn.Module, keep: bool) -> None:
        keep = keep or bool(getattr(module, "robnas_keep_bn", False))
        for child_name, child in module.named_children():
            if isinstance(child, nn.modules.batchnorm._BatchNorm) and not keep:
                setattr(module, child_name, nn.Identity())
            else:
                visit(child, keep)

    visit(model, False)
    return model


def _channel_mean(t: Tensor) -> Tensor:
    """Mean over every axis but 1, kept as (1, C, 1, ...).

    Sums (spatial axes first, then the batch) divided afterwards: the derivative of a sum is
    a broadcast view, where that of ``mean`` would divide a full-size tensor.
    """
    spatial = tuple(range(2, t.dim()))
    return (t.sum(spatial, keepdim=True) if spatial else t).sum(0, keepdim=True) / (t.numel() // t.shape[1])


class _BatchNormTwiceDifferentiable(torch.autograd.Function):
    """Train-mode batch norm: torch's fused forward, a backward written in tensor operations.

    Autograd records the backward, so it can be differentiated again. It is written so that
    only ``x`` and the incoming gradient ``g`` stay saved for that: with per-channel means
    ``E[.]``, ``var = E[x^2] - E[x]^2``, ``rstd = 1/sqrt(var + eps)``, ``scale = weight * rstd``
    and ``cov = E[g x] - E[g] E[x]``, ``dL/dx = scale * (g - E[g]) - scale * rstd^2 * cov *
    (x - E[x])``, ``dL/dweight = N * rstd * cov`` and ``dL/dbias = N * E[g]``. ``torch.var_mean``
    over these axes would be ten times slower on the CPU than the two means; ``E[x^2] - E[x]^2``
    is exact enough while ``|E[x]|`` is not orders of magnitude above the standard deviation,
    as for BatchNorm inputs at initialisation (the tests compare with torch in float64).
    """

    @staticmethod
    def forward(ctx: Any, x: Tensor, weight: Tensor | None, bias: Tensor | None, eps: float) -> Tensor:
        ctx.eps = eps
        ctx.save_for_backward(x, weight)
        return torch.nn.functional.batch_norm(x, None, None, weight, bias, training=True, eps=eps)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        x, weight = ctx.saved_tensors
        count = x.numel() // x.shape[1]
        mean = _channel_mean(x)
        rstd = torch.rsqrt((_channel_mean(x * x) - mean * mean).clamp_min(0) + ctx.eps)
        grad_mean = _channel_mean(grad)
        cov = _channel_mean(grad * x) - grad_mean * mean
        scale = rstd if weight is None else rstd * weight.view([1, -1] + [1] * (x.dim() - 2))
        slope = -scale * rstd * rstd * cov
        grad_x = grad * scale + x * slope - (scale * grad_mean + slope * mean)
        grad_weight = (rstd * cov).flatten() * count if ctx.needs_input_grad[1] else None
        grad_bias = grad_mean.flatten() * count if ctx.needs_input_grad[2] else None
        return grad_x, grad_weight, grad_bias, None


class SecondOrderBatchNorm(nn.Module):
    """Train-mode BatchNorm (batch mean, biased batch variance) made cheap to differentiate twice.

    Same function as ``nn.BatchNorm*d`` in train mode, for inputs (B, C, ...) (running
    statistics are neither used nor updated); its backward is plain tensor operations that
    keep only the input and the gradient. Torch's own double backward of the fused kernel is
    a long composite formula: on the CPU GraSP runs about 1.5x faster with this module, with
    about as much memory and the same values up to float32 rounding
    (``benchmarks/proxy_choices.py``).
    """

    def __init__(self, bn: nn.modules.batchnorm._BatchNorm) -> None:
        super().__init__()
        self.eps = bn.eps
        self.weight = bn.weight
        self.bias = bn.bias

    def forward(self, x: Tensor) -> Tensor:
        return _BatchNormTwiceDifferentiable.apply(x, self.weight, self.bias, self.eps)


def second_order_batchnorm(model: nn.Module) -> nn.Module:
    """Replace every BatchNorm layer by its :class:`SecondOrderBatchNorm` equivalent, in place."""
    for module in list(model.modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, nn.modules.batchnorm._BatchNorm):
                setattr(module, child_name, SecondOrderBatchNorm(child))
    return model


_ATOMIC = frozenset({int, float, bool, str, type(None), torch.dtype, torch.device})
_EMPTY_CONTAINERS = frozenset({dict, OrderedDict, set, list})


def clone_module(model: nn.Module, dtype: torch.dtype | None = None) -> nn.Module:
    """A deep copy of ``model`` (floating tensors cast to ``dtype`` on the way), made faster.

    Same result as ``copy.deepcopy(model)`` (then ``.to(dtype)``): modules are rebuilt from
    their ``__dict__`` directly, which skips most of ``deepcopy``'s per-object machinery
    (5 ms instead of 20 ms for a NAS-Bench-201 network of ~250 modules); every other attribute
    goes through ``copy.deepcopy`` with the shared memo, so shared and tied objects stay shared.
    """
    memo: dict[int, Any] = {}

    def tensor(t: Tensor) -> Tensor:
        if id(t) not in memo:
            cast = dtype if dtype is not None and t.is_floating_point() else t.dtype
            data = t.detach().to(dtype=cast, copy=True)
            memo[id(t)] = nn.Parameter(data, t.requires_grad) if isinstance(t, nn.Parameter) else data
        return memo[id(t)]

    def module(m: nn.Module) -> nn.Module:
        if id(m) in memo:
            return memo[id(m)]
        new = object.__new__(type(m))
        memo[id(m)] = new
        state = m.__dict__.copy()  # atomic values and tuples of them are shared as they are
        for key, value in m.__dict__.items():
            kind = type(value)
            if kind in _ATOMIC:
                continue
            if key == "_modules":
                state[key] = {k: None if c is None else module(c) for k, c in value.items()}
            elif key in ("_parameters", "_buffers"):
                state[key] = {k: None if t is None else tensor(t) for k, t in value.items()}
            elif kind in _EMPTY_CONTAINERS and not value:  # the many empty hook dicts
                state[key] = kind()
            elif not (kind is tuple and all(type(v) in _ATOMIC for v in value)):
                state[key] = copy.deepcopy(value, memo)
        new.__dict__.update(state)
        return new

    return module(model)


def prepare(model: nn.Module, spec: ProxySpec) -> nn.Module:
    """The network a proxy sees, in train mode: a copy with the BN policy and dtype applied, or
    (``copy=False``) ``model`` itself."""
    if not spec.copy:
        return model.train()
    net = clone_module(model, spec.dtype)
    if spec.bn == "remove":
        remove_batchnorm(net)
    elif spec.bn == "second-order":
        second_order_batchnorm(net)
    net.train()
    net.zero_grad(set_to_none=True)
    return net


@contextlib.contextmanager
def left_as_found(model: nn.Module) -> Iterator[None]:
    """Put back what a read-only proxy's passes change in place: every module's train / eval
    mode, every parameter's ``requires_grad`` and every buffer's values (a train-mode forward
    updates BatchNorm's running statistics)."""
    modes = [(m, m.training) for m in model.modules()]
    flags = [(p, p.requires_grad) for p in model.parameters()]
    buffers = [(b, b.clone()) for b in model.buffers()]
    try:
        yield
    finally:
        for m, training in modes:
            m.training = training
        for p, flag in flags:
            p.requires_grad_(flag)
        with torch.no_grad():
            for b, saved in buffers:
                b.copy_(saved)


def prepare_inputs(inputs: Tensor, spec: ProxySpec) -> Tensor:
    """The batch a proxy sees: cast to its dtype; on the CPU, images (B, C, H, W) are laid out
    channels_last, oneDNN's native layout, in which the gradient proxies run about twice as
    fast (``benchmarks/proxy_choices.py``). The images are the same; a proxy's value moves only
    by float32 rounding, as convolutions sum in another order."""
    x = inputs.to(spec.dtype) if spec.dtype is not None else inputs
    if x.device.type == "cpu" and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    return x


def run(name: str, model: nn.Module, inputs: Tensor, targets: Tensor, **options: Any) -> ProxyResult:
    """Compute proxy ``name``; failures give ``ProxyResult(nan, seconds, reason)``, never a crash."""
    spec = PROXIES.get(name)
    start = time.perf_counter()
    try:
        with contextlib.nullcontext() if spec.copy else left_as_found(model):
            net = prepare(model, spec)
            value = float(spec.fn(net, prepare_inputs(inputs, spec), targets, **options))
        if not math.isfinite(value):
            raise ProxyError(f"{name} gave a non-finite value ({value})")
        return ProxyResult(value, time.perf_counter() - start)
    except Exception as exc:  # a proxy failing on one architecture must not stop a run
        reason = f"{type(exc).__name__}: {exc}"
        return ProxyResult(math.nan, time.perf_counter() - start, reason)


def compute(name: str, model: nn.Module, inputs: Tensor, targets: Tensor, **options: Any) -> float:
    """Proxy ``name`` of an untrained ``model`` on a batch; NaN (with a warning) on failure.

    ``inputs`` is exactly what the model consumes (CIFAR-normalised images for the
    reference-style NB201 networks), ``targets`` the integer labels.
    """
    result = run(name, model, inputs, targets, **options)
    if result.error:
        warnings.warn(f"proxy {name}: {result.error}", RuntimeWarning, stacklevel=2)
    return result.value


def names(pattern: str = "*") -> list[str]:
    """Registered proxy names matching a wildcard."""
    return PROXIES.names(pattern)


# ---------------------------------------------------------------------------------------
# helpers shared by the proxy families

T = TypeVar("T")


_SAME_SIZE_INT = {2: torch.int16, 4: torch.int32, 8: torch.int64}


def _same_bits(a: Tensor, b: Tensor) -> bool:
    """``a`` and ``b`` hold the same dtype, shape and bits (NaN equals itself, -0.0 is not 0.0)."""
    if a.dtype != b.dtype or a.shape != b.shape or a.device != b.device:
        return False
    if a.is_floating_point() and a.element_size() in _SAME_SIZE_INT:
        a, b = a.contiguous(), b.contiguous()
        a, b = a.view(_SAME_SIZE_INT[a.element_size()]), b.view(_SAME_SIZE_INT[b.element_size()])
    return bool(torch.equal(a, b))


@dataclass(frozen=True)
class PassKey:
    """What a pass over a network depended on: its structure (``repr`` and state names) and a
    copy of its parameters, buffers and input tensors, taken before the pass."""

    signature: str
    snapshot: tuple[Tensor, ...]


class LastResult(Generic[T]):
    """The most recent result of a deterministic pass over a network and tensors (one entry),
    so proxies that share the pass on one network and batch run it once; reused only when the
    network's structure and every parameter, buffer and tensor are the same, bit for bit."""

    def __init__(self) -> None:
        self.key: PassKey | None = None
        self.value: T | None = None

    def lookup(self, net: nn.Module, *tensors: Tensor, tag: str = "") -> tuple[T | None, PassKey]:
        """``(kept result or None, key)``; on a miss, compute, then :meth:`put` the result under
        the key (its copy of the state is taken here, before the pass changes ``net``)."""
        named = [*net.named_parameters(), *net.named_buffers()]
        signature = f"{tag}{net!r}{[name for name, _ in named]}"
        state = [t.detach() for _, t in named] + [t.detach() for t in tensors]
        key = self.key
        if (
            key is not None
            and key.signature == signature
            and len(key.snapshot) == len(state)
            and all(_same_bits(a, b) for a, b in zip(state, key.snapshot, strict=True))
        ):
            return self.value, key
        return None, PassKey(signature, tuple(t.clone() for t in state))

    def put(self, key: PassKey, value: T) -> T:
        """Keep ``value`` under ``key`` (dropping the previous entry) and return it."""
        self.key, self.value = key, value
        return value

    def clear(self) -> None:
        """Forget the kept entry."""
        self.key = self.value = None


def weight_layers(net: nn.Module) -> list[nn.Module]:
    """Every Conv2d and Linear layer in ``modules()`` order (the layers proxies score)."""
    return [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


@torch.no_grad()
def linearize(net: nn.Module) -> dict[str, Tensor]:
    """synflow's linearisation: every state tensor -> |tensor|; returns the signs."""
    signs: dict[str, Tensor] = {}
    for key, value in net.state_dict().items():
        if value.is_floating_point():
            signs[key] = torch.sign(value)
            value.abs_()
    return signs
