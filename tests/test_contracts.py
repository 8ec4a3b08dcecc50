"""Contracts every registered proxy and search strategy keeps (spaces, attacks and recipes
have theirs beside their own tests)."""

from __future__ import annotations

import math

import pytest
import torch

from robnas import proxies, search, spaces
from robnas.proxies import base

ARCH = "|nor_conv_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|avg_pool_3x3~0|nor_conv_3x3~1|skip_connect~2|"


@pytest.fixture(scope="module")
def batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(4, 3, 16, 16, generator=g), torch.tensor([0, 1, 2, 3])


def _net(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return spaces.get("nb201").build(ARCH, num_classes=10, C=4, N=1)


@pytest.mark.parametrize("name", proxies.names())
def test_every_proxy_is_deterministic_leaves_the_network_alone_and_never_raises(name, batch):
    x, y = batch
    net = _net()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    spec = base.PROXIES.get(name)
    first = proxies.run(name, net, x, y)
    assert isinstance(first.value, float) and first.seconds >= 0
    assert math.isfinite(first.value) or first.error, f"{name}: NaN without a reason"
    for key, value in net.state_dict().items():  # a proxy scores a copy (or restores what it changed)
        assert torch.equal(value, before[key]), f"{name} changed {key}"
    assert spec.paper or name in ("params", "flops", "l2_norm", "plain"), f"{name} cites no paper"
    again = proxies.run(name, _net(), x, y)
    if math.isfinite(first.value):
        assert again.value == pytest.approx(first.value, rel=1e-6, abs=1e-9), f"{name} is not deterministic"


def test_a_failing_proxy_is_a_nan_with_its_reason(batch):
    x, y = batch
    result = proxies.run("croze", torch.nn.Identity(), x, y)
    assert math.isnan(result.value) and result.error


def test_every_strategy_is_in_the_budget_contract_test():
    """tests/test_search.py runs each strategy through the budget contract (strategies that need a
    trained supernet: tests/test_oneshot_robnets.py); a new strategy must join it."""
    import test_oneshot_robnets
    import test_search

    marks = [
        *test_search.test_every_strategy_spends_its_budget_on_distinct_archs.pytestmark,
        *test_oneshot_robnets.test_one_shot_strategies_spend_their_budget_on_distinct_archs.pytestmark,
    ]
    covered = {params[0] for mark in marks if mark.name == "parametrize" for params in mark.args[1]}
    assert set(search.STRATEGIES) <= covered, f"strategies without a contract run: {set(search.STRATEGIES) - covered}"
