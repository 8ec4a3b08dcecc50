"""Training recipes and the loop that runs them: standard, PGD-AT, TRADES, Fast-AT; DDP; checkpoints.

>>> from robnas.train import RECIPES, fit
>>> RECIPES.names("pgd*")
['pgd-at', 'pgd-at-croze', 'pgd-at-robnets']
"""

from __future__ import annotations

from robnas.models import build_model, parse_options
from robnas.train import adversary, augment, checkpoint
from robnas.train.distributed import DistInfo, setup, teardown
from robnas.train.loop import NormalizedNet, TrainResult, evaluate_split, fit, load_trained, split_indices
from robnas.train.recipes import RECIPES, Recipe, get, names

__all__ = [
    "RECIPES",
    "DistInfo",
    "NormalizedNet",
    "Recipe",
    "TrainResult",
    "adversary",
    "augment",
    "build_model",
    "checkpoint",
    "evaluate_split",
    "fit",
    "get",
    "load_trained",
    "names",
    "parse_options",
    "setup",
    "split_indices",
    "teardown",
]
