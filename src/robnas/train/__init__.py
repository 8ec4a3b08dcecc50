"""Training recipes and the loop that runs them: standard, PGD-AT, TRADES, Fast-AT; DDP; checkpoints.

A recipe names its loss (:data:`LOSSES`, one registry entry per loss); :class:`Trainer` holds
the set-up, resume, epochs and checkpoints every trainer shares, and :func:`fit` composes them.
Progress is reported through a callback; nothing here draws on a terminal.

>>> from robnas.train import RECIPES, fit
>>> RECIPES.names("pgd*")
['pgd-at', 'pgd-at-croze', 'pgd-at-robnets']
"""

from __future__ import annotations

from robnas.models import NormalizedNet, build_model, load_trained, parse_options
from robnas.train import adversary, augment, checkpoint, losses
from robnas.train.distributed import DistInfo, setup, teardown
from robnas.train.loop import fit
from robnas.train.losses import LOSSES, StepContext, StepOutput
from robnas.train.recipes import RECIPES, Recipe, get, names, parse_settings
from robnas.train.trainer import Trainer, TrainResult, TrainSettings, evaluate_split, split_indices

__all__ = [
    "LOSSES",
    "RECIPES",
    "DistInfo",
    "NormalizedNet",
    "Recipe",
    "StepContext",
    "StepOutput",
    "TrainResult",
    "TrainSettings",
    "Trainer",
    "adversary",
    "augment",
    "build_model",
    "checkpoint",
    "evaluate_split",
    "fit",
    "get",
    "load_trained",
    "losses",
    "names",
    "parse_options",
    "parse_settings",
    "setup",
    "split_indices",
    "teardown",
]
