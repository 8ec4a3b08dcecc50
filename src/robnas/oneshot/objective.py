"""One-shot objectives: a candidate scored with weights inherited from a trained supernet.

RobNets (Guo et al., "When NAS Meets Robustness", CVPR 2020, Sec. 3.2) trains one robust
supernet, then scores sampled architectures with the supernet's weights, after a short PGD-AT
fine-tuning. Two objectives follow (registered in :data:`robnas.objectives.OBJECTIVES`):

* ``oneshot:TARGET``: the candidate's inherited weights as they are, its BN statistics first
  re-estimated on a few training batches (:func:`robnas.oneshot.recalibrate_bn`), then its
  accuracy (a fraction) on a fixed validation set. Cheap; usable by every strategy.
* ``oneshot-finetune:TARGET``: the same candidate fine-tuned for a few epochs of PGD-AT
  (:func:`robnas.train.fit`, recipe ``pgd-at``) before it is scored: RobNets' own score (the
  ``robnets`` strategy evaluates it). Each candidate trains in its own folder under
  ``context.oneshot["workdir"]``, resumed from its ``last.pt`` when a run was stopped.

TARGET is ``clean``, ``fgsm@EPS`` or ``pgd@EPS`` (EPS in 1/255; PGD: 20 steps of 2/255, as
RobNets evaluates). The supernet is ``context.supernet`` (a checkpoint of
:func:`robnas.oneshot.train_supernet`), loaded once per context; it must be of the searched
space. The validation images are the supernet's own held-out split of ``context.data``'s
training images (its checkpoint's seed and ``val_fraction``; never the test split), the first
``eval_images`` of them; recalibration and fine-tuning images come from the rest.

``context.oneshot`` options: ``eval_images`` (default 500), ``recalibration_batches``
(default 4), ``batch_size`` (recalibration and evaluation batches, default 64),
``finetune_epochs`` (default 3), ``finetune_images`` (default: all training images),
``finetune_batch_size`` (default: the recipe's), ``workdir`` (fine-tuning folders; default a
temporary folder per candidate, which does not resume).
"""

from __future__ import annotations

import hashlib
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from robnas.errors import ConfigError, UnknownName
from robnas.fingerprint import file_digest
from robnas.objectives import Objective, ObjectiveContext
from robnas.spaces.base import SearchSpace
from robnas.units import from_255

#: RobNets' PGD evaluation: 20 steps of 2/255 (Guo et al., CVPR 2020, Sec. 4.1)
PGD_STEPS = 20
PGD_STEP_SIZE = 2 / 255
#: the fine-tuning recipe (RobNets fine-tunes candidates with PGD-AT)
RECIPE = "pgd-at"
TARGET_FORMS = "clean, fgsm@EPS or pgd@EPS (EPS in 1/255, e.g. pgd@8)"


@dataclass(frozen=True)
class Target:
    """What a candidate is scored on: clean images, or an attack with budget ``eps`` (in [0, 1])."""

    name: str
    attack: str | None = None
    eps: float = 0.0


def parse_target(text: str) -> Target:
    """``clean``, ``fgsm@8`` or ``pgd@8`` as a :class:`Target`; anything else raises UnknownName."""
    name = text.strip()
    if name == "clean":
        return Target("clean")
    attack, sep, eps = name.partition("@")
    try:
        value = float(eps)
    except ValueError:
        value = math.nan
    if not sep or attack not in ("fgsm", "pgd") or not (value > 0 and math.isfinite(value)):
        raise UnknownName(f"one-shot target {name!r}: expected {TARGET_FORMS}")
    return Target(f"{attack}@{eps}", attack, from_255("eps", value))


