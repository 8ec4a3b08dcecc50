"""Supernet training on the common trainer: one random single path per step.

Each step draws its path once, from the step's generator (``StepContext.generator``, seeded
from ``(seed, epoch, step)``), *before* the recipe's loss runs, so the adversary and the loss
see the same sub-network; the loss is the recipe's registered one (clean, PGD-AT, TRADES,
Fast-AT). This is RobNets' robust one-shot training with path dropout (Guo et al., CVPR 2020,
Sec. 3.2) and Wsr-NAS's single-path supernet training (Cheng et al., AAAI 2023), i.e.
single-path one-shot (Guo et al., ECCV 2020). Everything else is :class:`robnas.train.Trainer`'s:
validation split, atomic checkpoints, exact resume, DDP (with ``find_unused_parameters=True``,
since the used parameters change every step), AMP and progress events.

Validation scores one path per epoch, drawn from ``(seed, epoch)``; with ``bn="recalibrate"``
its BN statistics are first re-estimated on a few training batches. Checkpoints record the
space and the build options (``meta["supernet"]``), so :func:`load_supernet` rebuilds the
supernet and refuses a checkpoint of another space or size.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from robnas.data import ImageArrays
from robnas.errors import ConfigError
from robnas.oneshot.supernet import Supernet, recalibrate_bn, supernet
from robnas.seeding import seed_int
from robnas.train import checkpoint, losses
from robnas.train.losses import StepContext, StepFn, StepOutput
from robnas.train.recipes import Recipe
from robnas.train.trainer import Trainer, TrainResult, TrainSettings

#: tags of the generators the path of a training step and of a validation pass are drawn from
PATH_TAG = 0x5A7
VALIDATION_TAG = 0x7A5
#: the prefix of the supernet's entries in a checkpoint's ``model`` state
STATE_PREFIX = "supernet."


class SinglePath(nn.Module):
    """A supernet seen as an ordinary network: ``forward(x)`` runs the path set last (or given
    here), e.g. for attacks or RobNets' FSP filter on inherited weights
    (``fsp_score(SinglePath(net, arch), x, x_adv)``)."""

    def __init__(self, net: Supernet, arch: Any = None) -> None:
        super().__init__()
        self.supernet = net
        self.arch: Any = None if arch is None else net.path(arch)

    def set_path(self, arch: Any) -> None:
        """Run ``arch`` (an architecture of the supernet's space, or its text) from now on."""
        self.arch = self.supernet.path(arch)

    def forward(self, x: Tensor) -> Tensor:
        if self.arch is None:
            raise ConfigError("no path is set on this supernet: call set_path(arch) first")
        return self.supernet(x, self.arch)


class SupernetTrainer(Trainer):
    """:class:`Trainer` for a supernet: a random path per step (:meth:`step_function`), one
    seeded path per validation pass (BN recalibrated first when ``net.bn == "recalibrate"``)."""

    def __init__(
        self,
        net: Supernet,
        data: ImageArrays,
        recipe: Recipe | str,
        out: str | Path,
        settings: TrainSettings | None = None,
        *,
        recalibration_batches: int = 4,
        **options: Any,
    ) -> None:
        self.single = SinglePath(net)
        self.recalibration_batches = int(recalibration_batches)
        options["find_unused_parameters"] = True
        super().__init__(self.single, data, recipe, out, settings, **options)

    @property
    def supernet(self) -> Supernet:
        return self.single.supernet

    def step_function(self) -> StepFn:
        """The recipe's loss, after drawing the step's path from ``ctx.generator(PATH_TAG)``."""
        loss = losses.get(self.recipe.loss)

        def step(model: nn.Module, x: Tensor, y: Tensor, ctx: StepContext) -> StepOutput:
            self.single.set_path(self.supernet.sample_path(ctx.generator(PATH_TAG)))
            return loss(model, x, y, ctx)

        return step

    def validate(self, epoch: int) -> tuple[float, float]:
        if not len(self.val_idx):
            return math.nan, math.nan
        gen = torch.Generator()
        gen.manual_seed(seed_int(self.seed, epoch, VALIDATION_TAG))
        path = self.supernet.sample_path(gen)
        self.single.set_path(path)
        if self.supernet.bn == "recalibrate":
            idx = np.asarray(self.train_idx[: self.recalibration_batches * self.local_batch])
            batches = [
                self.store_x[torch.from_numpy(chunk).to(self.device)].permute(0, 3, 1, 2).float().div(255.0)
                for chunk in np.array_split(idx, max(1, math.ceil(len(idx) / self.local_batch)))
            ]
            recalibrate_bn(self.supernet, path, batches, transform=self.wrapped.normalize)
        return super().validate(epoch)


def _checkpoint_supernet(state: dict[str, Any], path: Path) -> tuple[str, dict[str, Any]]:
    entry = state.get("meta", {}).get("supernet")
    if not isinstance(entry, dict) or "space" not in entry:
        raise ConfigError(f"{path} is not a supernet checkpoint (its metadata has no 'supernet' entry)")
    return str(entry["space"]), dict(entry.get("options", {}))


def _check_same(path: Path, found: tuple[str, dict[str, Any]], space: str, options: dict[str, Any]) -> None:
    found_space, found_options = found
    if found_space != space:
        raise ConfigError(f"{path} holds a {found_space} supernet, not a {space} one")
    differ = {k: (found_options.get(k), v) for k, v in options.items() if found_options.get(k) != v}
    if differ:
        text = ", ".join(f"{k}={old!r} (asked {new!r})" for k, (old, new) in differ.items())
        raise ConfigError(f"{path} holds a {space} supernet of another size: {text}")


def load_supernet(
    path: str | Path, space: str | None = None, *, map_location: str | torch.device = "cpu", **options: Any
) -> Supernet:
    """The supernet saved in a checkpoint of :func:`train_supernet` (``last.pt`` or ``best.pt``),
    rebuilt from the space and build options its metadata records. ``space`` and ``options``,
    when given, must match the checkpoint's (else one :class:`ConfigError` line). Returned in
    eval mode; it takes inputs as it was trained (see ``meta["normalize"]``)."""
    path = Path(path)
    state = checkpoint.load(path, map_location=map_location)
    found = _checkpoint_supernet(state, path)
    _check_same(path, found, space or found[0], options)
    net = supernet(found[0], **found[1])
    model_state = {k[len(STATE_PREFIX) :]: v for k, v in state["model"].items() if k.startswith(STATE_PREFIX)}
    try:
        net.load_state_dict(model_state)
    except RuntimeError as exc:
        raise ConfigError(
            f"{path}: the weights do not fit the {found[0]} supernet it records ({exc})"
        ) from None
    return net.to(map_location).eval()


def train_supernet(
    space: str,
    data: ImageArrays,
    recipe: Recipe | str,
    out: str | Path,
    settings: TrainSettings | None = None,
    *,
    meta: dict[str, Any] | None = None,
    recalibration_batches: int = 4,
    **options: Any,
) -> TrainResult:
    """Train the ``space`` supernet (:func:`robnas.oneshot.supernet`) on ``data`` with ``recipe``,
    one random single path per step. ``options`` naming a field of
    :class:`robnas.train.TrainSettings` replace that field of ``settings`` (epochs, seed,
    resume, ...); the others are the supernet's build options (``num_classes`` defaults to the
    data's). Writes ``last.pt``, ``best.pt``, ``meta.json`` and ``log.csv`` under ``out`` as
    :func:`robnas.train.fit` does; ``resume`` continues from ``out/last.pt`` exactly (refusing
    one of another space or size). The result's ``model`` is the trained supernet."""
    names = {f.name for f in dataclasses.fields(TrainSettings)}
    settings = TrainSettings.of(settings, **{k: v for k, v in options.items() if k in names})
    build_options = {k: v for k, v in options.items() if k not in names}
    build_options.setdefault("num_classes", data.num_classes)
    torch.manual_seed(settings.seed)
    net = supernet(space, **build_options)
    build_options = net.build_options
    last = Path(out) / "last.pt"
    if settings.resume and last.is_file():
        _check_same(last, _checkpoint_supernet(checkpoint.load(last), last), space, build_options)
    trainer = SupernetTrainer(
        net, data, recipe, out, settings, recalibration_batches=recalibration_batches,
        meta={**(meta or {}), "supernet": {"space": space, "options": build_options}},
    )  # fmt: skip
    result = trainer.run(trainer.step_function())
    return dataclasses.replace(result, model=net)


__all__ = ["SinglePath", "SupernetTrainer", "load_supernet", "train_supernet"]
