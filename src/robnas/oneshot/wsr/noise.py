"""Wsr-NAS's Adversarial Noise Estimator (AN-E): adversarial noises at new strengths from a few
real ones (Cheng et al., "Neural Architecture Search for Wide Spectrum Adversarial Robustness",
AAAI 2023; spec: ``robnets_wsrnas.md`` B3).

An AN-E takes a clean image ``x`` (B, 3, H, W) in [0, 1], ``K`` real source noises of it
(B, K, 3, H, W), e.g. PGD at eps 0.03 / 0.06 / 0.09, and target strengths (T,), and returns
one estimated noise per target, (B, T, 3, H, W), for the cost of a small network's forward.
Strengths are **L2 norms** over C x H x W (the reference's unit); :func:`linf_to_l2` and
:func:`l2_to_linf` convert to and from the l_inf eps of a fully saturated noise
(L2 = eps * sqrt(C H W), 55.43 * eps at 3 x 32 x 32).

Two modes:

``faithful``: the reference's behaviour, quirks included: (1) the bracketing sources'
interpolation weights are inverted (the *farther* source weighs more); (2) outside the
sources' range the base noise and the interpolated hidden state are zero (the "none" slot);
(3) sources are taken in the order given (the reference's training data puts a random-eps
noise last, unsorted, though the bracketing assumes sorted sources); (4) the output has
exactly the target L2 norm and is neither clipped to [0, 1] nor projected to an l_inf ball;
(5, ``plus`` only) the backward term uses the forward weight ``w1``.

``fixed``: sources sorted by strength, the nearer source weighs more, the nearest source
alone outside the range, the plus version's backward term weighted by ``w2``, and the output
projected onto the l_inf ball of :func:`l2_to_linf` (target) and onto [0, 1] around ``x``.

>>> est = noise_estimator("basic", "faithful")
>>> x = torch.rand(2, 3, 32, 32); sources = 0.03 * torch.randn(2, 3, 3, 32, 32)
>>> est(x, sources, torch.tensor([2.3, 3.9, 5.5])).shape
torch.Size([2, 3, 3, 32, 32])
"""

from __future__ import annotations

import itertools
import math
import random
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from robnas.errors import ConfigError

Mode = Literal["faithful", "fixed"]
Variant = Literal["basic", "plus"]

#: PGD-7 strengths (l_inf) of the real source noises in the reference search
SOURCE_EPS = (0.03, 0.06, 0.09)
#: the AN-E targets (L2 norms) of the reference search, and the l_inf strengths the code names them by
TARGET_NORMS = (2.3, 3.9, 5.5)
TARGET_NAMES = (0.045, 0.075, 0.105)


def linf_to_l2(eps: float | Tensor, shape: Sequence[int] = (3, 32, 32)) -> float | Tensor:
    """The L2 norm of a fully saturated l_inf noise of size ``eps`` on images of ``shape`` (C, H, W)."""
    return eps * math.sqrt(math.prod(shape))


def l2_to_linf(norm: float | Tensor, shape: Sequence[int] = (3, 32, 32)) -> float | Tensor:
    """The l_inf eps whose saturated noise on ``shape`` (C, H, W) has L2 norm ``norm``."""
    return norm / math.sqrt(math.prod(shape))


def _l2(v: Tensor) -> Tensor:
    """Per-noise L2 norm over the last three axes, kept broadcastable."""
    return v.flatten(-3).norm(dim=-1)[..., None, None, None]


def _rescale(v: Tensor, norms: Tensor) -> Tensor:
    return v / _l2(v).clamp_min(1e-12) * norms[..., None, None, None]


