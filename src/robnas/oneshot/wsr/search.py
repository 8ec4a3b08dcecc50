"""Wsr-NAS's wide-spectrum search loop (Cheng et al., "Neural Architecture Search for Wide
Spectrum Adversarial Robustness", AAAI 2023; spec: ``robnets_wsrnas.md`` B2, B5 and C2).

:func:`run_wsr` runs the four phases of the reference ``main()`` on a DARTS supernet
(:class:`robnas.oneshot.supernet.DartsSupernet`):

1. **warm-up** (``warmup_epochs``, 100): per epoch one Gumbel sample of alpha, one epoch of
   PGD-7 adversarial training (eps 0.03) of its single path;
2. **memory building** (``memory_epochs``, 100; the warm-up's samples again, in order): PGD-AT
   epoch; clean loss on the validation half; ``noise_batches`` (10) training batches of real
   noises (PGD at 0.03 / 0.06 / 0.09 and at a random eps) into the AN-E's leave-one-out memory;
   the attacked validation batches at the six strengths (three real PGD, three AN-E targets);
   the 7 losses into the EWSS memory; one AN-E training pass;
3. **predictor warm-up**: ``predictor_warmup_passes`` (500) passes over the EWSS memory;
4. **search** (``search_epochs``, 200): a new Gumbel sample, PGD-AT epoch, ``noise_batches + 1``
   (11) batches into the AN-E memory, the six adversarial losses, an AN-E pass, the clean loss
   (on the *training* half, the reference's quirk C2; ``search_clean_on="valid"`` fixes it),
   the EWSS memory entry, ``predictor_passes`` (501) predictor passes and one Adam step on alpha
   through the predictor (:class:`robnas.oneshot.wsr.predictor.ArchitectureStep`).

**Alpha and paths.** ``alpha_normal`` and ``alpha_reduce`` are 14 x 8, initialised
``1e-3 N(0, 1)``. One Gumbel draw ``g`` per matrix per epoch gives the edge weights
``W = softmax((alpha + g) / tau)`` (tau 0.1), which are the EWSS input. The path that runs is
the DARTS genotype of ``W`` by the DARTS top-2 rule (:func:`derive_genotype`): on each node
the two incoming edges with the largest non-``none`` weight ``max_{o != none} W[e, o]``, each
with its best non-``none`` operation. The reported final genotype applies the same rule to
``softmax(alpha)`` (no Gumbel noise), as the reference's ``genotype()``.

**Which path runs** (``path``). The reference's ``MixedOp`` runs the arg-max operation of
*every* one of the 14 edges, scaled by its weight (a ``none`` arg-max contributes nothing):
``path="argmax"`` does that (:meth:`DartsSupernet.forward_argmax`). The default,
``path="genotype"``, runs the top-2 genotype of the sample (two edges per node, unscaled),
which is what robnas's supernet paths, ``subnet()`` and the derived WsrNets are; it trains 8
of the 14 edges per epoch and does not apply the weights (about 1 at tau 0.1). Either way the
recorded genotype of an epoch is the top-2 genotype of its sample.

**Naive baseline** (``naive=True``; the search whose cost Wsr-NAS cuts by about 40%): the six
strengths ``naive_eps`` (0.03 ... 0.105) are all real PGD-7 noises; there is no AN-E, no noise
memory and no AN-E training; the EWSS predictor and the alpha step are the same.

Other choices, stated: the supernet's own adversarial training uses :mod:`robnas.attacks`'s
PGD without random start (as the reference's noises), attacks run in eval mode, the SGD
cosine runs over all supernet epochs of the three phases (``eta_min`` 0.001), and the
validation noises' extra random-eps PGD run is made (and counted) but unused, as in the
reference (``valid_random_eps``). Each epoch's randomness (Gumbel draws, shuffles, the random
eps, memory shuffles) is drawn from generators seeded by ``(seed, epoch)``, so a resumed run
equals an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from robnas.cost import Timer
from robnas.data import ImageArrays
from robnas.errors import ConfigError
from robnas.oneshot.supernet import DartsSupernet, supernet
from robnas.oneshot.training import SinglePath
from robnas.oneshot.wsr.noise import (
    SOURCE_EPS,
    TARGET_NORMS,
    NoiseMemory,
    estimator_optimizer,
    leave_one_out,
    noise_estimator,
    pgd_noises,
    train_estimator_pass,
)
from robnas.oneshot.wsr.options import WsrOptions
from robnas.oneshot.wsr.predictor import (
    OPS,
    STRENGTHS,
    ArchitectureStep,
    LossMemory,
    gumbel_weights,
    loss_predictor,
    objective_weights,
    predictor_optimizer,
    train_predictor,
)
from robnas.runtime import resolve_device
from robnas.seeding import seed_int
from robnas.spaces.darts import PRIMITIVES, Genotype, make_genotype
from robnas.train import checkpoint

#: edges per DARTS cell, intermediate nodes per cell
CELL_EDGES, NODES = 14, 4
PHASES = ("warmup", "memory", "predictor", "search", "done")
CHECKPOINT = "wsr.pt"
#: cost-split keys of an epoch's record (seconds)
COSTS = ("train", "pgd", "estimator", "eval", "predictor")
_GUMBEL, _WARM, _SHUFFLE, _NOISE, _MEMORY = 0x6B1, 0x6B2, 0x6B3, 0x6B4, 0x6B5


# ---------------------------------------------------------------------------------------
# alpha, Gumbel samples and the DARTS top-2 rule


def init_alphas(seed: int) -> tuple[Tensor, Tensor]:
    """``(alpha_normal, alpha_reduce)``, each 14 x 8 of ``1e-3 N(0, 1)``, requiring gradients."""
    gen = torch.Generator().manual_seed(seed_int(seed, 0xA1))
    return tuple(  # type: ignore[return-value]
        (1e-3 * torch.randn(CELL_EDGES, OPS, generator=gen)).requires_grad_() for _ in range(2)
    )


def gumbel_noise(seed: int, *tags: int) -> tuple[Tensor, Tensor]:
    """One Gumbel(0, 1) draw per alpha matrix, from a generator seeded by ``(seed, *tags)``."""
    gen = torch.Generator().manual_seed(seed_int(seed, *tags))
    out = []
    for _ in range(2):
        u = torch.rand(CELL_EDGES, OPS, generator=gen).clamp(1e-10, 1 - 1e-10)
        out.append(-torch.log(-torch.log(u)))
    return out[0], out[1]


def _cell_edges(weights: Tensor) -> tuple[tuple[str, int], ...]:
    if weights.shape != (CELL_EDGES, OPS):
        raise ConfigError(f"a cell's edge weights are ({CELL_EDGES}, {OPS}), got {tuple(weights.shape)}")
    w = weights.detach().cpu().double()
    none = PRIMITIVES.index("none")
    real = [i for i in range(OPS) if i != none]
    gene: list[tuple[str, int]] = []
    start = 0
    for node in range(NODES):
        n = node + 2
        rows = w[start : start + n]
        strength = [max(float(rows[j, k]) for k in real) for j in range(n)]
        for j in sorted(range(n), key=lambda j: -strength[j])[:2]:  # stable: ties keep the lower input
            best = max(real, key=lambda k: float(rows[j, k]))
            gene.append((PRIMITIVES[best], j))
        start += n
    return tuple(gene)


def derive_genotype(normal: Tensor, reduce: Tensor) -> Genotype:
    """The DARTS top-2 rule on edge weights (14, 8) per cell (Liu et al., ICLR 2019; spec B2):
    on each node keep the two incoming edges with the largest non-``none`` weight, and on each
    the non-``none`` operation of largest weight; edges of a node listed strongest first.
    Feed ``softmax((alpha + g) / tau)`` for an epoch's path, ``softmax(alpha)`` for the result."""
    return make_genotype(_cell_edges(normal), range(2, 6), _cell_edges(reduce), range(2, 6))


