"""``train:RECIPE``: validation accuracy after a short training; see :mod:`robnas.objectives`.
"""

from __future__ import annotations

import math
from typing import Any

from robnas.errors import ConfigError
from robnas.objectives.base import OBJECTIVES, Objective, ObjectiveContext
from robnas.spaces.base import SearchSpace


class TrainingObjective(Objective):
    """Validation accuracy after a short training with a :mod:`robnas.train` recipe.

    ``context.train`` options: ``epochs`` (default 1), ``metric`` (``clean``, or ``robust``:
    the recipe's PGD validation accuracy, adversarial recipes only), ``batch_size``,
    ``val_fraction`` (default 0.1). The network is initialised from ``stable_seed(seed, arch)``;
    the value is the last epoch's validation accuracy (fraction) on ``context.data``.
    """

    def __init__(self, recipe: str, space: SearchSpace, context: ObjectiveContext) -> None:
        from robnas import train

        self.recipe = train.get(recipe.strip())
        self.context = context
        opts = dict(context.train)
        self.epochs = int(opts.get("epochs", 1))
        self.metric = str(opts.get("metric", "clean"))
        self.batch_size = opts.get("batch_size")
        self.val_fraction = float(opts.get("val_fraction", 0.1))
        if self.epochs < 1:
            raise ConfigError(f"training objectives need epochs >= 1, got {self.epochs}")
        if self.metric not in ("clean", "robust"):
            raise ConfigError(f"training objective metric must be clean or robust, got {self.metric!r}")
        if self.metric == "robust" and not self.recipe.adversarial:
            raise ConfigError(
                f"recipe {self.recipe.name!r} is not adversarial; it has no robust validation accuracy"
            )
        super().__init__(
            space,
            f"train:{self.recipe.name}|epochs={self.epochs}|{self.metric}|data={context.data_id()}|seed={context.seed}"
            f"|bs={self.batch_size}|val={self.val_fraction}{context.model_tag()}",
        )

    @property
    def uses_cuda(self) -> bool:
        from robnas.runtime import resolve_device

        return resolve_device(self.context.device).type == "cuda"

    def prepare(self) -> None:
        self.context.images()

    def _compute(self, arch: Any) -> tuple[float, float]:
        import tempfile

        import torch

        from robnas import train
        from robnas.seeding import stable_seed

        images = self.context.images()
        text = self.space.format(arch)
        torch.manual_seed(stable_seed(self.context.seed, text))
        model = self.context.build(self.space, arch, images.num_classes)
        with tempfile.TemporaryDirectory(prefix="robnas-train-objective-") as out:
            result = train.fit(
                model,
                images,
                self.recipe,
                out,
                epochs=self.epochs,
                batch_size=self.batch_size,
                seed=self.context.seed,
                val_fraction=self.val_fraction,
                device=self.context.device,
            )
        last = result.history[-1]
        return float(last["val_clean_acc" if self.metric == "clean" else "val_robust_acc"]), math.nan


OBJECTIVES.register("train", TrainingObjective, needs_data=lambda arg, scores: [f"train:{arg.strip()}"])

__all__ = ["TrainingObjective"]
