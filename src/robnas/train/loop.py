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
from robnas.train.recipes import Recipe
from robnas.train.trainer import (
    LOG_FIELDS,
    Trainer,
    TrainResult,
    TrainSettings,
    evaluate_split,
    split_indices,
)


def fit(
    model: nn.Module,
    data: ImageArrays,
    recipe: Recipe | str,
    out: str | Path,
    settings: TrainSettings | None = None,
    **options: Any,
) -> TrainResult:
    """Train ``model`` on ``data`` with ``recipe``; write ``last.pt``, ``best.pt``, ``meta.json`` and
    ``log.csv`` under ``out``.

    ``model`` takes normalised images when ``recipe.normalize`` (it is wrapped with
    :class:`robnas.models.NormalizedNet` using ``data.mean_std``), raw [0, 1] images otherwise.
    How the run goes (epochs, batch size, seed, resume, stop_after, device, AMP, progress,
    DDP, ...) is ``settings``, a :class:`robnas.train.TrainSettings`, whose fields ``options``
    replace: ``fit(net, data, "pgd-at", "runs/x", epochs=10, resume=True)``; the other
    ``options`` are :class:`Trainer`'s (``meta``: entries added to ``meta.json``).
    """
    trainer = Trainer(model, data, recipe, out, settings, **options)
    return trainer.run(losses.get(trainer.recipe.loss))


__all__ = [
    "LOG_FIELDS",
    "NormalizedNet",
    "TrainResult",
    "TrainSettings",
    "evaluate_split",
    "fit",
    "load_trained",
    "split_indices",
]
