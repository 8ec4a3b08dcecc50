"""Black-box strategies: random search, top-k screening, CRoZe's mutation chain, regularized evolution."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

from robnas.errors import ConfigError
from robnas.search.base import SearchContext, SearchExhausted, Strategy, _score, register


def _positive(strategy: str, **values: int) -> None:
    for key, value in values.items():
        if not isinstance(value, int) or value < 1:
            raise ConfigError(f"strategy {strategy!r}: {key} must be an integer >= 1, got {value!r}")


@register("random", paper="Li and Talwalkar, Random Search and Reproducibility for NAS, UAI 2019")
@dataclass
class RandomSearch(Strategy):
    """Uniform samples of the space until the budget is spent (evaluated in batches)."""

    def run(self, ctx: SearchContext) -> None:
        while True:
            ctx.evaluate_many([ctx.space.sample(ctx.rng) for _ in range(max(1, ctx.remaining))])


@register("topk", paper="training-free screening, e.g. Mellor et al., NASWOT, ICML 2021")
@dataclass
class TopK(Strategy):
    """Draw ``budget`` distinct architectures up front, score them all; the best are the result.

    With a proxy objective this is the usual zero-cost screening ("score N samples, keep the
    top k"); the run's ``best(k)`` lists the winners.
    """

    def run(self, ctx: SearchContext) -> None:
        chosen: dict[str, Any] = {}
        misses = 0
        while len(chosen) < ctx.budget:
            arch = ctx.space.sample(ctx.rng)
            key = ctx.key(arch)
            if key in chosen:
                misses += 1
                if misses > ctx.max_repeats:
                    break
                continue
            chosen[key] = arch
        ctx.evaluate_many(list(chosen.values()))
        if len(chosen) < ctx.budget:
            raise SearchExhausted(f"only {len(chosen)} distinct architectures could be drawn")


@register("evolution", paper="CRoZe (Ha et al., NeurIPS 2023), sampling_type=mutate")
@dataclass
class MutationSearch(Strategy):
    """CRoZe's mutation search: a non-elitist chain of mutation rounds.

    Round 0 evaluates ``init_pool`` random architectures and takes the best as the parent.
    Every later round evaluates ``sample_pool`` mutants of the parent, and the best of THAT
    round becomes the next parent (the parent is neither kept nor compared, as in the
    reference); the best architecture seen overall is the result.

    Difference from the reference code: its mutation edits the parent's operation list in
    place, so a round's children share one list carrying all accumulated edits and the
    recorded best architecture drifts with the lineage (croze.md section 4.3). Here every child
    is a fresh single mutation of the unchanged parent. The run stops exactly at the budget
    (the reference stops after the round that first exceeds ``sample_num``).
    """

    init_pool: int = 50
    sample_pool: int = 5

    def check(self) -> None:
        _positive("evolution", init_pool=self.init_pool, sample_pool=self.sample_pool)

    def run(self, ctx: SearchContext) -> None:
        pool = [ctx.space.sample(ctx.rng) for _ in range(self.init_pool)]
        values = ctx.evaluate_many(pool, {"round": 0})
        parent = pool[max(range(len(pool)), key=lambda i: _score(values[i]))]
        round_ = 1
        while True:
            children = [ctx.space.mutate(parent, ctx.rng) for _ in range(self.sample_pool)]
            info = {"round": round_, "parent": ctx.space.format(parent)}
            values = ctx.evaluate_many(children, info)
            parent = children[max(range(len(children)), key=lambda i: _score(values[i]))]
            round_ += 1


@register("regularized-evolution", paper="Real et al., Regularized Evolution (aging evolution), AAAI 2019")
@dataclass
class RegularizedEvolution(Strategy):
    """Aging evolution: tournament selection, one mutation per step, the oldest member dies.

    The population starts with ``population`` random architectures. Each step samples
    ``sample_size`` members uniformly with replacement, mutates the best of them, adds the
    child and removes the oldest member.
    """

    population: int = 20
    sample_size: int = 5

    def check(self) -> None:
        _positive("regularized-evolution", population=self.population, sample_size=self.sample_size)

    def run(self, ctx: SearchContext) -> None:
        population = [ctx.space.sample(ctx.rng) for _ in range(self.population)]
        values = ctx.evaluate_many(population, {"phase": "init"})
        members: deque[tuple[Any, float]] = deque(zip(population, values, strict=True))
        while True:
            picks = ctx.rng.integers(len(members), size=self.sample_size)
            parent = max((members[int(i)] for i in picks), key=lambda m: _score(m[1]))[0]
            child = ctx.space.mutate(parent, ctx.rng)
            members.append((child, ctx.evaluate(child, {"parent": ctx.space.format(parent)})))
            members.popleft()