def _check(x: Tensor, sources: Tensor, targets: Tensor, min_size: int) -> None:
    if x.dim() != 4 or x.shape[1] != 3:
        raise ConfigError(f"AN-E images must be (B, 3, H, W), got {tuple(x.shape)}")
    if sources.dim() != 5 or sources.shape[0] != x.shape[0] or sources.shape[2:] != x.shape[1:]:
        raise ConfigError(
            f"AN-E source noises must be (B, K, 3, H, W) matching the images {tuple(x.shape)}, got {tuple(sources.shape)}"
        )
    if sources.shape[1] < 1:
        raise ConfigError("AN-E needs at least one source noise")
    if (
        targets.dim() != 2
        or targets.shape[0] != x.shape[0]
        or targets.shape[1] < 1
        or not bool((targets > 0).all())
    ):
        raise ConfigError(
            f"AN-E targets must be positive L2 norms, (T,) or (B, T), got shape {tuple(targets.shape)}"
        )
    if min(x.shape[-2:]) < min_size:
        raise ConfigError(f"AN-E needs images of at least {min_size}x{min_size}, got {tuple(x.shape[-2:])}")


@dataclass
class Bracket:
    """For every (sample, target): the lower and upper source indices (-1: the "none" slot) and weights."""

    low: Tensor  # (B, T) long
    high: Tensor  # (B, T) long
    w_low: Tensor  # (B, T)
    w_high: Tensor  # (B, T)


def bracket(norms: Tensor, targets: Tensor, mode: Mode) -> Bracket:
    """The sources around each target: ``norms`` (B, K) source strengths in the order used,
    ``targets`` (B, T). A pair ``(k1, k2)`` of neighbouring sources with
    ``norms[k1] <= target < norms[k2]``; below the first source ``(-1, 0)``, otherwise
    ``(last, -1)``. Faithful weights: ``w1 = |t - n1| / S``, ``w2 = |t - n2| / S`` (the farther
    source weighs more) and an out-of-range real source weighs 0; fixed: the nearer weighs
    more, and out of range the nearest source weighs 1.
    """
    k = norms.shape[1]
    t = targets.to(norms)  # (B, T)
    low = torch.full_like(t, k - 1, dtype=torch.long)
    high = torch.full_like(t, -1, dtype=torch.long)
    below = t < norms[:, :1]
    low[below], high[below] = -1, 0
    found = below.clone()
    for j in range(k - 1):  # the first neighbouring pair that brackets the target, in source order
        hit = ~found & (norms[:, j : j + 1] <= t) & (t < norms[:, j + 1 : j + 2])
        low[hit], high[hit] = j, j + 1
        found |= hit
    inside = (low >= 0) & (high >= 0)
    n_low = torch.gather(norms, 1, low.clamp_min(0))
    n_high = torch.gather(norms, 1, high.clamp_min(0))
    d_low, d_high = (t - n_low).abs(), (t - n_high).abs()
    total = (d_low + d_high).clamp_min(1e-12)
    if mode == "faithful":
        w_low = torch.where(inside, d_low / total, torch.zeros_like(t))
        w_high = torch.where(inside, d_high / total, torch.zeros_like(t))
    else:
        w_low = torch.where(inside, d_high / total, (low >= 0).to(t))
        w_high = torch.where(inside, d_low / total, (high >= 0).to(t))
    return Bracket(low, high, w_low, w_high)


def _pick(stack: Tensor, index: Tensor) -> Tensor:
    """``stack`` (B, K, ...) gathered at ``index`` (B, T) -> (B, T, ...); -1 picks a zero slot."""
    zero = torch.zeros_like(stack[:, :1])
    padded = torch.cat([stack, zero], dim=1)  # slot K is "none"
    idx = torch.where(index < 0, torch.full_like(index, stack.shape[1]), index)
    shape = idx.shape + (1,) * (stack.dim() - 2)
    return torch.gather(padded, 1, idx.view(shape).expand(*idx.shape, *stack.shape[2:]))


class _Encoder(nn.Module):
    """The reference's "CPR" encoder: conv 5x5 stride 4 (3 -> 10), ReLU, max-pool 2, flattened to 90.

    At 32 x 32 the map is 3 x 3 after the pool, as in the reference; a final adaptive max-pool
    to 3 x 3 (the identity there) makes it take any size from 9 x 9 up.
    """

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 10, 5, stride=4), nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True), nn.AdaptiveMaxPool2d(3)
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x).flatten(1)


