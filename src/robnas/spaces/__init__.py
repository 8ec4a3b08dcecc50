"""Search spaces: ``robnas.spaces.get("nb201")`` returns a :class:`SearchSpace`."""

from __future__ import annotations

from robnas.registry import Registry
from robnas.spaces.base import FeatureNetwork, SearchSpace, as_rng
from robnas.spaces.darts import CrozeDartsSpace, DartsSpace
from robnas.spaces.nb201 import NB201Space
from robnas.spaces.robnet import RobNetFreeSpace, RobNetSpace

SPACES: Registry[type[SearchSpace]] = Registry("search space")
SPACES.register("nb201", NB201Space)
SPACES.register("darts", DartsSpace)
SPACES.register("darts-croze", CrozeDartsSpace)
SPACES.register("robnet", RobNetSpace)
SPACES.register("robnet-free", RobNetFreeSpace)


def get(name: str) -> SearchSpace:
    """A search space by name (``nb201``, ...)."""
    return SPACES.get(name)()


def names(pattern: str = "*") -> list[str]:
    return SPACES.names(pattern)


__all__ = ["SPACES", "FeatureNetwork", "SearchSpace", "as_rng", "get", "names"]
