"""Training losses by name: one training step's forward pass and loss, for a recipe.

A loss is a function ``(model, x, y, ctx) -> StepOutput`` registered in :data:`LOSSES`; a
recipe names it (``Recipe.loss``). ``model`` is the network that takes [0, 1] images (the
:class:`robnas.models.NormalizedNet`, never the DDP wrapper): the adversary runs on it and the
loss sets its train/eval modes. The forward pass whose gradient is taken goes through
``ctx.forward`` (the DDP wrapper under torchrun, else ``model``). ``ctx`` also gives the recipe,
the step's position (``seed``, ``epoch``, ``step``) and :meth:`StepContext.random_start`,
the seeded random start of the adversary.

Registered: ``ce`` (clean cross-entropy), ``pgd`` (Madry et al. 2018), ``fgsm`` (the same code
path with one step, "fast" adversarial training, Wong et al. 2020) and ``trades`` (Zhang et al.
2019). A new loss::

    @LOSSES.register("my-loss", adversarial=True)
    def my_loss(model, x, y, ctx):
        x_adv = adversary.pgd(model, x, y, ctx.recipe.eps, ctx.recipe.step_size, 1,
                              ctx.random_start("uniform", ctx.recipe.eps, x))
        model.train()
        out = ctx.forward(x_adv)
        return StepOutput(ctx.cross_entropy(out, y), adv_logits=adversary.logits_of(out))

and ``Recipe(..., loss="my-loss")``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from robnas.registry import Registry
from robnas.seeding import seed_int
from robnas.train import adversary
from robnas.train.distributed import DistInfo

if TYPE_CHECKING:
    from robnas.train.recipes import Recipe


def global_start(
    kind: str, eps: float, x: Tensor, info: DistInfo, seed: int, epoch: int, step: int
) -> Tensor | None:
    """The random start of this rank's share of the global batch, drawn for the whole batch.

    ``kind``: ``uniform`` in [-eps, eps], ``normal`` (TRADES: 0.001 * N(0, 1)) or ``none``.
    """
    if kind == "none":
        return None
    gen = torch.Generator(device=x.device)
    gen.manual_seed(seed_int(seed, epoch, step, 0x57A))
    shape = (x.shape[0] * info.world_size, *x.shape[1:])
    if kind == "uniform":
        full = torch.rand(shape, generator=gen, device=x.device, dtype=x.dtype).mul_(2 * eps).sub_(eps)
    else:  # TRADES: 0.001 * N(0, 1)
        full = torch.randn(shape, generator=gen, device=x.device, dtype=x.dtype).mul_(0.001)
    return full[info.rank :: info.world_size]


@dataclass
class StepContext:
    """What a step function knows besides (model, x, y): the recipe, where the step is, and the
    forward pass to take gradients through (``forward``: the DDP wrapper or the model)."""

    recipe: Recipe
    forward: nn.Module
    info: DistInfo
    seed: int
    epoch: int
    step: int

    def random_start(self, kind: str, eps: float, x: Tensor) -> Tensor | None:
        """The seeded random start of this step (same on resume and across ranks)."""
        return global_start(kind, eps, x, self.info, self.seed, self.epoch, self.step)

    def generator(self, tag: int, device: torch.device | str = "cpu") -> torch.Generator:
        """A generator seeded from (seed, epoch, step, tag): for per-step random choices such as a
        supernet's sub-network, reproducible on resume."""
        gen = torch.Generator(device=device)
        gen.manual_seed(seed_int(self.seed, self.epoch, self.step, tag))
        return gen

    def cross_entropy(self, out: Any, y: Tensor) -> Tensor:
        """The recipe's cross-entropy (label smoothing) plus its auxiliary-head term when ``out``
        is ``(logits, aux_logits)``."""
        r = self.recipe
        loss = F.cross_entropy(adversary.logits_of(out).float(), y, label_smoothing=r.label_smoothing)
        if r.auxiliary_weight and isinstance(out, (tuple, list)) and len(out) > 1 and out[1] is not None:
            loss = loss + r.auxiliary_weight * F.cross_entropy(out[1].float(), y)
        return loss