class _Estimator(nn.Module):
    """What both variants share: input checks, sorting, normalisation and the output step."""

    min_size = 9

    def __init__(self, mode: Mode) -> None:
        super().__init__()
        if mode not in ("faithful", "fixed"):
            raise ConfigError(f"AN-E mode must be 'faithful' or 'fixed', got {mode!r}")
        self.mode = mode

    def forward(self, x: Tensor, sources: Tensor, targets: Tensor) -> Tensor:
        """Noises (B, T, 3, H, W) for ``x`` (B, 3, H, W) in [0, 1], ``sources`` (B, K, 3, H, W)
        and target L2 norms ``targets`` (T,), or (B, T) for targets per image."""
        targets = torch.as_tensor(targets, dtype=x.dtype, device=x.device)
        if targets.dim() == 1:
            targets = targets[None, :].expand(x.shape[0], -1)
        _check(x, sources, targets, self.min_size)
        norms = _l2(sources)[..., 0, 0, 0]  # (B, K)
        if self.mode == "fixed":
            norms, order = norms.sort(dim=1)
            sources = torch.gather(sources, 1, order[:, :, None, None, None].expand_as(sources))
        directions = sources / norms[..., None, None, None].clamp_min(1e-12)
        noise = self.estimate(x, directions, norms, targets)  # (B, T, 3, H, W)
        noise = _rescale(noise, targets)
        if self.mode == "fixed":
            eps = l2_to_linf(targets, x.shape[1:])[..., None, None, None]
            noise = torch.maximum(torch.minimum(noise, eps), -eps)
            noise = (x[:, None] + noise).clamp(0, 1) - x[:, None]
        return noise

    def estimate(self, x: Tensor, directions: Tensor, norms: Tensor, targets: Tensor) -> Tensor:
        raise NotImplementedError


class ANEstimator(_Estimator):
    """``AN_estimator`` (spec B3.2; 76,763 parameters): residual refinement of each unit-norm
    source, bidirectional MLP recurrence over the sources in strength order (started from the
    image encoding), a query at each target from its bracketing sources, and dot-product
    attention without softmax over the refined sources, added to the interpolated base noise.

    As written in the reference, and kept in both modes: the forward query MLP is applied twice
    on the forward side and is also the backward side's query MLP.
    """

    def __init__(self, mode: Mode = "faithful", hidden: int = 90, strength_dim: int = 20) -> None:
        super().__init__(mode)
        self.refine = nn.Sequential(
            nn.Conv2d(3, 100, 3, padding=1), nn.ReLU(), nn.Conv2d(100, 3, 3, padding=1)
        )
        self.encode_image, self.encode_forward, self.encode_backward = _Encoder(), _Encoder(), _Encoder()
        self.encode_strength = nn.Sequential(nn.Linear(1, strength_dim), nn.ReLU())
        cell_in = 2 * hidden + strength_dim
        self.cell_forward = nn.Sequential(nn.Linear(cell_in, hidden), nn.ReLU())
        self.cell_backward = nn.Sequential(nn.Linear(cell_in, hidden), nn.ReLU())
        self.query_forward = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU())
        self.query_backward = nn.Sequential(
            nn.Linear(hidden, hidden), nn.ReLU()
        )  # unused, as in the reference
        self.value_forward = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU())
        self.value_backward = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU())

    def estimate(self, x: Tensor, directions: Tensor, norms: Tensor, targets: Tensor) -> Tensor:
        b, k = norms.shape
        refined = directions + self.refine(directions.flatten(0, 1)).view_as(directions)
        flat = refined.flatten(0, 1)
        feat_f = self.encode_forward(flat).view(b, k, -1)
        feat_b = self.encode_backward(flat).view(b, k, -1)
        strength = self.encode_strength(norms[..., None])  # (B, K, S)
        image = self.encode_image(x)
        h, states_f = image, []
        for j in range(k):
            h = self.cell_forward(torch.cat([feat_f[:, j], strength[:, j], h], dim=1))
            states_f.append(h)
        h, states_b = image, [image] * k
        for j in reversed(range(k)):
            h = self.cell_backward(torch.cat([feat_b[:, j], strength[:, j], h], dim=1))
            states_b[j] = h
        hf, hb = torch.stack(states_f, 1), torch.stack(states_b, 1)  # (B, K, hidden)

        br = bracket(norms, targets, self.mode)
        w1, w2 = br.w_low[..., None], br.w_high[..., None]  # (B, T, 1)
        base = w1[..., None, None] * _pick(refined, br.low) + w2[..., None, None] * _pick(refined, br.high)
        mixed = w1 * _pick(hf, br.low) + w2 * _pick(hb, br.high)  # (B, T, hidden)
        # the query sees the nearest real state unweighted (the "none" slot is zero)
        t_code = self.encode_strength(targets[..., None])  # (B, T, S)
        q_f = self.cell_forward(torch.cat([mixed, t_code, _pick(hf, br.low)], dim=-1))
        q_b = self.cell_backward(torch.cat([mixed, t_code, _pick(hb, br.high)], dim=-1))
        query = torch.cat([self.query_forward(self.query_forward(q_f)), self.query_forward(q_b)], dim=-1)
        values = torch.cat([self.value_forward(hf), self.value_backward(hb)], dim=-1)  # (B, K, 2 hidden)
        scores = torch.einsum("btd,bkd->btk", query, values)
        attended = torch.einsum("btk,bkchw->btchw", scores, refined)
        return attended + base


