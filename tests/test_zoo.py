"""The zoo of published architectures: sizes as published, builds, forward/backward, CLI."""

from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

from robnas import spaces, zoo
from robnas.errors import UnknownName
from robnas.spaces.darts import count_parameters

# (name, millions of parameters, tolerance). Counted like DARTS/CRoZe count_parameters_in_MB
# (auxiliary head excluded) with each entry's classes: RobNets and WsrNets from the
# reference notes' [calc] counts, CRoZe's from croze.md 4.2, DARTS-V2 the paper's 3.3M.
PUBLISHED_SIZES = [
    ("robnet_large_v1", 6.843, 0.005),
    ("robnet_free", 5.440, 0.005),
    ("robnet_large_v2", 33.327, 0.005),
    ("robnet_small", 4.360, 0.005),
    ("robnet_large_imagenet", 12.756, 0.005),
    ("croze_cifar10", 5.525, 0.005),
    ("croze_cifar100", 4.723, 0.005),
    ("croze_imagenet16", 4.667, 0.005),
    ("advrush", 4.158, 0.005),
    ("racl", 3.571, 0.005),
    ("pc_darts", 3.635, 0.005),
    ("drnas", 4.099, 0.005),
    ("wsrnet_basic", 4.545, 0.005),
    ("wsrnet_robust", 4.545, 0.005),
    ("wsrnet_m", 4.484, 0.005),
    ("wsrnet_m_1", 4.541, 0.005),
    ("wsrnet_n", 4.722, 0.005),
    ("wsrnet_plus", 4.737, 0.005),
    ("wsrnet_basic_imagenet", 13.162, 0.005),
    ("advrush_imagenet", 12.180, 0.005),
    ("racl_imagenet", 11.950, 0.005),
    ("darts_v2", 3.3, 0.05),
]


@pytest.mark.parametrize(("name", "size", "tol"), PUBLISHED_SIZES)
def test_published_parameter_counts(name: str, size: float, tol: float) -> None:
    with torch.device("meta"):
        model = zoo.create_model(name)
    assert count_parameters(model) / 1e6 == pytest.approx(size, abs=tol)


def test_the_list_covers_the_published_families() -> None:
    names = zoo.list_models()
    for required in [
        "robnet_large_v1",
        "robnet_large_v2",
        "robnet_free",
        "robnet_small",
        "wsrnet_basic",
        "wsrnet_robust",
        "wsrnet_m",
        "wsrnet_m_1",
        "wsrnet_n",
        "wsrnet_plus",
        "croze_cifar10",
        "croze_cifar100",
        "croze_imagenet16",
        "darts_v1",
        "darts_v2",
        "pc_darts",
        "drnas",
        "pdarts",
        "advrush",
        "racl",
    ]:
        assert required in names
    assert zoo.list_models("wsrnet_m*") == ["wsrnet_m", "wsrnet_m_1"]
    assert zoo.list_models("nothing*") == []


SEARCHED = [n for n in zoo.list_models() if zoo.get_entry(n).space != zoo.BASELINE]


@pytest.mark.parametrize("name", SEARCHED)
def test_every_entry_is_a_member_of_its_space(name: str) -> None:
    entry = zoo.get_entry(name)
    space = spaces.get(entry.space)
    arch = space.parse(entry.arch)
    assert space.parse(space.format(arch)) == arch


@pytest.mark.parametrize("name", SEARCHED)
def test_every_entry_runs_forward_and_backward(name: str) -> None:
    """Each architecture with its own cells, stem and classes at a small width and depth
    (C=8, at most 8 layers; a cell-free code keeps its 20 cells at C=4); batch 1, 32x32 (16x16
    for ImageNet16-120, 64x64 behind the stride-8 ImageNet stems). The full-size builds are
    covered by the parameter counts above and by test_full_width_forward_backward."""
    entry = zoo.get_entry(name)
    torch.manual_seed(0)
    small = {"C": 4} if entry.space == "robnet-free" else {"C": 8, "layers": min(entry.layers, 8)}
    net = zoo.create_model(name, **small)
    size = 64 if entry.imagenet else 16 if entry.input_size[1] == 16 else 32
    logits = net(torch.randn(1, 3, size, size))
    assert logits.shape == (1, entry.num_classes)
    logits.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in net.parameters() if p.grad is not None)


def test_full_width_forward_backward() -> None:
    net = zoo.create_model("croze_cifar10", num_classes=10)
    logits, feats = net.forward_features(torch.randn(1, 3, 32, 32))
    assert logits.shape == (1, 10) and len(feats) == 22
    logits.sum().backward()


def test_create_model_options() -> None:
    assert zoo.create_model("croze_cifar100", C=8, layers=3).classifier.out_features == 100
    assert zoo.create_model("croze_cifar100", num_classes=7, C=8, layers=3).classifier.out_features == 7
    net = zoo.create_model("darts_v2", C=8, layers=5, auxiliary=True)
    assert net.auxiliary_head is not None
    with pytest.raises(UnknownName, match="did you mean robnet_free"):
        zoo.create_model("robnet_fre")


def test_model_info() -> None:
    info = zoo.model_info("robnet_large_v2")
    assert info.space == "robnet" and (info.C, info.layers) == (64, 33)
    assert info.genotype.startswith("[['11', '11', '11'")
    assert info.params_m == pytest.approx(33.327, abs=0.005)
    # 5.10 GFLOPs measured for this network by zhichao-lu/robust-residual-network
    assert info.flops_m == pytest.approx(5100, rel=0.01)
    darts = zoo.model_info("darts_v2")
    assert darts.genotype.startswith("Genotype(normal=[('sep_conv_3x3', 0)")
    assert darts.input_size == (3, 32, 32)


def test_count_flops_matches_a_hand_count() -> None:
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1, groups=1), torch.nn.Flatten(), torch.nn.Linear(4 * 8 * 8, 5)
    )
    assert zoo.count_flops(net, (3, 8, 8)) == 8 * 8 * 4 * 3 * 9 + 256 * 5


def test_cli() -> None:
    from robnas.cli import app

    runner = CliRunner()
    listed = runner.invoke(app, ["zoo", "list", "robnet_*", "--no-params"])
    assert listed.exit_code == 0, listed.output
    assert "robnet_large_v1" in listed.output and "wsrnet" not in listed.output
    shown = runner.invoke(app, ["zoo", "show", "advrush"])
    assert shown.exit_code == 0, shown.output
    assert "4.158" in shown.output and "darts" in shown.output
    missing = runner.invoke(app, ["zoo", "show", "nope"])
    assert missing.exit_code == 2
