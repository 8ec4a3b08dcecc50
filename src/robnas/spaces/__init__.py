"""Search spaces: ``robnas.spaces.get("nb201")`` returns a :class:`SearchSpace`."""

from __future__ import annotations

from typing import Any

from robnas.errors import ConfigError
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


def get(name: str, **options: Any) -> SearchSpace:
    """A search space by name (``nb201``, ...), with its construction options.

    >>> get("darts-croze").max_params_m   # CRoZe's 6 M parameter cap by default
    6.0
    >>> get("darts-croze", max_params_m=None).max_params_m is None
    True
    """
    cls = SPACES.get(name)
    try:
        return cls(**options)
    except TypeError:
        raise ConfigError(
            f"search space {name!r} takes no option {', '.join(sorted(options))}"
        ) from None


def names(pattern: str = "*") -> list[str]:
    return SPACES.names(pattern)


__all__ = ["SPACES", "FeatureNetwork", "SearchSpace", "as_rng", "get", "names"]