class _MobileBlock(nn.Sequential):
    """MobileNetV2's inverted residual body without the residual: pw, dw 3x3, pw-linear."""

    def __init__(self, c_in: int, c: int) -> None:
        super().__init__(
            nn.Conv2d(c_in, c, 1, bias=False), nn.BatchNorm2d(c), nn.ReLU6(),
            nn.Conv2d(c, c, 3, padding=1, groups=c, bias=False), nn.BatchNorm2d(c), nn.ReLU6(),
            nn.Conv2d(c, c, 1, bias=False), nn.BatchNorm2d(c),
        )  # fmt: skip


class _ConvCell(nn.Sequential):
    """The plus version's recurrent cell: BN, conv 3x3 (7 -> 300), ReLU, mobile block to 3 channels."""

    def __init__(self, width: int = 300) -> None:
        super().__init__(
            nn.BatchNorm2d(7), nn.Conv2d(7, width, 3, padding=1), nn.ReLU(), _MobileBlock(width, 3)
        )


def _tower(c_in: int, c_out: int) -> nn.Sequential:
    """Unpadded convolutions then a global max-pool: a ``c_out``-d vector per input map."""
    return nn.Sequential(
        nn.Conv2d(c_in, 32, 3),
        nn.ReLU(),
        nn.Conv2d(32, c_out, 3),
        nn.ReLU(),
        nn.AdaptiveMaxPool2d(1),
        nn.Flatten(),
    )


