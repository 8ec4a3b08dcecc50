"""The cell network skeleton shared by the DARTS and RobNets spaces (robnas.spaces.network)."""

from __future__ import annotations

import hashlib

import pytest
import torch
from torch import Tensor, nn

from robnas import spaces, zoo
from robnas.spaces import darts, network, robnet

DARTS_V2 = zoo.MODELS.get("darts_v2").arch
CROZE = (
    "Genotype(normal=[('sep_conv_7x7', 0), ('conv_7x1_1x7', 1), ('skip_connect', 0), ('dil_conv_5x5', 1), "
    "('avg_pool_3x3', 2), ('sep_conv_3x3', 0), ('max_pool_3x3', 1), ('sep_conv_5x5', 2), ('skip_connect', 3), "
    "('sep_conv_3x3', 0), ('dil_conv_3x3', 1), ('sep_conv_3x3', 2), ('skip_connect', 3), ('sep_conv_3x3', 4)], "
    "normal_concat=[5, 2, 2], reduce=[('max_pool_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), "
    "('skip_connect', 1), ('dil_conv_5x5', 2), ('conv_7x1_1x7', 0), ('avg_pool_3x3', 1), ('sep_conv_5x5', 2), "
    "('skip_connect', 3), ('sep_conv_7x7', 0), ('sep_conv_3x3', 1), ('max_pool_3x3', 2), ('skip_connect', 3), "
    "('dil_conv_3x3', 4)], reduce_concat=[3, 4, 4])"
)
ROBNET_LARGE_V1 = "33333131231113"


def _layout(net: nn.Module) -> tuple[int, int, str]:
    lines = [f"{k}:{tuple(v.shape)}" for k, v in net.state_dict().items()]
    digest = hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]
    return len(lines), sum(p.numel() for p in net.parameters()), digest


def test_darts_and_robnet_networks_are_cell_networks_of_one_module() -> None:
    assert issubclass(darts.DartsNetwork, network.CellNetwork)
    assert issubclass(robnet.RobNetNetwork, network.CellNetwork)
    assert issubclass(darts.DartsCell, network.Cell) and issubclass(robnet.RobNetCell, network.Cell)
    # the names users import from robnas.spaces.darts are the network module's, not copies
    for name in ("Cell", "CellNetwork", "AuxiliaryHeadCIFAR", "AuxiliaryHeadImageNet", "count_parameters"):
        assert getattr(darts, name) is getattr(network, name)
    assert darts.parameters_m is network.parameters_m


@pytest.mark.parametrize(
    "space, arch, options, expected",
    [
        ("darts", DARTS_V2, {"auxiliary": True}, (1650, 3825768, "22e4c29796349dc3")),
        ("darts", DARTS_V2, {"auxiliary": True, "imagenet": True, "C": 48, "layers": 14}, (1124, 4456908, "5acac42daa0e90ea")),
        ("darts-croze", CROZE, {"auxiliary": True}, (2350, 7249584, "2ccd0dbf7cc72926")),
        ("robnet", ROBNET_LARGE_V1, {}, (2830, 6842710, "b765f87556a5cc1f")),
        ("robnet-free", ",".join([ROBNET_LARGE_V1] * 14), {"layers": 14, "imagenet": True}, (2015, 4881340, "e6e610a13e59ca6b")),
    ],
)
def test_state_dict_layout_and_size_are_pinned(space: str, arch: str, options: dict, expected: tuple) -> None:
    """Published weights (the zoo) load by state_dict key: the layout must never change."""
    s = spaces.get(space, max_params_m=None)
    with torch.device("meta"):
        net = s.build(s.parse(arch), **options)
    assert _layout(net) == expected


class _ArchCell(network.Cell):
    """A cell whose operation is chosen at forward time, as a weight-sharing supernet's."""

    multiplier = 1

    def __init__(self, c_pp: int, c_p: int, c: int, reduction: bool) -> None:
        super().__init__()
        stride = 2 if reduction else 1
        self.ops = nn.ModuleList(nn.Conv2d(c_p, c, 3, stride, 1) for _ in range(2))

    def forward(self, s0: Tensor, s1: Tensor, drop_prob: float = 0.0, arch: int = 0) -> Tensor:
        return self.ops[arch](s1)


class _Supernet(network.CellNetwork):
    def __init__(self) -> None:
        super().__init__(lambda i, c_pp, c_p, c, red, red_prev: _ArchCell(c_pp, c_p, c, red), 4, 10, 3)

    def forward(self, x: Tensor, arch: int = 0) -> Tensor:  # type: ignore[override]
        return self._run(x, False, None, arch=arch)[0]


def test_cells_receive_an_architecture_at_forward_time() -> None:
    net = _Supernet().eval()
    x = torch.randn(2, 3, 16, 16)
    a, b = net(x, arch=0), net(x, arch=1)
    assert a.shape == b.shape == (2, 10) and not torch.allclose(a, b)
    logits, feats = net.forward_features(x)
    assert torch.allclose(logits, a) and len(feats) == 3 + 2


@pytest.mark.parametrize("space", ["darts", "darts-croze", "robnet", "robnet-free"])
def test_parameter_counts_without_building_equal_the_built_networks(space: str, monkeypatch) -> None:
    """The size cap counts from memoised per-operation sizes; it must match the real network."""
    s = spaces.get(space, max_params_m=None)
    with monkeypatch.context() as m:  # counting builds no network (a C=36, 20-cell build takes a second)
        m.setattr(network.CellNetwork, "__init__", lambda *a, **k: pytest.fail("network built"))
        assert s.parameters_m(s.sample(0)) > 0.5
    layers = 20 if space == "robnet-free" else 5
    for seed, options in enumerate(
        [{}, {"C": 8, "layers": layers}, {"C": 8, "layers": layers, "imagenet": True}, {"C": 6, "layers": layers}]
    ):
        arch = s.sample(seed)
        with torch.device("meta"):
            built = network.count_parameters(s.build(arch, 100, **options))
        assert s.parameters_m(arch, 100, **options) * 1e6 == pytest.approx(built, abs=0.5)
