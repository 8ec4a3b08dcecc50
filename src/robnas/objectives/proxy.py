"""Proxy objectives: a zero-cost proxy of the untrained network (``croze``), or a rank
ensemble of several (``croze+synflow+nwot``); see :mod:`robnas.objectives`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from robnas.cost import Timer
from robnas.errors import ConfigError, ProxyError
from robnas.fingerprint import file_digest
from robnas.objectives.base import OBJECTIVES, Evaluation, Memo, Objective, ObjectiveContext
from robnas.spaces.base import SearchSpace


class ProxyObjective(Objective):
    """A zero-cost proxy of the untrained network, or its value in a precomputed table.

    Computed values take the one scoring path, :func:`robnas.scoring.score_arch` (the network of
    the canonical architecture initialised from ``stable_seed(seed, canonical text)``, the proxy
    from ``stable_seed(seed, canonical text, proxy)``), so they equal what ``robnas score``
    stores for the same seed, batch and data.
    """

    def __init__(self, name: str, space: SearchSpace, context: ObjectiveContext) -> None:
        from robnas import proxies

        self.name = name
        self.context = context
        self.table = context.table(space)
        if self.table is not None:
            if name not in self.table:
                raise ConfigError(
                    f"proxy {name!r} is not in the scores table {self.table.path} "
                    f"(it has: {', '.join(self.table.proxies)})"
                )
            key = f"proxy:{name}|table={self.table.path.name}#{file_digest(self.table.path)[:16]}"
        else:
            proxies.PROXIES.get(name)  # UnknownName with suggestions
            key = (
                f"proxy:{name}|data={context.data_id()}|bs={context.batch_size}|seed={context.seed}"
                f"|mode={context.batch_mode}{context.model_tag()}"
            )
        super().__init__(space, key)

    @property
    def uses_cuda(self) -> bool:
        return self.table is None and self.context.device.startswith("cuda")

    @property
    def local(self) -> bool:
        return self.table is not None

    def attach(self, memo: Memo | None) -> None:
        # table lookups are cheaper than a persistent cache
        self.memo = memo if self.table is None else None

    def prepare(self) -> None:
        if self.table is None:
            self.context.batch()

    def _compute(self, arch: Any) -> tuple[float, float]:
        text = self.space.format(arch)
        if self.table is not None:
            return self.table.lookup(text, self.name)
        from robnas.runtime import resolve_device
        from robnas.scoring import score_arch

        x, y, _ = self.context.batch()
        device = resolve_device(self.context.device)
        num_classes = self.context.images().num_classes
        (result,) = score_arch(
            self.space, arch, [self.name], x.to(device), y.to(device), self.context.seed,
            lambda a: self.context.build(self.space, a, num_classes),
        )  # fmt: skip
        if result.error:
            raise ProxyError(f"{self.name}: {result.error}")
        return result.value, math.nan


class EnsembleObjective(Objective):
    """Mean percentile rank (0..1) of the member proxies within a fixed reference pool."""

    def __init__(self, names: Sequence[str], space: SearchSpace, context: ObjectiveContext) -> None:
        if len(names) < 2:
            raise ConfigError(f"a rank ensemble needs at least two proxies, got {list(names)}")
        self.members = [ProxyObjective(n, space, context) for n in names]
        table = context.table(space)
        if table is not None:
            reference = list(table.archs)
            ref_tag = f"table={table.path.name}"
        else:
            if context.reference_size < 2:
                raise ConfigError(f"reference_size must be >= 2, got {context.reference_size}")
            rng = np.random.default_rng([context.seed, 0x5EED])
            reference = sorted(
                {space.canonical_string(space.sample(rng)) for _ in range(context.reference_size)}
            )
            ref_tag = f"ref={context.reference_size}|{self.members[0].key.split('|', 1)[1]}"
        super().__init__(space, f"ensemble:{'+'.join(names)}|{ref_tag}")
        self.reference = reference
        self._sorted: list[np.ndarray] | None = None

    def attach(self, memo: Memo | None) -> None:
        self.memo = memo
        for m in self.members:
            m.attach(memo)

    @property
    def local(self) -> bool:
        return all(m.local for m in self.members)

    def prepare(self) -> None:
        for m in self.members:
            m.prepare()
        self._reference_values()

    def _reference_values(self) -> list[np.ndarray]:
        """Sorted member values over the reference pool, computed once (timed as ``setup_cost``)."""
        if self._sorted is None:
            with Timer(self.uses_cuda) as timer:
                arrays = []
                for member in self.members:
                    values = np.array([member.measure(a).value for a in self.reference], dtype=float)
                    arr = np.sort(values[np.isfinite(values)])
                    if arr.size == 0:
                        raise ConfigError(f"{member.name} failed on the whole reference pool")
                    arrays.append(arr)
            self._sorted = arrays
            self.setup_cost = timer.cost
        return self._sorted

    def measure(self, arch: Any, canonical: bool = False) -> Evaluation:
        self._reference_values()
        return super().measure(arch, canonical)

    @property
    def uses_cuda(self) -> bool:
        return any(m.uses_cuda for m in self.members)

    def _compute(self, arch: Any) -> tuple[float, float]:
        reference = self._reference_values()
        ranks, seconds = [], []
        for member, ref in zip(self.members, reference, strict=True):
            ev = member.measure(arch)
            if ev.error or not math.isfinite(ev.value):
                raise ProxyError(f"member {member.name}: {ev.error or 'NaN'}")
            below = np.searchsorted(ref, ev.value, side="left")
            upto = np.searchsorted(ref, ev.value, side="right")
            ranks.append((below + 0.5 * (upto - below)) / ref.size)
            seconds.append(ev.cost.reported)
        reported = float(np.sum(seconds)) if all(math.isfinite(s) for s in seconds) else math.nan
        return float(np.mean(ranks)), reported


def proxies_needing_data(names: Sequence[str], has_scores: bool = False) -> list[str]:
    """The proxies among ``names`` whose values depend on the images (none when read from a
    scores table; unknown names are left to the objective)."""
    from robnas import proxies

    if has_scores:
        return []
    return [n for n in names if n in proxies.PROXIES and proxies.PROXIES.get(n).needs_data]


OBJECTIVES.register(
    "proxy", ProxyObjective, kind="proxy", needs_data=lambda arg, scores: proxies_needing_data([arg.strip()], scores)
)
OBJECTIVES.register(
    "ensemble",
    lambda arg, space, ctx: EnsembleObjective([a.strip() for a in arg.split("+")], space, ctx),
    needs_data=lambda arg, scores: proxies_needing_data([a.strip() for a in arg.split("+")], scores),
)

__all__ = ["EnsembleObjective", "ProxyObjective", "proxies_needing_data"]
