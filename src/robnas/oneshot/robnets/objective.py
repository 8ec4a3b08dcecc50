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

TARGET is ``clean``, ``fgsm@EPS`` or ``pgd@EPS`` in the grammar of :mod:`robnas.targets` (EPS
in 1/255; ``pgd@8`` is robnas's PGD-10 with steps of 2/255 as everywhere else, RobNets' own
evaluation is ``pgd@8:steps=20``). The supernet is ``context.supernet`` (a checkpoint of
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

from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from robnas import targets
from robnas.data import ImageArrays
from robnas.errors import ConfigError, UnknownName
from robnas.fingerprint import file_digest
from robnas.targets import Target

#: the fine-tuning recipe (RobNets fine-tunes candidates with PGD-AT)
RECIPE = "pgd-at"
#: the attacks a candidate is scored under (targets of :mod:`robnas.targets`)
TARGET_ATTACKS = ("fgsm", "pgd")
TARGET_FORMS = "clean, fgsm@EPS or pgd@EPS[:KEY=VALUE,...] (EPS in 1/255, e.g. pgd@8, pgd@8:steps=20)"


def parse_target(text: str) -> Target:
    """``clean``, ``fgsm@8``, ``pgd@8`` or ``pgd@8:steps=20`` as a :class:`robnas.targets.Target`
    (the one grammar: ``pgd@8`` is :mod:`robnas.attacks`'s PGD-10; RobNets' PGD-20 is
    ``pgd@8:steps=20``); anything else raises UnknownName."""
    from robnas import attacks

    try:
        target = targets.parse(text, "one-shot target")
    except UnknownName as exc:
        raise UnknownName(f"{exc}; expected {TARGET_FORMS}") from None
    if target.name == "clean" and target.level is None and not target.params:
        return target
    if target.name not in TARGET_ATTACKS or target.level is None:
        raise UnknownName(f"one-shot target {text.strip()!r}: expected {TARGET_FORMS}")
    attacks.validate_params(target.name, target.attack_params())
    return target


def accuracy(model: nn.Module, x: Tensor, y: Tensor, target: Target, batch_size: int = 64) -> float:
    """Accuracy (fraction) of ``model`` (taking [0, 1] images) on ``(x, y)`` under ``target``."""
    from robnas import attacks

    device = next(model.parameters()).device
    attack = None if target.name == "clean" else attacks.get(target.name, model, **target.attack_params())
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

    def __init__(
        self,
        supernet: str | Path | None,
        space: str,
        images: ImageArrays,
        data: str,
        device: str = "cpu",
        seed: int = 0,
        options: dict[str, Any] | None = None,
        data_id: str | None = None,
    ) -> None:
        from robnas.models import NormalizedNet
        from robnas.oneshot.training import load_supernet
        from robnas.runtime import resolve_device
        from robnas.train import checkpoint, split_indices

        if supernet is None:
            raise ConfigError("one-shot objectives need a trained supernet checkpoint (--supernet PATH)")
        path = Path(supernet)
        if not path.is_file():
            raise ConfigError(
                f"--supernet {path}: checkpoint not found (the last.pt of robnas supernet train)"
            )
        self.device = resolve_device(device)
        self.net = load_supernet(path, space, map_location=self.device)
        meta = checkpoint.load(path, map_location="cpu").get("meta", {})
        norm = meta.get("normalize")
        self.mean_std = (tuple(norm["mean"]), tuple(norm["std"])) if norm else None
        self.wrapper = NormalizedNet(nn.Identity(), *(self.mean_std or (None, None))).to(self.device)
        self.images = images
        if self.images.num_classes != self.net.num_classes:
            raise ConfigError(
                f"{path} classifies {self.net.num_classes} classes, the data {data} has "
                f"{self.images.num_classes}"
            )
        opts = dict(options or {})
        val_fraction = float(meta.get("val_fraction") or 0.1)
        seed = int(meta.get("seed", seed))
        self.train_idx, val_idx = split_indices(len(self.images), val_fraction, seed)
        if len(val_idx) == 0:
            raise ConfigError(f"no validation images in {data} ({len(self.images)} images)")
        self.batch_size = int(opts.get("batch_size", 64))
        val_idx = val_idx[: int(opts.get("eval_images", 500))]
        self.val_x, self.val_y = self.images.tensors(val_idx)
        n_recal = int(opts.get("recalibration_batches", 4)) * self.batch_size
        x, _ = self.images.tensors(self.train_idx[:n_recal])
        self.recalibration = [x[i : i + self.batch_size] for i in range(0, len(x), self.batch_size)]
        self.key = (
            f"supernet={path.name}#{file_digest(path)[:16]}|data={data_id or data}"
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


__all__ = [
    "OneShotSource",
    "accuracy",
    "parse_target",
]
