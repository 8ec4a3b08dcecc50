"""RobNets' FSP indicator (robnets_wsrnas.md A2.5) on tiny networks against hand computations."""

from __future__ import annotations

import pytest
import torch

from robnas import spaces
from robnas.errors import ConfigError
from robnas.oneshot.robnets.fsp import (
    FSPOptions,
    cell_fsp_matrices,
    fsp_losses,
    fsp_matrix,
    fsp_score,
    keep_lowest,
)


@pytest.fixture(scope="module")
def net() -> torch.nn.Module:
    torch.manual_seed(0)
    space = spaces.get("robnet")
    return space.build(space.sample(0), num_classes=10, C=4, layers=5).eval()


def test_fsp_matrix_by_hand():
    f_in = torch.tensor([[[[1.0, 0.0], [2.0, 1.0]]], [[[0.0, 1.0], [1.0, 1.0]]]])  # (2, 1, 2, 2)
    f_out = torch.stack([torch.tensor([[1.0, 2.0], [3.0, 4.0]]), torch.tensor([[0.0, 1.0], [0.0, 1.0]])])
    f_out = f_out[:, None].expand(2, 2, 2, 2).clone()
    f_out[:, 1] *= 2
    g = fsp_matrix(f_in, f_out)
    assert g.shape == (2, 1, 2)
    assert g[0, 0, 0].item() == pytest.approx((1 * 1 + 0 * 2 + 2 * 3 + 1 * 4) / 4)
    assert g[1, 0, 1].item() == pytest.approx(2 * (0 * 0 + 1 * 1 + 1 * 0 + 1 * 1) / 4)
    with pytest.raises(ConfigError, match="one size"):
        fsp_matrix(torch.ones(1, 2, 4, 4), torch.ones(1, 2, 2, 2))


def test_first_cell_matches_a_hand_computation(net):
    x = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        stem = net.stem(x)
        cell = net.cells[0]
        f_in, f_out = cell.preprocess1(stem), cell(stem, stem)
        hand = torch.einsum("bihw,bjhw->bij", f_in, f_out) / (32 * 32)
        got = cell_fsp_matrices(net, x, FSPOptions(cells=(0,)))[0]
    assert torch.allclose(got, hand, rtol=1e-5, atol=1e-7)


def test_losses_select_cells_and_vanish_without_perturbation(net):
    x = torch.rand(2, 3, 32, 32)
    normal = [i for i, c in enumerate(net.cells) if not c.reduction]
    assert len(fsp_losses(net, x, x + 0.03, FSPOptions())) == len(normal)
    assert len(fsp_losses(net, x, x + 0.03, FSPOptions(cells="all"))) == len(net.cells)  # reductions pooled
    assert len(fsp_losses(net, x, x + 0.03, FSPOptions(deepest=2))) == 2
    assert fsp_score(net, x, x) == 0
    assert fsp_score(net, x, (x + 0.03 * torch.randn_like(x)).clamp(0, 1)) > 0
    for choice in ("s1", "s0", "both-preprocessed"):
        assert fsp_score(net, x, x + 0.03, FSPOptions(cell_input=choice)) > 0


def test_bad_input(net):
    with pytest.raises(ConfigError, match="no cells"):
        fsp_losses(spaces.get("nb201").build(spaces.get("nb201").sample(0), C=4, N=1), torch.rand(1, 3, 32, 32),
                   torch.rand(1, 3, 32, 32))  # fmt: skip
    with pytest.raises(ConfigError, match="out of range"):
        fsp_losses(net, torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32), FSPOptions(cells=(99,)))
    with pytest.raises(ConfigError, match="cell_input"):
        FSPOptions(cell_input="s2")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="fraction"):
        keep_lowest([1.0], 0)


def test_keep_lowest_fraction():
    assert keep_lowest([3.0, float("nan"), 1.0, 2.0], 0.5) == [2, 3]
    assert keep_lowest([3.0], 0.1) == [0]
