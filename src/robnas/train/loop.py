"""``fit``: train a network with a recipe, as a short composition of :class:`Trainer` pieces.

The machinery (set-up, DDP, AMP, data order, validation, log, checkpoints, exact resume) lives
in :mod:`robnas.train.trainer`; what one step computes is the recipe's loss, a function of
:data:`robnas.train.losses.LOSSES`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from robnas.data import ImageArrays
from robnas.models import NormalizedNet, load_trained
from robnas.train import losses
from robnas.train.distributed import DistInfo
from robnas.train.recipes import Recipe
from robnas.train.trainer import LOG_FIELDS, Progress, Trainer, TrainResult, evaluate_split, split_indices


def fit(
    model: nn.Module,
    data: ImageArrays,
    recipe: Recipe | str,
    out: str | Path,
    *,
    epochs: int | None = None,
    batch_size: int | None = None,
    seed: int = 0,
    val_fraction: float = 0.1,
    resume: bool = False,
    stop_after: int | None = None,
    device: str = "auto",
    amp: bool | None = None,
    channels_last: bool | None = None,
    progress: Progress | bool | None = None,
    tensorboard: bool = False,
    meta: dict[str, Any] | None = None,
    dist_info: DistInfo | None = None,
    overrides: dict[str, Any] | None = None,
) -> TrainResult:
    """Train ``model`` on ``data`` with ``recipe``; write ``last.pt``, ``best.pt``, ``meta.json`` and
    ``log.csv`` under ``out``.

    ``model`` takes normalised images when ``recipe.normalize`` (it is wrapped with
    :class:`robnas.models.NormalizedNet` using ``data.mean_std``), raw [0, 1] images otherwise.
    ``epochs`` and ``batch_size`` (global) default to the recipe's. ``stop_after`` ends the run
    after that many epochs without changing the schedule, which stays defined by ``epochs``;
    ``resume`` continues from ``out/last.pt`` (and may extend a finished run to more epochs).
    AMP (bfloat16 where supported, else float16 with a GradScaler) and channels_last are on
    by default on CUDA. Under ``torchrun`` pass ``dist_info`` from
    :func:`robnas.train.distributed.setup`. ``progress(event)`` is called with the events of
    :data:`robnas.train.trainer.Progress` (``True``: epoch lines on the ``robnas.train`` logger).
    """
    trainer = Trainer(
        model, data, recipe, out, epochs=epochs, batch_size=batch_size, seed=seed,
        val_fraction=val_fraction, device=device, amp=amp, channels_last=channels_last,
        progress=progress, tensorboard=tensorboard, meta=meta, dist_info=dist_info, overrides=overrides,
    )  # fmt: skip
    trainer.start(resume=resume)
    return trainer.train(losses.get(trainer.recipe.loss), stop_after=stop_after)


__all__ = [
    "LOG_FIELDS",
    "NormalizedNet",
    "TrainResult",
    "evaluate_split",
    "fit",
    "load_trained",
    "split_indices",
]
