"""robust_zc: MeCo's smallest eigenvalue of the channel correlation, summed over ReLU inputs."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import robnas
from robnas.proxies import robust

ARCH = "|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"


class TwoRelus(nn.Module):
    """Logits from two ReLU calls: on ``x`` and on ``2 x + 1`` (same correlations)."""

    def __init__(self) -> None:
        super().__init__()
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.relu(x) + self.relu(2 * x + 1)).flatten(1)[:, :10]


def test_robust_zc_is_the_mean_smallest_eigenvalue_of_channel_correlations_summed_over_relu_calls():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 4, 5, 5, generator=g)
    per_image = [float(torch.linalg.eigvalsh(torch.corrcoef(img.flatten(1).double()))[0]) for img in x]
    expected = 2 * sum(per_image) / len(per_image)
    assert robnas.proxies.compute("robust_zc", TwoRelus(), x, torch.zeros(3, dtype=torch.long)) == pytest.approx(
        expected, rel=1e-6  # the network runs in float32
    )


def test_collinear_channels_score_zero_and_independent_ones_score_more():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, 6, 6, generator=g)
    twins = torch.cat([x[:, :2], 3 * x[:, :1] + 1], dim=1)  # channel 2 is a copy of channel 0
    assert robust.channel_decorrelation(nn.ReLU(), twins) == pytest.approx(0.0, abs=1e-9)
    assert robust.channel_decorrelation(nn.ReLU(), x) > 0.1
    wide = torch.randn(2, 4, 2, 2, generator=g)  # 4 channels, 4 positions: singular, skipped
    assert robust.channel_decorrelation(nn.ReLU(), wide) == 0.0


def test_a_network_without_relu_is_a_nan_with_its_reason():
    result = robnas.proxies.run("robust_zc", nn.Flatten(), torch.randn(2, 3, 4, 4), torch.zeros(2, dtype=torch.long))
    assert math.isnan(result.value) and "no nn.ReLU" in result.error


@pytest.mark.parametrize("space", ["nb201", "darts", "robnet"])
def test_robust_zc_scores_32_real_cifar10_images(shared_data, space):
    images = robnas.data.load_npz(shared_data / "cifar10" / "cifar10_exact_subset.npz", name="cifar10")
    x, y = robnas.data.proxy_batch(images, 32, seed=0)
    sp = robnas.spaces.get(space)
    torch.manual_seed(0)
    small = {"C": 4, "N": 1} if space == "nb201" else {"C": 4, "layers": 3}
    net = sp.build(ARCH if space == "nb201" else sp.sample(0), num_classes=10, **small)
    result = robnas.proxies.run("robust_zc", net, x, y)
    assert result.error == "" and math.isfinite(result.value) and result.value > 0


def test_contract_robust_zc_on_a_tiny_robustbench_network_as_trained(shared_data):
    """robnas.proxies.compute("robust_zc", net, x, y) on a DARTS network (C=16, 8 cells) and 32 CIFAR-10 images."""
    root = shared_data / "tiny_robustbench"
    if not root.is_dir():
        pytest.skip(f"{root} is absent")
    bench = robnas.benchmarks.open("tiny-robustbench", root)
    images = robnas.data.load_npz(shared_data / "cifar10" / "cifar10_exact_subset.npz", name="cifar10")
    x, y = robnas.data.proxy_batch(images, 32, seed=0)
    torch.manual_seed(0)
    net = bench.build(bench.keys[0])
    assert bench.build_options(bench.keys[0])["C"] == 16 and len(net.cells) == 8
    value = robnas.proxies.compute("robust_zc", net, x, y)
    assert math.isfinite(value) and value > 0


def test_robust_zc_reads_the_activations_without_changing_them():
    """The hook normalises its own copy: a float64 network (whose activations need no cast) gives
    the float32 network's value, and the forward pass it watches is the plain one."""
    from robnas.proxies.robust import channel_decorrelation

    torch.manual_seed(0)
    net = robnas.spaces.get("nb201").build(
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|skip_connect~1|+|skip_connect~0|nor_conv_3x3~1|avg_pool_3x3~2|", C=4, N=1
    )
    x = torch.randn(4, 3, 8, 8)
    single = channel_decorrelation(net.float(), x.float())
    double = channel_decorrelation(net.double(), x.double())
    assert double == pytest.approx(single, rel=1e-6)
    with torch.no_grad():
        plain = net(x.double())
    logits = []
    hook = net.register_forward_hook(lambda m, a, out: logits.append(out.detach().clone()))
    channel_decorrelation(net, x.double())
    hook.remove()
    assert torch.equal(logits[0], plain)
