"""One-shot objectives (RobNets, Guo et al., CVPR 2020, Sec. 3.2): ``oneshot:TARGET`` scores a
candidate with the weights it inherits from a trained supernet, ``oneshot-finetune:TARGET``
after a short PGD-AT fine-tuning. The supernet, its images and the scoring live in
:mod:`robnas.oneshot.robnets.objective`, which documents the targets and options.
"""

from __future__ import annotations

import hashlib
import math
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from robnas.errors import ConfigError
from robnas.objectives.base import OBJECTIVES, Objective, ObjectiveContext
from robnas.oneshot.robnets.objective import RECIPE, OneShotSource, accuracy, parse_target
from robnas.spaces.base import SearchSpace


def source(context: ObjectiveContext, space: SearchSpace) -> OneShotSource:
    """The context's :class:`OneShotSource`, built on first use (the supernet is loaded once)."""
    found = context.shared("oneshot", lambda: _source(context, space))
    if found.net.space_name != space.name:
        context.forget("oneshot")
        found = context.shared("oneshot", lambda: _source(context, space))
    return found


def _source(context: ObjectiveContext, space: SearchSpace) -> OneShotSource:
    return OneShotSource(
        context.supernet, space.name, context.images(), context.data, context.device, context.seed, context.oneshot,
        data_id=context.data_id(),
    )  # fmt: skip


class OneShotObjective(Objective):
    """``oneshot:TARGET``: accuracy of the candidate's inherited, BN-recalibrated weights."""

    def __init__(self, target: str, space: SearchSpace, context: ObjectiveContext) -> None:
        self.target = parse_target(target)
        self.context = context
        self.source = source(context, space)  # fail now on a missing or mismatched supernet
        super().__init__(space, f"oneshot:{self.target.text}|{self.source.key}")

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
            f"oneshot-finetune:{self.target.text}|epochs={self.epochs}|images={self.images}"
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


OBJECTIVES.register(
    "oneshot", OneShotObjective, paper="RobNets (Guo et al., CVPR 2020), inherited weights",
    needs_data=lambda arg, scores: [f"oneshot:{arg.strip()}"],
)  # fmt: skip
OBJECTIVES.register(
    "oneshot-finetune", FinetuneObjective, paper="RobNets (Guo et al., CVPR 2020), fine-tuned candidates",
    needs_data=lambda arg, scores: [f"oneshot-finetune:{arg.strip()}"],
)  # fmt: skip

__all__ = ["FinetuneObjective", "OneShotObjective", "source"]
