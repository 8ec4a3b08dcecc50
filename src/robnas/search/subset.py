"""A search space restricted to a finite set of architectures (a scores table, a benchmark).

Simulated search on NAS-Bench-201 queries tables that cover only part of the space; searching
the restricted space keeps every proposal answerable. Sampling is uniform over the members
(canonical forms); a mutation applies the base space's mutation until the result is a member
other than the parent itself up to isomorphism (at most ``tries`` times), else falls back to a
uniformly drawn member. Black-box optimisers use the base space's categorical encoding; a
decoded architecture outside the members is ``InvalidArchitecture``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from robnas.errors import ConfigError, InvalidArchitecture
from robnas.spaces.base import Choice, Choices, RandomLike, SearchSpace, as_rng


class SubsetSpace(SearchSpace):
    """``base`` restricted to ``members`` (architectures or their strings; canonicalised)."""

    def __init__(self, base: SearchSpace, members: Iterable[Any], tries: int = 100) -> None:
        self.base = base
        self.name = base.name
        self.tries = tries
        keys: dict[str, None] = {}
        for m in members:
            try:
                keys[base.canonical_string(m)] = None
            except InvalidArchitecture:
                continue
        if not keys:
            raise ConfigError(f"no valid {base.name} architecture to restrict the search to")
        self.members: list[str] = sorted(keys)
        self._set = set(self.members)

    def __contains__(self, arch: object) -> bool:
        try:
            return self.base.canonical_string(arch) in self._set  # type: ignore[arg-type]
        except InvalidArchitecture:
            return False

    def __len__(self) -> int:
        return len(self.members)

    def __getattr__(self, name: str) -> Any:  # operations, isomorphism_key, ...
        if name in ("base", "__setstate__"):
            raise AttributeError(name)
        return getattr(self.base, name)

    def parse(self, text: str) -> Any:
        return self.base.parse(text)

    def format(self, arch: Any) -> str:
        return self.base.format(arch)

    def validate(self, arch: Any) -> Any:
        return self.base.validate(arch)

    def canonical(self, arch: Any) -> Any:
        return self.base.canonical(arch)

    def sample(self, rng: RandomLike = None) -> Any:
        g = as_rng(rng)
        return self.base.parse(self.members[int(g.integers(len(self.members)))])

    def mutate(self, arch: Any, rng: RandomLike = None) -> Any:
        g = as_rng(rng)
        own = self.base.canonical_string(arch)
        for _ in range(self.tries):
            child = self.base.mutate(arch, g)
            key = self.base.canonical_string(child)
            if key in self._set and key != own:
                return child
        return self.sample(g)

    def categorical_choices(self) -> Choices:
        """The base space's variables: a restricted space has no encoding of its own."""
        return self.base.categorical_choices()

    def from_choices(self, choices: Mapping[str, Any]) -> Any:
        """The base space's decoding; ``InvalidArchitecture`` for an arch outside the members."""
        arch = self.base.from_choices(choices)
        if arch not in self:
            raise InvalidArchitecture(
                f"{self.base.format(arch)} is not among the {len(self)} architectures "
                "the search is restricted to"
            )
        return arch

    def to_choices(self, arch: Any) -> dict[str, Choice]:
        return self.base.to_choices(arch)

    def build(self, arch: Any, num_classes: int = 10, **options: Any) -> Any:
        return self.base.build(arch, num_classes=num_classes, **options)
