"""The search-space protocol shared by every space (NB201, DARTS, RobNet).

An architecture is a small immutable value (a tuple, a named tuple); a space knows how to
parse it from text, print it, check it, sample and mutate it, find its canonical
(isomorphism-aware) form, build the network it describes, and encode it as named categorical
decision variables for black-box optimisers (``categorical_choices`` / ``from_choices``).
"""

from __future__ import annotations

import inspect
import random
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, runtime_checkable

import numpy as np

from robnas.errors import ConfigError, InvalidArchitecture

if TYPE_CHECKING:
    from torch import Tensor, nn

A = TypeVar("A")

RandomLike = np.random.Generator | random.Random | int | None
#: A value of a categorical decision variable (what Optuna's ``CategoricalDistribution`` takes).
Choice = str | int | float | bool | None
#: Named categorical decision variables with their choices, in a fixed order.
Choices = list[tuple[str, tuple[Choice, ...]]]


def as_rng(rng: RandomLike) -> np.random.Generator:
    """A numpy Generator from a Generator, a ``random.Random``, a seed or ``None``."""
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, random.Random):
        return np.random.default_rng(rng.getrandbits(64))
    return np.random.default_rng(rng)


class SearchSpace(ABC, Generic[A]):
    """A family of architectures with a text form and a network builder."""

    name: str = ""

    @abstractmethod
    def parse(self, text: str) -> A:
        """The architecture written as ``text``; raises ``InvalidArchitecture`` naming the problem."""

    @abstractmethod
    def format(self, arch: A) -> str:
        """The official text form of ``arch``."""

    @abstractmethod
    def validate(self, arch: A) -> A:
        """``arch`` itself if it belongs to the space, else ``InvalidArchitecture``."""

    def canonical(self, arch: A) -> A:
        """One representative per isomorphism class (identity where the space has none)."""
        return self.validate(arch)

    def canonical_string(self, arch: A | str) -> str:
        """The text of the canonical representative; accepts an arch or its text."""
        if isinstance(arch, str):
            arch = self.parse(arch)
        return self.format(self.canonical(arch))

    @abstractmethod
    def sample(self, rng: RandomLike = None) -> A:
        """A uniformly random architecture."""

    def sample_distinct(self, n: int, rng: RandomLike = None) -> list[str]:
        """Texts of ``n`` random architectures from ``n`` different isomorphism classes (each the
        first sample of its class), in the order drawn."""
        rng = as_rng(rng)
        found: dict[str, str] = {}
        while len(found) < n:
            arch = self.sample(rng)
            found.setdefault(self.canonical_string(arch), self.format(arch))
        return list(found.values())

    @abstractmethod
    def mutate(self, arch: A, rng: RandomLike = None) -> A:
        """A new architecture one documented edit away from ``arch`` (``arch`` is not changed)."""

    @abstractmethod
    def build(self, arch: A, num_classes: int = 10, **options: Any) -> nn.Module:
        """The untrained network of ``arch``; an unknown option raises ``ConfigError``."""

    def build_options(self) -> tuple[str, ...]:
        """The names of the options ``build`` takes besides ``arch`` and ``num_classes``."""
        return tuple(
            name
            for name, p in inspect.signature(self.build).parameters.items()
            if name not in ("arch", "num_classes")
            and p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        )

    def reject_build_options(self, options: dict[str, Any]) -> None:
        """``ConfigError`` naming the unknown build ``options`` and the accepted ones (if any)."""
        if options:
            raise ConfigError(
                f"unknown {self.name} build options: {', '.join(sorted(options))} "
                f"(accepted: {', '.join(self.build_options()) or 'none'})"
            )

    def options(self) -> dict[str, Any]:
        """The construction options that change what ``sample``/``mutate`` draw (none here)."""
        return {}

    # -- categorical encoding (black-box optimisers: Optuna's TPE, NSGA-II) -------------------
    def categorical_choices(self) -> Choices:
        """The space as named categorical decision variables ``[(name, choices), ...]``.

        Every combination of choices decodes (:meth:`from_choices`) to a valid architecture,
        or to ``InvalidArchitecture`` where the space cannot be encoded without exceptions
        (a restricted space); the encoding covers what :meth:`sample` draws. ``ConfigError``
        for a space without an encoding.
        """
        raise ConfigError(f"search space {self.name!r} has no categorical encoding")

    def from_choices(self, choices: Mapping[str, Any]) -> A:
        """The architecture a full assignment ``{name: choice}`` of :meth:`categorical_choices`
        encodes; ``InvalidArchitecture`` naming a missing, unknown or out-of-range variable."""
        raise ConfigError(f"search space {self.name!r} has no categorical encoding")

    def to_choices(self, arch: A) -> dict[str, Choice]:
        """The assignment encoding ``arch``: ``from_choices(to_choices(a))`` is ``a`` or an
        equivalent arch (DARTS: a step's two edges in input order); ``InvalidArchitecture`` for
        an arch outside the encoding."""
        raise ConfigError(f"search space {self.name!r} has no categorical encoding")

    def check_choices(self, choices: Mapping[str, Any]) -> dict[str, Choice]:
        """``choices`` as a dict if it assigns every variable one of its choices, else
        ``InvalidArchitecture`` naming the first problem."""
        variables = self.categorical_choices()
        names = {name for name, _ in variables}
        unknown = sorted(set(choices) - names)
        if unknown:
            raise InvalidArchitecture(f"{self.name}: unknown decision variables {', '.join(unknown)}")
        for name, values in variables:
            if name not in choices:
                raise InvalidArchitecture(f"{self.name}: no choice for the decision variable {name!r}")
            if choices[name] not in values:
                shown = ", ".join(map(repr, values[:8])) + (
                    f", ... ({len(values)} choices)" if len(values) > 8 else ""
                )
                raise InvalidArchitecture(f"{self.name}: {name}={choices[name]!r} is not one of {shown}")
        return dict(choices)

    def __repr__(self) -> str:
        return f"<search space {self.name!r}>"


