"""The RobNets cell space (shared and cell-free) and its networks."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

import robnas.proxies
from robnas import spaces
from robnas.errors import ConfigError, InvalidArchitecture
from robnas.spaces.base import FeatureNetwork
from robnas.spaces.ops import FactorizedReduce, SepConv, Zero
from robnas.spaces.robnet import (
    EDGES,
    ResSepConv,
    RobNetFreeSpace,
    RobNetSpace,
    density,
    digits_to_code,
    num_convolutions,
)

# robnet_large_v1 exactly as gmh14/RobNets architecture_code.py writes it
LARGE_LITERAL = (
    "[['11', '11',\n  '11', '11',\n  '11', '01',\n  '11', '01',\n  '10', '11',\n  '01', '01',\n  '01', '11']]"
)


def test_registered() -> None:
    assert isinstance(spaces.get("robnet"), RobNetSpace)
    assert isinstance(spaces.get("robnet-free"), RobNetFreeSpace)


def test_reference_literal_and_base4_forms_agree() -> None:
    space = RobNetSpace()
    arch = space.parse(LARGE_LITERAL)
    assert arch == space.parse("33333131231113")
    assert space.format(arch) == (
        "[['11', '11', '11', '11', '11', '01', '11', '01', '10', '11', '01', '01', '01', '11']]"
    )
    assert space.format_digits(arch) == "33333131231113"
    # a single cell written without the outer list is the same shared code
    assert space.parse(LARGE_LITERAL[1:-1]) == arch
    assert density(arch) == pytest.approx(22 / 28)
    assert num_convolutions(arch[0]) == 13


@pytest.mark.parametrize("name", ["robnet", "robnet-free"])
def test_roundtrip_of_samples(name: str) -> None:
    space = spaces.get(name)
    for seed in range(20):
        arch = space.sample(seed)
        assert len(arch) == space.sampled_cells
        assert space.parse(space.format(arch)) == arch
        assert space.parse(space.format_digits(arch)) == arch
    assert space.sample(9) == space.sample(9)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("3333313123111", "14 digits 0-3"),
        ("33333131231114", "14 digits 0-3"),
        ("[['11', '11']]", "needs 14 edge codes"),
        (
            "[['11', '11', '11', '11', '11', '01', '11', '01', '10', '11', '01', '01', '01', '12']]",
            "unknown code '12'",
        ),
        ("[['11', ", "not a list literal"),
        ("[[1, 2]]", "needs 14 edge codes"),
        ("[3]", "list of cells"),
    ],
)
def test_invalid_codes(text: str, message: str) -> None:
    with pytest.raises(InvalidArchitecture, match=message):
        RobNetSpace().parse(text)


def test_cell_free_code_must_match_the_depth() -> None:
    space = RobNetFreeSpace()
    arch = space.sample(0)
    with pytest.raises(InvalidArchitecture, match="one cell per layer"):
        space.build(arch, C=8, layers=5)
    with pytest.raises(ConfigError, match="unknown robnet-free build options"):
        space.build(arch, auxiliary=True)


@pytest.mark.parametrize("name", ["robnet", "robnet-free"])
def test_mutation_changes_one_edge_code(name: str) -> None:
    space = spaces.get(name)
    for seed in range(30):
        parent = space.sample(seed)
        before = copy.deepcopy(parent)
        child = space.mutate(parent, seed + 1)
        assert parent == before
        assert space.validate(child) == child
        diffs = [(i, k) for i in range(len(parent)) for k in range(14) if parent[i][k] != child[i][k]]
        assert len(diffs) == 1


def test_budget() -> None:
    space = RobNetSpace()
    arch = space.sample(3, max_params_m=5.0)
    assert space.parameters_m(arch) <= 5.0
    assert space.parameters_m(space.mutate(arch, 4, max_params_m=5.0)) <= 5.0


def test_edge_operations_follow_the_reference_bits() -> None:
    """First bit = identity, second bit = 3x3 separable conv; stride 2 only on input edges."""
    space = RobNetSpace()
    net = space.build((digits_to_code("01230123012301"),), C=8, layers=3)
    normal, reduction = net.cells[0], net.cells[1]
    assert [type(op).__name__ for op in normal._ops[:4]] == ["Zero", "SepConv", "Identity", "ResSepConv"]
    for k, (_, source) in enumerate(EDGES):
        op = reduction._ops[k]
        stride = 2 if source < 2 else 1
        if isinstance(op, Zero):
            assert op.stride == stride
        elif isinstance(op, SepConv):
            assert op[1].stride == (stride, stride)
        elif isinstance(op, ResSepConv):
            assert isinstance(op.res, FactorizedReduce if stride == 2 else nn.Identity)
        else:
            assert isinstance(op, FactorizedReduce if stride == 2 else nn.Identity)
    # no affine BN inside cells; only the stem BN learns
    learnable_bn = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d) and m.affine]
    assert learnable_bn == [net.stem[1]]


def _forward_backward_and_features(net: nn.Module, x: torch.Tensor, layers: int) -> None:
    logits = net(x)
    logits.sum().backward()
    assert any(p.grad is not None for p in net.parameters())
    assert isinstance(net, FeatureNetwork)
    net.eval()
    out, feats = net.forward_features(x)
    assert torch.allclose(out, net(x))
    assert len(feats) == layers + 2
    pairs = net.layer_feature_indices()
    assert [m for m, _ in pairs] == [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert max(i for _, i in pairs) == layers + 1


def test_tiny_networks_forward_backward() -> None:
    torch.manual_seed(0)
    shared = RobNetSpace()
    _forward_backward_and_features(
        shared.build(shared.sample(1), C=8, layers=5), torch.randn(2, 3, 32, 32), 5
    )
    free = RobNetFreeSpace().sample(2)[:5]
    _forward_backward_and_features(RobNetFreeSpace().build(free, C=8, layers=5), torch.randn(2, 3, 32, 32), 5)
    imagenet = shared.build(shared.sample(3), C=8, layers=4, imagenet=True)
    _forward_backward_and_features(imagenet, torch.randn(1, 3, 64, 64), 4)


def test_every_registered_proxy_scores_a_tiny_network() -> None:
    space = RobNetSpace()
    torch.manual_seed(0)
    net = space.build(space.sample(4), C=8, layers=5)
    x, y = torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,))
    names = robnas.proxies.names()
    assert names, "no proxy is registered"
    for proxy in names:
        result = robnas.proxies.run(proxy, net, x, y)
        assert result.error == "" and math.isfinite(result.value), (proxy, result.error)