def accuracy(model: nn.Module, x: Tensor, y: Tensor, target: Target, batch_size: int = 64) -> float:
    """Accuracy (fraction) of ``model`` (taking [0, 1] images) on ``(x, y)`` under ``target``."""
    from robnas import attacks

    device = next(model.parameters()).device
    attack = None
    if target.attack == "pgd":
        attack = attacks.get("pgd", model, eps=target.eps, alpha=PGD_STEP_SIZE, steps=PGD_STEPS)
    elif target.attack == "fgsm":
        attack = attacks.get("fgsm", model, eps=target.eps)
    was_training = model.training
    model.eval()
    correct = 0
    try:
        for i in range(0, len(x), batch_size):
            xb, yb = x[i : i + batch_size].to(device), y[i : i + batch_size].to(device)
            if attack is not None:
                xb = attack(xb, yb)
            with torch.no_grad():
                correct += int((model(xb).argmax(1) == yb).sum())
    finally:
        model.train(was_training)
    return correct / max(1, len(x))


class OneShotSource:
    """A trained supernet and the images it is scored on (one per context, see :func:`source`).

    ``val_x, val_y``: the fixed validation images; ``train_idx``: the remaining training
    images; ``normalize``: the input normalisation the supernet was trained behind.
    """

    def __init__(self, context: ObjectiveContext, space: SearchSpace) -> None:
        from robnas.models import NormalizedNet
        from robnas.oneshot.training import load_supernet
        from robnas.runtime import resolve_device
        from robnas.train import checkpoint, split_indices

        if context.supernet is None:
            raise ConfigError("one-shot objectives need a trained supernet checkpoint (--supernet PATH)")
        path = Path(context.supernet)
        if not path.is_file():
            raise ConfigError(
                f"--supernet {path}: checkpoint not found (the last.pt of robnas supernet train)"
            )
        self.device = resolve_device(context.device)
        self.net = load_supernet(path, space.name, map_location=self.device)
        meta = checkpoint.load(path, map_location="cpu").get("meta", {})
        norm = meta.get("normalize")
        self.mean_std = (tuple(norm["mean"]), tuple(norm["std"])) if norm else None
        self.wrapper = NormalizedNet(nn.Identity(), *(self.mean_std or (None, None))).to(self.device)
        self.images = context.images()
        if self.images.num_classes != self.net.num_classes:
            raise ConfigError(
                f"{path} classifies {self.net.num_classes} classes, the data {context.data} has "
                f"{self.images.num_classes}"
            )
        opts = dict(context.oneshot)
        val_fraction = float(meta.get("val_fraction") or 0.1)
        seed = int(meta.get("seed", context.seed))
        self.train_idx, val_idx = split_indices(len(self.images), val_fraction, seed)
        if len(val_idx) == 0:
            raise ConfigError(f"no validation images in {context.data} ({len(self.images)} images)")
        self.batch_size = int(opts.get("batch_size", 64))
        val_idx = val_idx[: int(opts.get("eval_images", 500))]
        self.val_x, self.val_y = self.images.tensors(val_idx)
        n_recal = int(opts.get("recalibration_batches", 4)) * self.batch_size
        x, _ = self.images.tensors(self.train_idx[:n_recal])
        self.recalibration = [x[i : i + self.batch_size] for i in range(0, len(x), self.batch_size)]
        self.key = (
            f"supernet={path.name}#{file_digest(path)[:16]}|data={context.data_id()}"
            f"|val={len(val_idx)}|recal={n_recal}"
        )

    def normalize(self, x: Tensor) -> Tensor:
        """``x`` ([0, 1] images) as the supernet takes them."""
        return self.wrapper.normalize(x)

    def recalibrate(self, arch: Any) -> None:
        """Re-estimate the BN statistics of path ``arch`` on the recalibration batches."""
        from robnas.oneshot.supernet import recalibrate_bn

        recalibrate_bn(self.net, arch, self.recalibration, transform=self.normalize)

    def candidate(self, arch: Any) -> nn.Module:
        """The standalone network of ``arch`` with inherited weights and recalibrated BN,
        behind the supernet's normalisation (takes [0, 1] images), in eval mode."""
        from robnas.models import normalized

        self.recalibrate(arch)
        mean, std = self.mean_std or (None, None)
        return normalized(self.net.subnet(arch), mean, std).to(self.device).eval()