class ANEstimatorPlus(_Estimator):
    """``AN_estimator_plus`` (spec B3.3; used for WsrNet-Plus): the strength as a 1 x H x W map,
    a convolutional bidirectional recurrence over the sources, conv towers for query (from the
    gathered forward noise, the weighted backward noise and the base noise) and keys, a padded
    value tower, softmax attention over the sources. The strength map is a Linear(1 -> H W), so
    an instance takes one image size (``image_size``, 32 by default); the towers' widths are not
    given by the spec and are this implementation's (its parameter count differs from the
    reference's 138,504). Faithful mode weights the backward term by ``w1``, as written.
    """

    def __init__(
        self, mode: Mode = "faithful", image_size: int = 32, width: int = 300, dim: int = 50
    ) -> None:
        super().__init__(mode)
        self.image_size = image_size
        self.encode_strength = nn.Sequential(nn.Linear(1, image_size * image_size), nn.ReLU())
        self.cell_forward, self.cell_backward = _ConvCell(width), _ConvCell(width)
        self.query = _tower(9, dim)
        self.key = _tower(6, dim)
        self.value = nn.Sequential(nn.Conv2d(6, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 3, 3, padding=1))

    def _strength_map(self, norms: Tensor) -> Tensor:
        s = self.image_size
        return self.encode_strength(norms[..., None]).view(*norms.shape, 1, s, s)

    def estimate(self, x: Tensor, directions: Tensor, norms: Tensor, targets: Tensor) -> Tensor:
        if tuple(x.shape[-2:]) != (self.image_size, self.image_size):
            raise ConfigError(
                f"this AN-E plus takes {self.image_size}x{self.image_size} images, got {tuple(x.shape[-2:])} "
                f"(build it with image_size={x.shape[-1]})"
            )
        b, k = norms.shape
        strength = self._strength_map(norms)  # (B, K, 1, H, W)
        out, states_f = x, []
        for j in range(k):
            out = self.cell_forward(torch.cat([out, strength[:, j], directions[:, j]], dim=1))
            states_f.append(out)
        out, states_b = x, [x] * k
        for j in reversed(range(k)):
            out = self.cell_backward(torch.cat([out, strength[:, j], directions[:, j]], dim=1))
            states_b[j] = out
        nf, nb = torch.stack(states_f, 1), torch.stack(states_b, 1)  # (B, K, 3, H, W)

        br = bracket(norms, targets, self.mode)
        w1 = br.w_low[..., None, None, None]
        w2 = br.w_high[..., None, None, None]
        base = w1 * _pick(directions, br.low) + w2 * _pick(directions, br.high)
        backward_weight = w1 if self.mode == "faithful" else w2
        q_in = torch.cat([_pick(nf, br.low), backward_weight * _pick(nb, br.high), base], dim=2)
        t = targets.shape[1]
        query = self.query(q_in.flatten(0, 1)).view(b, t, -1)
        pair = torch.cat([nf, nb], dim=2).flatten(0, 1)  # (B K, 6, H, W)
        keys = self.key(pair).view(b, k, -1)
        values = self.value(pair).view(b, k, 3, *x.shape[-2:])
        attention = torch.einsum("btd,bkd->btk", query, keys).softmax(dim=-1)
        return torch.einsum("btk,bkchw->btchw", attention, values) + base


def noise_estimator(variant: Variant = "basic", mode: Mode = "faithful", **options: object) -> _Estimator:
    """The AN-E: ``variant`` ``"basic"`` (``AN_estimator``) or ``"plus"`` (``AN_estimator_plus``),
    ``mode`` ``"faithful"`` or ``"fixed"`` (see the module docstring)."""
    if variant == "basic":
        return ANEstimator(mode, **options)  # type: ignore[arg-type]
    if variant == "plus":
        return ANEstimatorPlus(mode, **options)  # type: ignore[arg-type]
    raise ConfigError(f"AN-E variant must be 'basic' or 'plus', got {variant!r}")


# ---------------------------------------------------------------------------------------
# training data and training (spec B3.4)


@dataclass
class NoiseItem:
    """Leave-one-out training items: ``x`` (N, 3, H, W), ``sources`` (N, K, 3, H, W), ``target``
    (N,) the held-out noise's L2 norm, ``label`` (N, 3, H, W) the held-out noise, ``y`` (N,) classes."""

    x: Tensor
    sources: Tensor
    target: Tensor
    label: Tensor
    y: Tensor


def pgd_noises(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    eps: Sequence[float] = SOURCE_EPS,
    random_eps_max: float | None = 0.15,
    steps: int = 7,
    generator: torch.Generator | None = None,
) -> Tensor:
    """The reference's real noises of a batch, (B, len(eps) [+ 1], 3, H, W): PGD-``steps`` at each
    l_inf ``eps`` (step ``2.5 eps / steps``, no random start, the model in eval mode), then, with
    ``random_eps_max``, one more at an eps drawn from U(0, random_eps_max) for the whole batch.
    ``x`` (B, 3, H, W) in [0, 1]."""
    from robnas import attacks

    strengths = [float(e) for e in eps]
    if not strengths or strengths[0] <= 0 or any(b <= a for a, b in itertools.pairwise(strengths)):
        raise ConfigError(f"PGD source strengths must be positive and increasing, got {strengths}")
    if random_eps_max is not None:
        strengths.append(float(torch.rand((), generator=generator)) * random_eps_max)
    out = []
    for e in strengths:
        if e <= 0:
            out.append(torch.zeros_like(x))
            continue
        attack = attacks.get("pgd", model, eps=e, alpha=2.5 * e / steps, steps=steps, random_start=False)
        out.append(attack(x, y) - x)
    return torch.stack(out, dim=1)