def edge_weights(alphas: Sequence[Tensor], gumbels: Sequence[Tensor] | None, tau: float) -> Tensor:
    """(28, 8): ``softmax((alpha + g) / tau)`` of the normal then reduction alphas (no grad)."""
    with torch.no_grad():
        if gumbels is None:
            return torch.cat([a.detach().softmax(dim=-1) for a in alphas])
        return gumbel_weights((alphas[0].detach(), alphas[1].detach()), (gumbels[0], gumbels[1]), tau)


# ---------------------------------------------------------------------------------------
# configuration and records


@dataclass
class WsrConfig(WsrOptions):
    """The search's settings: :class:`robnas.oneshot.wsr.options.WsrOptions` and these; defaults are
    the reference's (spec B5)."""

    #: share of the (subset of the) data that is the training half; the rest is validation
    train_fraction: float = 0.5
    #: use only this many images (a seeded random subset); None: all
    images: int | None = None
    #: training batches per supernet epoch; None: the whole training half
    train_batches: int | None = None
    #: validation batches attacked per epoch; None: all (the reference)
    valid_batches: int | None = None
    #: batches the clean loss is measured on; None: as many as ``valid_batches``
    clean_batches: int | None = None
    lr: float = 0.1
    lr_min: float = 0.001
    momentum: float = 0.9
    weight_decay: float = 3e-4
    grad_clip: float = 5.0
    train_eps: float = 0.03
    #: l_inf strengths of the real validation noises (and the AN-E's sources)
    pgd_eps: tuple[float, ...] = SOURCE_EPS
    #: the AN-E's target L2 norms ("0.045 / 0.075 / 0.105")
    target_norms: tuple[float, ...] = TARGET_NORMS
    #: the naive baseline's six real PGD strengths
    naive_eps: tuple[float, ...] = STRENGTHS
    random_eps_max: float = 0.15
    valid_random_eps: bool = True
    estimator_batch: int = 64
    loss_memory: int = 100
    predictor_batch: int = 64
    arch_lr: float = 3e-5
    tau: float = 0.1
    naive: bool = False

    def check(self, data: ImageArrays | None = None) -> None:
        """One :class:`ConfigError` for the first bad setting (and data that does not fit)."""
        counts = {
            "warmup_epochs": (self.warmup_epochs, 0), "memory_epochs": (self.memory_epochs, 1),
            "search_epochs": (self.search_epochs, 0), "C": (self.C, 1), "layers": (self.layers, 3),
            "batch_size": (self.batch_size, 1), "pgd_steps": (self.pgd_steps, 1),
            "noise_memory": (self.noise_memory, 1), "noise_batches": (self.noise_batches, 1),
            "estimator_batch": (self.estimator_batch, 1), "loss_memory": (self.loss_memory, 1),
            "predictor_batch": (self.predictor_batch, 1),
            "predictor_warmup_passes": (self.predictor_warmup_passes, 1),
            "predictor_passes": (self.predictor_passes, 1),
        }  # fmt: skip
        for name, (value, low) in counts.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                why = " (the loss predictor trains on its memory)" if name == "memory_epochs" else ""
                raise ConfigError(f"wsr {name} must be an integer >= {low}{why}, got {value!r}")
        for name in ("images", "train_batches", "valid_batches", "clean_batches"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ConfigError(f"wsr {name} must be an integer >= 1 or None, got {value!r}")
        if not 0 < self.train_fraction < 1:
            raise ConfigError(f"wsr train_fraction must be in (0, 1), got {self.train_fraction}")
        if not self.tau > 0 or not self.lr > 0 or not 0 <= self.lr_min <= self.lr:
            raise ConfigError(
                f"wsr needs tau > 0 and 0 <= lr_min <= lr, got {self.tau}, {self.lr_min}, {self.lr}"
            )
        if not 0 < self.train_eps <= 1:
            raise ConfigError(f"wsr train_eps must be in (0, 1], got {self.train_eps}")
        _increasing("pgd_eps", self.pgd_eps, 3)
        _increasing("target_norms", self.target_norms, 3)
        _increasing("naive_eps", self.naive_eps, 6)
        if self.estimator not in ("basic", "plus") or self.estimator_mode not in ("faithful", "fixed"):
            raise ConfigError(
                f"wsr estimator must be basic | plus and estimator_mode faithful | fixed, "
                f"got {self.estimator!r}, {self.estimator_mode!r}"
            )
        if self.path not in ("genotype", "argmax"):
            raise ConfigError(f"wsr path must be 'genotype' or 'argmax', got {self.path!r}")
        if self.search_clean_on not in ("train", "valid"):
            raise ConfigError(f"wsr search_clean_on must be 'train' or 'valid', got {self.search_clean_on!r}")
        if data is None:
            return
        if data.x.shape[-1] != 3:
            raise ConfigError(f"wsr searches on RGB images, got {data.x.shape[-1]} channels")
        size = tuple(data.x.shape[1:3])
        if not self.naive and self.estimator == "plus" and size != (self.estimator_image_size,) * 2:
            raise ConfigError(
                f"the plus AN-E takes {self.estimator_image_size}x{self.estimator_image_size} images, "
                f"the data has {size[0]}x{size[1]} (set estimator_image_size={size[0]})"
            )
        if not self.naive and self.estimator == "basic" and min(size) < 9:
            raise ConfigError(f"the AN-E needs images of at least 9x9, the data has {size[0]}x{size[1]}")
        n = len(data) if self.images is None else min(self.images, len(data))
        n_train = round(n * self.train_fraction)
        if n_train < 1 or n - n_train < 1:
            raise ConfigError(
                f"wsr needs images in both halves: {n} images, train_fraction {self.train_fraction}"
            )

    @property
    def strength_names(self) -> tuple[float, ...]:
        """The six strengths in head order (l_inf; AN-E targets by the reference's names)."""
        if self.naive:
            return tuple(self.naive_eps)
        names = tuple(round(n / math.sqrt(3 * 32 * 32), 4) for n in self.target_norms)
        return tuple(v for pair in zip(self.pgd_eps, names, strict=True) for v in pair)


def _increasing(name: str, values: Sequence[float], count: int) -> None:
    vals = [float(v) for v in values]
    if len(vals) != count or vals[0] <= 0 or any(b <= a for a, b in itertools.pairwise(vals)):
        raise ConfigError(f"wsr {name} must be {count} positive, strictly increasing strengths, got {vals}")


@dataclass
class WsrEpoch:
    """One epoch of a phase: its path, its losses (clean then the six strengths in head
    order; empty in warm-up), the predictor's losses for this path before it saw them (search
    only), the measured objective ``sum w_i l_i^2`` and the seconds spent per part."""

    phase: str
    epoch: int
    genotype: str
    measured: list[float] = field(default_factory=list)
    predicted: list[float] = field(default_factory=list)
    objective: float = math.nan
    predicted_objective: float = math.nan
    cost: dict[str, float] = field(default_factory=dict)


@dataclass
class WsrResult:
    """A finished (or stopped) search: every epoch, the final alphas and genotype, the supernet."""

    config: WsrConfig
    epochs: list[WsrEpoch]
    alphas: tuple[Tensor, Tensor]
    genotype: str
    supernet: DartsSupernet
    phase: str

    @property
    def cost(self) -> dict[str, float]:
        """Total seconds per part over all epochs."""
        return {k: sum(e.cost.get(k, 0.0) for e in self.epochs) for k in COSTS}

    def search(self) -> list[WsrEpoch]:
        return [e for e in self.epochs if e.phase == "search"]


# ---------------------------------------------------------------------------------------
# the loop


def _noise_state(memory: NoiseMemory) -> dict[str, Tensor]:
    if not memory.items:
        return {}
    cols = list(zip(*memory.items, strict=True))
    return dict(zip(("x", "sources", "target", "label", "y"), (torch.stack(c) for c in cols), strict=True))


def _load_noise(memory: NoiseMemory, state: dict[str, Tensor]) -> None:
    memory.items.clear()
    if state:
        for row in zip(*(state[k] for k in ("x", "sources", "target", "label", "y")), strict=True):
            memory.items.append(tuple(row))


class _PathView(nn.Module):
    """The current path as attacks see it: a module with no submodules, so the attacks' switch
    to eval mode and back touches one module instead of every operation of the supernet (which
    costs more than a small batch's PGD); the supernet's BN mode is set by :meth:`WsrSearch.bn`."""

    def __init__(self, single: SinglePath, device: torch.device) -> None:
        super().__init__()
        self._single = (single,)  # a tuple: not registered as a submodule
        # an empty parameter tells the attack libraries the device
        self.anchor = nn.Parameter(torch.empty(0, device=device), requires_grad=False)
        #: edge weights (28, 8) of the arg-max path, or None: the genotype set on ``single``
        self.weights: Tensor | None = None

    def forward(self, x: Tensor) -> Tensor:
        single = self._single[0]
        if self.weights is not None:
            return single.supernet.forward_argmax(x, self.weights)  # type: ignore[operator]
        return single(x)


class WsrSearch:
    """The state of one search and its phases (:func:`run_wsr` drives it).

    Why its own loop and not the common trainer (:class:`robnas.train.trainer.Trainer`, which
    RobNets' supernet training uses through :func:`robnas.oneshot.train_supernet`): a Wsr-NAS
    epoch is not a training epoch. Between one supernet PGD-AT epoch and the next it collects
    real noises into the AN-E's memory, attacks the validation half at six strengths, trains
    the AN-E, measures the clean loss, trains the EWSS predictor for 501 passes and takes an
    Adam step on alpha, each from generators seeded by ``(seed, epoch)``; and the path of each
    epoch (a Gumbel sample of alpha) is decided by that state. The trainer's unit of work,
    checkpoint and resume are one recipe's epochs over a fixed network; here the checkpoint is
    the whole search state (supernet, alphas, both memories, three optimisers, the phase), saved
    after every epoch so that a resumed run equals an uninterrupted one. What the two share is
    shared: the attacks (:mod:`robnas.attacks`), the supernet and its single path
    (:mod:`robnas.oneshot.supernet`, :class:`robnas.oneshot.training.SinglePath`), the
    checkpoint files (:mod:`robnas.train.checkpoint`), the seeds (:func:`robnas.seeding.seed_int`)
    and the device rule (:func:`robnas.runtime.resolve_device`).
    """

    def __init__(
        self, config: WsrConfig, data: ImageArrays, out: Path, seed: int, device: torch.device
    ) -> None:
        self.config, self.out, self.seed, self.device = config, out, seed, device
        n = len(data)
        order = np.random.default_rng(seed_int(seed, 0xDA7A)).permutation(n)
        if config.images is not None:
            order = order[: min(config.images, n)]
        n_train = round(len(order) * config.train_fraction)
        self.data = data
        self.train_idx, self.valid_idx = np.sort(order[:n_train]), np.sort(order[n_train:])
        torch.manual_seed(seed)
        self.net = supernet("darts", num_classes=data.num_classes, C=config.C, layers=config.layers).to(
            device
        )
        assert isinstance(self.net, DartsSupernet)
        self.single = SinglePath(self.net)
        self.view = _PathView(self.single, device)
        self.net.train()  # BN is the only mode-dependent module here: bn() switches it alone
        self._norms = [m for m in self.net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        self.alphas = init_alphas(seed)
        total = config.warmup_epochs + config.memory_epochs + config.search_epochs
        self.sgd = torch.optim.SGD(
            self.net.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
        )
        self.schedule = torch.optim.lr_scheduler.CosineAnnealingLR(
            self.sgd, max(1, total), eta_min=config.lr_min
        )
        self.architect = ArchitectureStep(self.alphas, lr=config.arch_lr)
        self.predictor = loss_predictor()  # 1,783 weights: kept on the CPU with alpha
        self.predictor_opt = predictor_optimizer(self.predictor)
        self.loss_memory = LossMemory(config.loss_memory)
        self.noise_memory = NoiseMemory(config.noise_memory)
        self.estimator: nn.Module | None = None
        if not config.naive:
            options = {"image_size": config.estimator_image_size} if config.estimator == "plus" else {}
            self.estimator = noise_estimator(config.estimator, config.estimator_mode, **options).to(device)
            self.estimator_opt, self.estimator_sched = estimator_optimizer(self.estimator)
        self.phase, self.epoch = "warmup", 0
        self.records: list[WsrEpoch] = []
        self.weights = objective_weights()

    # -- data -------------------------------------------------------------------------
    def _batches(
        self, idx: np.ndarray, limit: int | None, *tags: int, shuffle: bool = True
    ) -> list[np.ndarray]:
        if shuffle:
            idx = np.random.default_rng(seed_int(self.seed, *tags)).permutation(idx)
        chunks = [idx[i : i + self.config.batch_size] for i in range(0, len(idx), self.config.batch_size)]
        return chunks if limit is None else chunks[:limit]

    def _tensors(self, idx: np.ndarray) -> tuple[Tensor, Tensor]:
        x, y = self.data.tensors(np.sort(idx))
        return x.to(self.device), y.to(self.device)

    def bn(self, train: bool) -> None:
        """Batch statistics (training) or running statistics (attacks, evaluation)."""
        for m in self._norms:
            m.training = train

    # -- parts of an epoch --------------------------------------------------------------
    def _pgd(self, eps: float) -> Any:
        from robnas import attacks

        c = self.config
        return attacks.get(
            "pgd", self.view, eps=eps, alpha=2.5 * eps / c.pgd_steps, steps=c.pgd_steps, random_start=False
        )

    def set_path(self, genotype: Genotype, weights: Tensor) -> None:
        """The path of this epoch: ``genotype``, or with ``path="argmax"`` the arg-max ops of ``weights``."""
        self.single.set_path(genotype)
        self.view.weights = weights.to(self.device) if self.config.path == "argmax" else None

    def train_epoch(self, step: int, timer: Timer) -> None:
        """One epoch of PGD-7 adversarial training of the epoch's path (SGD, clip 5)."""
        attack = self._pgd(self.config.train_eps)
        with timer.part("train"):
            for chunk in self._batches(self.train_idx, self.config.train_batches, step, _SHUFFLE):
                x, y = self._tensors(chunk)
                self.bn(False)
                x_adv = attack(x, y)
                self.bn(True)
                loss = nn.functional.cross_entropy(self.view(x_adv), y)
                self.sgd.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(self.net.parameters(), self.config.grad_clip)
                self.sgd.step()
            self.schedule.step()

    def collect_noises(self, count: int, step: int, timer: Timer) -> None:
        """Real noises of ``count`` training batches into the AN-E's leave-one-out memory."""
        if self.estimator is None:
            return
        c = self.config
        gen = torch.Generator().manual_seed(seed_int(self.seed, step, _NOISE))
        for chunk in self._batches(self.train_idx, count, step, _NOISE):
            x, y = self._tensors(chunk)
            self.bn(False)
            with timer.part("pgd"):
                noises = pgd_noises(self.view, x, y, c.pgd_eps, c.random_eps_max, c.pgd_steps, gen)
            self.noise_memory.add(leave_one_out(x.cpu(), noises.cpu(), y.cpu()))

    def adversarial_losses(self, step: int, timer: Timer) -> list[float]:
        """Mean CE of the path on the attacked validation batches at the six strengths (head order)."""
        c = self.config
        gen = torch.Generator().manual_seed(seed_int(self.seed, step, _NOISE, 1))
        sums, count = [0.0] * 6, 0
        self.bn(False)
        for chunk in self._batches(self.valid_idx, c.valid_batches, step, _SHUFFLE, 1, shuffle=False):
            x, y = self._tensors(chunk)
            with timer.part("pgd"):
                eps = c.naive_eps if c.naive else c.pgd_eps
                extra = c.random_eps_max if (c.valid_random_eps and not c.naive) else None
                noises = pgd_noises(self.view, x, y, eps, extra, c.pgd_steps, gen)
            if self.estimator is not None:
                with timer.part("estimator"), torch.no_grad():
                    self.estimator.eval()
                    targets = torch.tensor(c.target_norms, dtype=x.dtype, device=x.device)
                    estimated = self.estimator(x, noises[:, :3], targets)
                order = [
                    noises[:, 0],
                    estimated[:, 0],
                    noises[:, 1],
                    estimated[:, 1],
                    noises[:, 2],
                    estimated[:, 2],
                ]
            else:
                order = [noises[:, i] for i in range(6)]
            with timer.part("eval"), torch.no_grad():
                for i, noise in enumerate(order):
                    sums[i] += float(nn.functional.cross_entropy(self.view(x + noise), y, reduction="sum"))
            count += len(y)
        return [s / count for s in sums]

    def clean_loss(self, on: str, step: int, timer: Timer) -> float:
        """Mean clean CE of the path on the training or validation half."""
        c = self.config
        limit = c.clean_batches if c.clean_batches is not None else c.valid_batches
        idx = self.train_idx if on == "train" else self.valid_idx
        total, count = 0.0, 0
        self.bn(False)
        with timer.part("eval"), torch.no_grad():
            for chunk in self._batches(idx, limit, step, _SHUFFLE, 2, shuffle=on == "train"):
                x, y = self._tensors(chunk)
                total += float(nn.functional.cross_entropy(self.view(x), y, reduction="sum"))
                count += len(y)
        return total / count

    def train_estimator(self, step: int, timer: Timer) -> None:
        if self.estimator is None:
            return
        with timer.part("estimator"):
            train_estimator_pass(
                self.estimator, self.noise_memory, self.estimator_opt, self.estimator_sched,  # type: ignore[arg-type]
                random.Random(seed_int(self.seed, step, _MEMORY)), self.config.estimator_batch,
            )  # fmt: skip

    def measured_objective(self, losses: Sequence[float]) -> float:
        return float((self.weights * torch.tensor(losses) ** 2).sum())

    # -- phases ---------------------------------------------------------------------------
    def step_epoch(self) -> WsrEpoch:
        """Run the next epoch (or the predictor warm-up) and advance ``phase`` / ``epoch``."""
        c = self.config
        timer = Timer(self.device, parts=COSTS)
        phase, epoch = self.phase, self.epoch
        offset = {"warmup": 0, "memory": c.warmup_epochs, "search": c.warmup_epochs + c.memory_epochs}
        step = offset.get(phase, 0) + epoch
        record = WsrEpoch(phase, epoch, "")
        if phase in ("warmup", "memory"):
            # the build-memory phase revisits the warm-up's samples in order (fresh ones past them)
            g = (
                gumbel_noise(self.seed, _WARM, epoch)
                if phase == "warmup" or epoch < c.warmup_epochs
                else (gumbel_noise(self.seed, _GUMBEL, step))
            )
            w = edge_weights(self.alphas, g, c.tau)
            genotype = derive_genotype(w[:CELL_EDGES], w[CELL_EDGES:])
            record.genotype = self.net.path_text(genotype)
            self.set_path(genotype, w)
            self.train_epoch(step, timer)
            if phase == "memory":
                clean = self.clean_loss("valid", step, timer)
                self.collect_noises(c.noise_batches, step, timer)
                adv = self.adversarial_losses(step, timer)
                record.measured = [clean, *adv]
                record.objective = self.measured_objective(record.measured)
                self.loss_memory.add(w, torch.tensor(record.measured))
                self.train_estimator(step, timer)
            limit = c.warmup_epochs if phase == "warmup" else c.memory_epochs
            self.epoch += 1
            if self.epoch >= limit:
                self.phase, self.epoch = ("memory", 0) if phase == "warmup" else ("predictor", 0)
        elif phase == "predictor":
            record.genotype = self.net.path_text(self.genotype())
            with timer.part("predictor"):
                train_predictor(
                    self.predictor, self.loss_memory, self.predictor_opt, c.predictor_warmup_passes,
                    random.Random(seed_int(self.seed, step, _MEMORY, 1)), c.predictor_batch,
                )  # fmt: skip
            self.phase, self.epoch = ("search", 0) if c.search_epochs else ("done", 0)
        elif phase == "search":
            g = gumbel_noise(self.seed, _GUMBEL, step)
            w = edge_weights(self.alphas, g, c.tau)
            genotype = derive_genotype(w[:CELL_EDGES], w[CELL_EDGES:])
            record.genotype = self.net.path_text(genotype)
            self.set_path(genotype, w)
            self.train_epoch(step, timer)
            self.collect_noises(c.noise_batches + 1, step, timer)
            adv = self.adversarial_losses(step, timer)
            self.train_estimator(step, timer)
            clean = self.clean_loss(c.search_clean_on, step, timer)
            record.measured = [clean, *adv]
            record.objective = self.measured_objective(record.measured)
            with timer.part("predictor"):
                self.predictor.eval()
                with torch.no_grad():
                    pred = self.predictor(w[None])[0]
                record.predicted = [float(v) for v in pred]
                record.predicted_objective = self.measured_objective(record.predicted)
                self.loss_memory.add(w, torch.tensor(record.measured))
                train_predictor(
                    self.predictor, self.loss_memory, self.predictor_opt, c.predictor_passes,
                    random.Random(seed_int(self.seed, step, _MEMORY, 1)), c.predictor_batch,
                )  # fmt: skip
                self.architect.step(self.predictor, g, c.tau)
            self.epoch += 1
            if self.epoch >= c.search_epochs:
                self.phase, self.epoch = "done", 0
        else:
            raise ConfigError(f"wsr phase {phase!r} has no epochs to run")
        record.cost = dict(timer.parts)
        self.records.append(record)
        return record

    def genotype(self) -> Genotype:
        """The DARTS genotype of ``softmax(alpha)`` (no Gumbel noise)."""
        w = edge_weights(self.alphas, None, self.config.tau)
        return derive_genotype(w[:CELL_EDGES], w[CELL_EDGES:])

    # -- checkpoints ------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "config": _config_dict(self.config),
            "seed": self.seed,
            "phase": self.phase,
            "epoch": self.epoch,
            "model": self.net.state_dict(),
            "sgd": self.sgd.state_dict(),
            "schedule": self.schedule.state_dict(),
            "alphas": [a.detach().cpu().clone() for a in self.alphas],
            "architect": self.architect.optimizer.state_dict(),
            "predictor": self.predictor.state_dict(),
            "predictor_opt": self.predictor_opt.state_dict(),
            "loss_memory": self.loss_memory.state_dict(),
            "noise_memory": _noise_state(self.noise_memory),
            "records": [dataclasses.asdict(r) for r in self.records],
            "torch_rng": torch.get_rng_state(),
        }
        if self.estimator is not None:
            state["estimator"] = self.estimator.state_dict()
            state["estimator_opt"] = self.estimator_opt.state_dict()
            state["estimator_sched"] = self.estimator_sched.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.phase, self.epoch = str(state["phase"]), int(state["epoch"])
        self.net.load_state_dict(state["model"])
        self.sgd.load_state_dict(state["sgd"])
        self.schedule.load_state_dict(state["schedule"])
        with torch.no_grad():
            for a, saved in zip(self.alphas, state["alphas"], strict=True):
                a.copy_(saved)
        self.architect.optimizer.load_state_dict(state["architect"])
        self.predictor.load_state_dict(state["predictor"])
        self.predictor_opt.load_state_dict(state["predictor_opt"])
        self.loss_memory.load_state_dict(state["loss_memory"])
        _load_noise(self.noise_memory, state["noise_memory"])
        self.records = [WsrEpoch(**r) for r in state["records"]]
        torch.set_rng_state(state["torch_rng"])
        if self.estimator is not None:
            self.estimator.load_state_dict(state["estimator"])
            self.estimator_opt.load_state_dict(state["estimator_opt"])
            self.estimator_sched.load_state_dict(state["estimator_sched"])

    def save(self) -> None:
        checkpoint.save(self.state_dict(), self.out / CHECKPOINT)


def _config_dict(config: WsrConfig) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(config).items()}


