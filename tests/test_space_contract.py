"""The contract every registered search space keeps (robnas.spaces.base.SearchSpace)."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest
import torch

from robnas import spaces
from robnas.errors import ConfigError, InvalidArchitecture
from robnas.spaces.base import SearchSpace

#: build options small enough for a CPU forward in well under a second (the default otherwise)
SMALL: dict[str, dict[str, Any]] = {
    "nb201": {"C": 4, "N": 1},
    "darts": {"C": 4, "layers": 3},
    "darts-croze": {"C": 4, "layers": 3},
    "robnet": {"C": 4, "layers": 3},
    "robnet-free": {"C": 2, "layers": 20},  # one code per cell: the depth is the code's
}
GARBAGE: list[Any] = [None, 42, 3.5, "not an arch", (), ("x",) * 6, [[1, 2]], {"normal": []}]


def _space(name: str) -> SearchSpace:
    """The space without its parameter cap: capped sampling builds a C=36, 20-cell network per
    draw (the cap is tested in test_space_darts.py, test_space_robnet.py and test_search.py)."""
    space = spaces.get(name)
    return spaces.get(name, max_params_m=None) if "max_params_m" in space.options() else space


NAMES = spaces.names()


@pytest.fixture(params=NAMES)
def space(request: pytest.FixtureRequest) -> SearchSpace:
    """Each registered space in turn (uncapped, see :func:`_space`)."""
    return _space(request.param)


def test_every_space_is_covered() -> None:
    assert {"nb201", "darts", "darts-croze", "robnet", "robnet-free"} <= set(NAMES)


def test_text_round_trips_and_canonical_is_idempotent(space: SearchSpace) -> None:
    for seed in range(3):
        arch = space.sample(seed)
        text = space.format(arch)
        assert space.parse(text) == arch and space.format(space.parse(text)) == text
        canonical = space.canonical(arch)
        assert space.canonical(canonical) == canonical
        assert space.canonical_string(text) == space.canonical_string(arch) == space.format(canonical)


def test_sample_is_deterministic_for_a_seed(space: SearchSpace) -> None:
    assert space.sample(7) == space.sample(7) == space.sample(np.random.default_rng(7))
    assert len({space.format(space.sample(seed)) for seed in range(5)}) > 1


def test_mutate_gives_a_valid_different_arch_and_leaves_the_parent_alone(space: SearchSpace) -> None:
    for seed in range(3):
        parent = space.sample(seed)
        before = copy.deepcopy(parent)
        child = space.mutate(parent, seed + 10)
        assert space.validate(child) == child and child != parent
        assert parent == before
        assert space.mutate(parent, seed + 10) == child


def test_validate_and_parse_reject_garbage_with_invalid_architecture(space: SearchSpace) -> None:
    for garbage in GARBAGE:
        with pytest.raises(InvalidArchitecture):
            space.validate(garbage)
    for text in ("", "nonsense", "[[", "|x~0|", "Genotype(normal=[])", None, 7):
        with pytest.raises(InvalidArchitecture):
            space.parse(text)  # type: ignore[arg-type]


def test_build_gives_logits_and_rejects_unknown_options(space: SearchSpace) -> None:
    name = space.name
    arch = space.sample(0)
    assert set(SMALL[name]) <= set(space.build_options())
    torch.manual_seed(0)
    net = space.build(arch, num_classes=7, **SMALL[name]).eval()
    with torch.no_grad():
        logits = net(torch.randn(2, 3, 32, 32))
    assert logits.shape == (2, 7) and torch.isfinite(logits).all()
    assert isinstance(space.build(space.format(arch), **SMALL[name]), torch.nn.Module)  # text works too
    with pytest.raises(ConfigError, match=f"unknown {name} build options: bogus"):
        space.build(arch, bogus=1, **SMALL[name])


def test_categorical_choices_encode_the_space(space: SearchSpace) -> None:
    variables = space.categorical_choices()
    names = [n for n, _ in variables]
    assert len(set(names)) == len(names)
    for _, values in variables:  # what Optuna's CategoricalDistribution accepts
        assert values and len(set(values)) == len(values)
        assert all(v is None or isinstance(v, (str, int, float, bool)) for v in values)
    # a sampled arch: its assignment decodes to an arch with the same assignment and network
    arch = space.sample(3)
    choices = space.to_choices(arch)
    assert list(choices) == names
    decoded = space.from_choices(choices)
    assert space.validate(decoded) == decoded and space.to_choices(decoded) == choices
    assert space.parse(space.format(decoded)) == decoded
    # any assignment decodes to a valid arch that round-trips exactly
    rng = np.random.default_rng(0)
    for _ in range(5):
        drawn = {n: values[int(rng.integers(len(values)))] for n, values in variables}
        arch = space.from_choices(drawn)
        assert space.validate(arch) == arch
        assert space.to_choices(arch) == drawn and space.from_choices(space.to_choices(arch)) == arch
    # an incomplete, unknown or out-of-range assignment names the variable
    first = names[0]
    with pytest.raises(InvalidArchitecture, match=first):
        space.from_choices({n: v for n, v in choices.items() if n != first})
    with pytest.raises(InvalidArchitecture, match="bogus"):
        space.from_choices({**choices, "bogus": 1})
    with pytest.raises(InvalidArchitecture, match=first):
        space.from_choices({**choices, first: "no such choice"})