def leave_one_out(x: Tensor, noises: Tensor, y: Tensor) -> NoiseItem:
    """The reference's ``form_data``: with ``noises`` (B, M, 3, H, W) (PGD at 0.03 / 0.06 / 0.09 and
    at a random eps, in that order), each noise in turn is the label and the other M - 1, in
    their order, the sources: M B items, held-out index major."""
    if noises.dim() != 5 or noises.shape[1] < 2:
        raise ConfigError(f"leave_one_out needs noises (B, M >= 2, 3, H, W), got {tuple(noises.shape)}")
    m = noises.shape[1]
    items = []
    for j in range(m):
        keep = [i for i in range(m) if i != j]
        items.append((noises[:, keep], noises[:, j]))
    sources = torch.cat([s for s, _ in items])
    label = torch.cat([lab for _, lab in items])
    return NoiseItem(x.repeat(m, 1, 1, 1), sources, _l2(label)[:, 0, 0, 0], label, y.repeat(m))


class NoiseMemory:
    """FIFO memory of leave-one-out items (the reference's ``AE_Memory``, 600 items)."""

    def __init__(self, capacity: int = 600) -> None:
        if capacity < 1:
            raise ConfigError(f"noise memory capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self.items: deque[tuple[Tensor, ...]] = deque(maxlen=capacity)

    def add(self, batch: NoiseItem) -> None:
        for i in range(batch.x.shape[0]):
            self.items.append((batch.x[i], batch.sources[i], batch.target[i], batch.label[i], batch.y[i]))

    def __len__(self) -> int:
        return len(self.items)

    def batches(self, batch_size: int, rng: random.Random) -> list[NoiseItem]:
        """One shuffled pass over the memory in batches of ``batch_size``."""
        if not self.items:
            raise ConfigError("the noise memory is empty: add leave-one-out items before training the AN-E")
        order = list(range(len(self.items)))
        rng.shuffle(order)
        out = []
        for start in range(0, len(order), batch_size):
            cols = list(zip(*(self.items[i] for i in order[start : start + batch_size]), strict=True))
            out.append(NoiseItem(*(torch.stack(c) for c in cols)))
        return out


def estimator_schedule(step: int, warmup: int = 4000, total: int = 100_000) -> float:
    """The reference AN-E learning-rate factor: ``step / warmup`` up to ``warmup``, then a cosine
    from 1 to 0 until ``total`` (0 after it), stepped per batch."""
    if step < warmup:
        return step / warmup
    if step >= total:
        return 0.0
    return 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / (total - warmup)))


def estimator_optimizer(est: nn.Module) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW (lr 5e-4, weight decay 1e-4) with :func:`estimator_schedule`, as the reference."""
    opt = torch.optim.AdamW(est.parameters(), lr=5e-4, weight_decay=1e-4)
    return opt, torch.optim.lr_scheduler.LambdaLR(opt, estimator_schedule)


def train_estimator_pass(
    est: _Estimator,
    memory: NoiseMemory,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    rng: random.Random,
    batch_size: int = 64,
) -> float:
    """One pass over the shuffled memory, MSE between the estimate at each item's target and its
    held-out noise (one target per item); the mean loss."""
    est.train()
    device = next(est.parameters()).device
    losses = []
    for batch in memory.batches(batch_size, rng):
        estimates = est(batch.x.to(device), batch.sources.to(device), batch.target[:, None].to(device))[:, 0]
        loss = nn.functional.mse_loss(estimates, batch.label.to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())
    return sum(losses) / len(losses)


__all__ = [
    "SOURCE_EPS",
    "TARGET_NAMES",
    "TARGET_NORMS",
    "ANEstimator",
    "ANEstimatorPlus",
    "Bracket",
    "NoiseItem",
    "NoiseMemory",
    "bracket",
    "estimator_optimizer",
    "estimator_schedule",
    "l2_to_linf",
    "leave_one_out",
    "linf_to_l2",
    "noise_estimator",
    "pgd_noises",
    "train_estimator_pass",
]