class ParameterCapped:
    """Mixin for spaces whose ``sample``/``mutate`` can keep a network under a size cap.

    ``max_params_m`` (millions of parameters of the space's budget network, checked by the
    space's ``within_budget``) is fixed at construction; ``default_max_params_m`` is the
    space's default (``None``: no cap). ``sample``/``mutate`` take ``max_params_m`` too, to
    override it for one call.
    """

    name: str = ""
    default_max_params_m: float | None = None

    def __init__(self, max_params_m: float | str | None = "default") -> None:
        if max_params_m == "default":
            max_params_m = self.default_max_params_m
        if max_params_m is not None and (
            isinstance(max_params_m, bool) or not isinstance(max_params_m, (int, float)) or max_params_m <= 0
        ):
            raise ConfigError(
                f"{self.name} max_params_m must be a positive number or none, got {max_params_m!r}"
            )
        self.max_params_m = None if max_params_m is None else float(max_params_m)

    def options(self) -> dict[str, Any]:
        return {"max_params_m": self.max_params_m}

    def _cap(self, max_params_m: float | str | None) -> float | None:
        return self.max_params_m if max_params_m == "default" else max_params_m  # type: ignore[return-value]

    @abstractmethod
    def within_budget(self, arch: Any, max_params_m: float, num_classes: int = 10) -> bool:
        """Whether the space's budget network of ``arch`` has at most ``max_params_m`` M parameters."""

    def within_cap(self, arch: Any) -> bool:
        """Whether ``arch`` respects the space's own cap (always, without one)."""
        return self.max_params_m is None or self.within_budget(arch, self.max_params_m)


@runtime_checkable
class FeatureNetwork(Protocol):
    """A network that exposes intermediate features for feature-consistency proxies (CRoZe).

    ``forward_features(x)`` returns ``(logits, [Z0, Z1, ...])``; ``layer_feature_indices()``
    maps every Conv2d / Linear module, in ``modules()`` order, to the index of the feature
    it is compared with.
    """

    def forward_features(self, x: Tensor) -> tuple[Tensor, list[Tensor]]: ...

    def layer_feature_indices(self) -> list[tuple[nn.Module, int]]: ...