def load_records(out: str | Path) -> list[WsrEpoch]:
    """The epochs recorded in ``out``'s checkpoint (none when there is no checkpoint)."""
    path = Path(out) / CHECKPOINT
    if not path.is_file():
        return []
    return [WsrEpoch(**r) for r in checkpoint.load(path)["records"]]


def run_wsr(
    config: WsrConfig,
    data: ImageArrays,
    out: str | Path,
    *,
    seed: int = 1,
    device: str | torch.device = "cpu",
    resume: bool = False,
    progress: Callable[[WsrEpoch], None] | None = None,
    stop_after: int | None = None,
) -> WsrResult:
    """Run Wsr-NAS's search (spec B5) on ``data`` (its images in [0, 255] uint8, used as [0, 1]
    without normalisation, as the reference). After every epoch the whole state goes to
    ``out/wsr.pt`` (atomically); ``resume`` continues from it (refusing one of another
    configuration or seed), else the run starts afresh. ``progress(epoch)`` is called after
    each epoch is saved; ``stop_after`` ends this session after that many epochs (the
    predictor warm-up counts as one). Reference seed: 1."""
    config.check(data)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    dev = resolve_device(device)
    search = WsrSearch(config, data, out, seed, dev)
    path = out / CHECKPOINT
    if resume and path.is_file():
        state = checkpoint.load(path, map_location="cpu")  # load_state_dict moves weights and optimiser state
        if state.get("config") != _config_dict(config) or state.get("seed") != seed:
            raise ConfigError(
                f"{path} holds a Wsr-NAS run of another configuration or seed; use a new out folder"
            )
        search.load_state_dict(state)
    done = 0
    while search.phase != "done" and (stop_after is None or done < stop_after):
        record = search.step_epoch()
        search.save()
        done += 1
        if progress is not None:
            progress(record)
    alphas = (search.alphas[0].detach().cpu().clone(), search.alphas[1].detach().cpu().clone())
    return WsrResult(
        config, search.records, alphas, search.net.path_text(search.genotype()), search.net, search.phase
    )


__all__ = [
    "COSTS",
    "PHASES",
    "WsrConfig",
    "WsrEpoch",
    "WsrResult",
    "WsrSearch",
    "derive_genotype",
    "edge_weights",
    "gumbel_noise",
    "init_alphas",
    "load_records",
    "run_wsr",
]