@dataclass
class StepOutput:
    """A step's loss and the logits it saw: ``clean_logits`` on the clean batch and, for
    adversarial losses, ``adv_logits`` on the adversarial one (used for the training accuracies).

    ``optimized=True`` says the step function already ran backward and the optimiser step(s)
    itself (e.g. several optimisers); the trainer then only records the loss."""

    loss: Tensor
    clean_logits: Tensor | None = None
    adv_logits: Tensor | None = None
    optimized: bool = False


StepFn = Callable[[nn.Module, Tensor, Tensor, StepContext], StepOutput]
LOSSES: Registry[StepFn] = Registry("training loss")


def get(name: str) -> StepFn:
    """The loss registered as ``name`` (UnknownName with suggestions otherwise)."""
    return LOSSES.get(name)


def is_adversarial(name: str) -> bool:
    """Whether the loss ``name`` trains on adversarial examples (robust accuracies are logged)."""
    return bool(LOSSES.meta(name).get("adversarial", False))


@LOSSES.register("ce", adversarial=False, source="clean cross-entropy")
def clean_loss(model: nn.Module, x: Tensor, y: Tensor, ctx: StepContext) -> StepOutput:
    """Cross-entropy on the clean batch, model in train mode."""
    model.train()
    out = ctx.forward(x)
    return StepOutput(ctx.cross_entropy(out, y), clean_logits=adversary.logits_of(out))


def pgd_loss(model: nn.Module, x: Tensor, y: Tensor, ctx: StepContext) -> StepOutput:
    """Madry PGD adversarial training: CE on PGD examples made with BN in ``recipe.attack_bn``
    mode. The clean accuracy comes from a no-grad forward in ``recipe.clean_bn_update`` mode
    (train mode also updates BN statistics, CRoZe's quirk)."""
    r = ctx.recipe
    start = ctx.random_start(r.random_start, r.eps, x)
    model.train(r.attack_bn == "train")
    x_adv = adversary.pgd(model, x, y, r.eps, r.step_size, r.steps, start)
    model.train(r.clean_bn_update)
    with torch.no_grad():
        clean_logits = adversary.logits_of(model(x))
    model.train()
    out = ctx.forward(x_adv)
    return StepOutput(ctx.cross_entropy(out, y), clean_logits=clean_logits, adv_logits=adversary.logits_of(out))


LOSSES.register("pgd", pgd_loss, adversarial=True, source="Madry et al., ICLR 2018")
LOSSES.register("fgsm", pgd_loss, adversarial=True, source="Wong et al., ICLR 2020 (PGD code path, one step)")


@LOSSES.register("trades", adversarial=True, source="Zhang et al., ICML 2019")
def trades_loss(model: nn.Module, x: Tensor, y: Tensor, ctx: StepContext) -> StepOutput:
    """TRADES: CE(f(x), y) + beta KL(f(x) || f(x_adv)), the KL maximised from a small random start."""
    r = ctx.recipe
    start = ctx.random_start(r.random_start, r.eps, x)
    model.train(r.attack_bn == "train")
    if start is None:
        start = torch.zeros_like(x)
    x_adv = adversary.trades(model, x, r.eps, r.step_size, r.steps, start)
    model.train()
    out_clean = ctx.forward(x)
    out_adv = ctx.forward(x_adv)
    clean_logits, adv_logits = adversary.logits_of(out_clean), adversary.logits_of(out_adv)
    loss = adversary.trades_loss(clean_logits, adv_logits, y, r.beta)
    if r.auxiliary_weight and isinstance(out_clean, (tuple, list)) and len(out_clean) > 1:
        loss = loss + r.auxiliary_weight * F.cross_entropy(out_clean[1].float(), y)
    return StepOutput(loss, clean_logits=clean_logits, adv_logits=adv_logits)


__all__ = [
    "LOSSES",
    "StepContext",
    "StepFn",
    "StepOutput",
    "clean_loss",
    "get",
    "global_start",
    "is_adversarial",
    "pgd_loss",
    "trades_loss",
]