def source(context: ObjectiveContext, space: SearchSpace) -> OneShotSource:
    """The context's :class:`OneShotSource`, built on first use (the supernet is loaded once)."""
    found = context._cache.get("oneshot")
    if found is None or found.net.space_name != space.name:
        found = context._cache["oneshot"] = OneShotSource(context, space)
    return found


class OneShotObjective(Objective):
    """``oneshot:TARGET``: accuracy of the candidate's inherited, BN-recalibrated weights."""

    def __init__(self, target: str, space: SearchSpace, context: ObjectiveContext) -> None:
        self.target = parse_target(target)
        self.context = context
        self.source = source(context, space)  # fail now on a missing or mismatched supernet
        super().__init__(space, f"oneshot:{self.target.name}|{self.source.key}")

    @property
    def uses_cuda(self) -> bool:
        return self.source.device.type == "cuda"

    def _compute(self, arch: Any) -> tuple[float, float]:
        model = self.source.candidate(arch)
        return accuracy(
            model, self.source.val_x, self.source.val_y, self.target, self.source.batch_size
        ), math.nan


class FinetuneObjective(OneShotObjective):
    """``oneshot-finetune:TARGET``: RobNets' score, the candidate's accuracy after fine-tuning
    its inherited weights for ``finetune_epochs`` of PGD-AT (Guo et al., CVPR 2020, Sec. 3.2)."""

    def __init__(self, target: str, space: SearchSpace, context: ObjectiveContext) -> None:
        super().__init__(target, space, context)
        opts = dict(context.oneshot)
        self.epochs = int(opts.get("finetune_epochs", 3))
        images = opts.get("finetune_images")
        self.images = None if images is None else int(images)
        self.train_batch = opts.get("finetune_batch_size")
        self.workdir = opts.get("workdir")
        if self.epochs < 1:
            raise ConfigError(f"finetune_epochs must be >= 1, got {self.epochs}")
        if self.images is not None and self.images < 1:
            raise ConfigError(f"finetune_images must be >= 1, got {self.images}")
        from robnas import train

        mean_std = self.source.mean_std
        wanted = self.source.images.mean_std if train.get(RECIPE).normalize else None
        if mean_std != (None if wanted is None else (tuple(wanted[0]), tuple(wanted[1]))):
            raise ConfigError(
                f"{context.supernet} was trained on inputs normalised with {mean_std}; {RECIPE} "
                f"fine-tuning on {context.data} would normalise with {wanted}"
            )
        self.key = (
            f"oneshot-finetune:{self.target.name}|epochs={self.epochs}|images={self.images}"
            f"|bs={self.train_batch}|seed={context.seed}|{self.source.key}"
        )

    def folder(self, arch: Any) -> Path | None:
        """The fine-tuning folder of ``arch`` under ``workdir`` (None without one)."""
        if self.workdir is None:
            return None
        text = self.space.canonical_string(arch)
        digest = hashlib.blake2b(f"{self.key}\n{text}".encode(), digest_size=8).hexdigest()
        return Path(self.workdir) / f"candidate-{digest}"

    def _compute(self, arch: Any) -> tuple[float, float]:
        from robnas import train
        from robnas.models import normalized

        src = self.source
        src.recalibrate(arch)
        sub = src.net.subnet(arch)
        idx = src.train_idx if self.images is None else src.train_idx[: self.images]
        data = src.images.subset(np.asarray(idx))
        folder = self.folder(arch)
        with tempfile.TemporaryDirectory(prefix="robnas-finetune-") as tmp:
            out = folder if folder is not None else Path(tmp)
            train.fit(
                sub, data, RECIPE, out, epochs=self.epochs, batch_size=self.train_batch,
                seed=self.context.seed, val_fraction=0.0, resume=folder is not None,
                device=self.context.device,
            )  # fmt: skip
        mean, std = src.mean_std or (None, None)
        model = normalized(sub, mean, std).to(src.device).eval()
        return accuracy(model, src.val_x, src.val_y, self.target, src.batch_size), math.nan


__all__ = [
    "FinetuneObjective",
    "OneShotObjective",
    "OneShotSource",
    "Target",
    "accuracy",
    "parse_target",
    "source",
]
