"""Classic zero-cost proxies: size, gradient, Jacobian, Zen and NTK families."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import robnas
from robnas.errors import ConfigError
from robnas.proxies import base, gradient, ntk

CLASSIC = [
    "params",
    "flops",
    "l2_norm",
    "grad_norm",
    "snip",
    "grasp",
    "fisher",
    "plain",
    "synflow",
    "jacov",
    "nwot",
    "epe_nas",
    "zen",
    "ntk_trace",
    "ntk_condnum",
    "hnas",
]
ARCH = "|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"


def tiny_net(arch: str = ARCH, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return robnas.spaces.get("nb201").build(arch, C=4, N=1)


def tiny_batch(
    n: int = 8, size: int = 8, classes: int = 10, seed: int = 1
) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, size, size, generator=g), torch.randint(0, classes, (n,), generator=g)


def linear_model(d: int = 5, k: int = 3, bias: bool = False, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(d, k, bias=bias))


def test_all_classic_proxies_are_registered():
    assert set(CLASSIC) <= set(base.names())


@pytest.mark.parametrize("name", CLASSIC)
def test_proxy_is_finite_deterministic_and_leaves_the_model_alone(name):
    net = tiny_net()
    net.eval()
    frozen = next(net.parameters()).requires_grad_(False)
    x, y = tiny_batch()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    x_before = x.clone()
    values = []
    for _ in range(2):
        torch.manual_seed(123)
        result = base.run(name, net, x, y)
        assert result.error == "", result.error
        values.append(result.value)
    assert math.isfinite(values[0])
    assert values[0] == values[1]
    after = net.state_dict()
    assert before.keys() == after.keys()
    for key, value in before.items():
        assert torch.equal(value, after[key]), key
    assert not any(m.training for m in net.modules())
    assert all(p.grad is None for p in net.parameters())
    assert not frozen.requires_grad and all(p.requires_grad for p in net.parameters() if p is not frozen)
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in net.modules())
    assert torch.equal(x, x_before) and not x.requires_grad


def test_read_only_proxies_run_on_the_callers_network_and_others_on_a_copy():
    """``copy=False`` proxies skip the private copy (the test above checks they leave the network
    as found); a proxy that changes the network cannot be declared read-only."""
    read_only = {n for n in base.names() if not base.PROXIES.get(n).copy}
    assert {"params", "grad_norm", "snip", "jacov", "nwot", "robust_zc"} <= read_only
    assert not read_only & {"synflow", "grasp", "croze", "croze_fixed"}
    with pytest.raises(ValueError, match="copy=False"):
        base.register("bad", copy=False, bn="remove")


def test_grad_norm_snip_and_plain_share_one_gradient_pass_with_cold_values():
    net, (x, y) = tiny_net(), tiny_batch()
    cold = {}
    for name in ("grad_norm", "snip", "plain"):
        gradient._LAST_GRADIENTS.clear()
        cold[name] = base.run(name, net, x, y).value
    gradient._LAST_GRADIENTS.clear()
    assert base.run("snip", net, x, y).value == cold["snip"]
    kept = gradient._LAST_GRADIENTS.value
    assert base.run("grad_norm", net, x, y).value == cold["grad_norm"]
    assert base.run("plain", net, x, y).value == cold["plain"]
    assert gradient._LAST_GRADIENTS.value is kept  # one backward for the three
    base.run("snip", tiny_net(seed=1), x, y)  # another initialisation: recomputed
    assert gradient._LAST_GRADIENTS.value is not kept
    base.run("snip", net, x[:4], y[:4])  # another batch: recomputed
    assert base.run("snip", net, x, y).value == cold["snip"]


def test_params_and_l2_norm_match_their_definitions():
    net = tiny_net()
    x, y = tiny_batch()
    assert base.compute("params", net, x, y) == pytest.approx(sum(p.numel() for p in net.parameters()) / 1e6)
    norms = [m.weight.norm().item() for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert base.compute("l2_norm", net, x, y) == pytest.approx(sum(norms), rel=1e-6)


def test_flops_counts_conv_and_linear_macs_at_the_input_size():
    net = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 10)
    )
    x, y = tiny_batch(size=8)
    assert base.compute("flops", net, x, y) == pytest.approx((4 * 8 * 8 * 3 * 9 + 256 * 10) / 1e6)
    # elementwise mode adds one operation per ReLU element
    assert base.compute("flops", net, x, y, include_elementwise=True) == pytest.approx(
        (4 * 8 * 8 * 3 * 9 + 256 * 10 + 256) / 1e6
    )
    # the same NB201 network at 16x16 costs 4x the 8x8 convolutions
    nb = tiny_net()
    small = base.compute("flops", nb, *tiny_batch(size=8))
    large = base.compute("flops", nb, *tiny_batch(size=16))
    classifier = 16 * 10 / 1e6
    assert large - classifier == pytest.approx(4 * (small - classifier))


def test_gradient_proxies_of_a_linear_softmax_model_match_the_closed_form():
    net = linear_model(bias=True)
    x, y = torch.randn(6, 5), torch.tensor([0, 1, 2, 0, 1, 2])
    w, b = net[1].weight.detach(), net[1].bias.detach()
    p = torch.softmax(x @ w.T + b, 1)
    dl_dout = (p - F.one_hot(y, 3)) / len(x)
    grad_w = dl_dout.T @ x
    assert base.compute("grad_norm", net, x, y) == pytest.approx(grad_w.norm().item(), rel=1e-5)
    assert base.compute("snip", net, x, y) == pytest.approx((w * grad_w).abs().sum().item(), rel=1e-5)
    assert base.compute("plain", net, x, y) == pytest.approx((w * grad_w).sum().item(), rel=1e-5, abs=1e-7)
    act = x @ w.T + b
    fisher_c = 0.5 * (act * dl_dout).pow(2).mean(0)
    assert base.compute("fisher", net, x, y) == pytest.approx((fisher_c.abs().sum() * 5).item(), rel=1e-5)


def test_grasp_matches_an_explicit_hessian():
    net = linear_model(bias=False).double()
    x, y = torch.randn(6, 5, dtype=torch.float64), torch.tensor([0, 1, 2, 0, 1, 2])
    w0 = net[1].weight.detach().clone()

    def loss(flat_w: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(x @ flat_w.reshape(3, 5).T, y)

    flat = w0.flatten()
    hessian = torch.autograd.functional.hessian(loss, flat)
    g = torch.autograd.functional.jacobian(loss, flat)
    expected = -(flat * (hessian @ g)).sum().item()
    assert base.compute("grasp", net, x, y) == pytest.approx(expected, rel=1e-8)


BATCHNORMS = [nn.BatchNorm2d(4), nn.BatchNorm2d(4, affine=False), nn.BatchNorm1d(4)]


def _train_mode_bn(bn: nn.modules.batchnorm._BatchNorm) -> tuple[nn.Module, torch.Tensor, list[torch.Tensor]]:
    torch.manual_seed(0)
    bn = copy.deepcopy(bn).double().train()
    if bn.weight is not None:
        nn.init.uniform_(bn.weight, 0.5, 1.5)
        nn.init.uniform_(bn.bias, -0.5, 0.5)
    shape = (6, 4, 5, 5) if isinstance(bn, nn.BatchNorm2d) else (6, 4)
    x = (torch.randn(shape, dtype=torch.float64) * 2 + 1).requires_grad_()
    return bn, x, [x] + [p for p in (bn.weight, bn.bias) if p is not None]


@pytest.mark.parametrize("bn", BATCHNORMS)
def test_second_order_batchnorm_equals_train_mode_batchnorm_to_second_order(bn):
    bn, x, inputs = _train_mode_bn(bn)
    probe = torch.randn(x.shape, dtype=torch.float64)

    def derivatives(layer: nn.Module) -> list[torch.Tensor]:
        out = layer(x)
        first = torch.autograd.grad((out * probe).pow(2).sum(), inputs, create_graph=True)
        second = torch.autograd.grad(sum(g.square().sum() for g in first), inputs)
        return [out, *first, *second]

    ours = derivatives(base.SecondOrderBatchNorm(bn))
    for mine, torchs in zip(ours, derivatives(bn), strict=True):
        torch.testing.assert_close(mine, torchs, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("bn", BATCHNORMS)
def test_second_order_batchnorm_passes_gradgradcheck(bn):
    bn, _, inputs = _train_mode_bn(bn)
    inputs[0] = inputs[0][:3].detach().requires_grad_()  # small: gradgradcheck is numerical
    norm = base.SecondOrderBatchNorm(bn)

    def fn(x: torch.Tensor, *params: torch.Tensor) -> torch.Tensor:
        weight, bias = params if params else (None, None)
        return base._BatchNormTwiceDifferentiable.apply(x, weight, bias, norm.eps)

    assert torch.autograd.gradcheck(fn, inputs)
    assert torch.autograd.gradgradcheck(fn, inputs)


def test_grasp_uses_second_order_batchnorm_with_the_same_value():
    assert base.PROXIES.get("grasp").bn == "second-order"
    net, (x, y) = tiny_net().double(), tiny_batch()
    prepared = base.prepare(net, base.PROXIES.get("grasp"))
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in prepared.modules())
    assert sum(isinstance(m, base.SecondOrderBatchNorm) for m in prepared.modules()) == sum(
        isinstance(m, nn.BatchNorm2d) for m in net.modules()
    )
    fused = copy.deepcopy(net).train()
    expected = gradient.grasp(fused, x.double(), y)
    assert base.compute("grasp", net, x.double(), y) == pytest.approx(expected, rel=1e-9)


def test_cpu_image_batches_reach_proxies_channels_last_with_the_same_values():
    x, _ = tiny_batch()
    spec = base.PROXIES.get("croze")
    prepared = base.prepare_inputs(x, spec)
    assert prepared.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous(
        memory_format=torch.channels_last
    )
    assert prepared.dtype == torch.float64 and torch.equal(prepared, x.double())
    flat = torch.randn(4, 5)
    assert base.prepare_inputs(flat, base.PROXIES.get("snip")) is flat
    net, (x, y) = tiny_net(), tiny_batch()
    channels_last = x.contiguous(memory_format=torch.channels_last)
    assert base.compute("snip", net, x, y) == base.compute("snip", net, channels_last, y)


def test_synflow_of_a_two_layer_linear_net_is_twice_the_path_sum():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(4, 3, bias=False), nn.Linear(3, 2, bias=False))
    x, y = torch.randn(5, 4), torch.zeros(5, dtype=torch.long)
    w1, w2 = net[1].weight.detach().double().abs(), net[2].weight.detach().double().abs()
    paths = (w2 @ w1 @ torch.ones(4, dtype=torch.float64)).sum().item()  # R for an all-ones input
    # synaptic flow is conserved: each layer's sum |W * dR/dW| equals R
    assert base.compute("synflow", net, x, y) == pytest.approx(2 * paths, rel=1e-12)


def test_synflow_ignores_the_data_but_not_the_input_shape():
    net = tiny_net()
    x, y = tiny_batch()
    a = base.compute("synflow", net, x, y)
    assert base.compute("synflow", net, torch.randn_like(x), torch.zeros_like(y)) == a
    assert base.compute("synflow", net, *tiny_batch(size=16)) != a


def test_jacov_and_epe_nas_of_a_linear_model_match_the_closed_form():
    # f(x) = W x: every image has the same input Jacobian 1^T W, so the correlation matrix is
    # all ones, with eigenvalues (n, 0, ..., 0).
    net = linear_model(d=5, k=3)
    x, y = torch.randn(6, 5), torch.tensor([0, 1, 1, 2, 2, 2])
    k = 1e-5
    n = len(x)
    expected = -((math.log(n + k) + 1 / (n + k)) + (n - 1) * (math.log(k) + 1 / k))
    assert base.compute("jacov", net, x, y) == pytest.approx(expected, rel=1e-6)
    # each class's correlation block is all ones: s_c = count_c^2 * log(1 + k)
    epe = sum(c * c * math.log(1 + k) for c in (1, 2, 3))
    assert base.compute("epe_nas", net, x, y) == pytest.approx(epe, rel=1e-4)


def test_nwot_is_the_log_determinant_of_the_hamming_kernel():
    net = nn.Sequential(nn.ReLU(), nn.Flatten(), nn.Linear(12, 2))
    x = torch.randn(5, 12)
    codes = (x > 0).numpy().astype(float)
    kernel = codes @ codes.T + (1 - codes) @ (1 - codes).T
    expected = np.linalg.slogdet(kernel)[1]
    assert base.compute("nwot", net, x, torch.zeros(5, dtype=torch.long)) == pytest.approx(
        expected, rel=1e-10
    )


def test_zen_is_data_independent_and_seeded():
    net = tiny_net()
    x, y = tiny_batch()
    a = base.compute("zen", net, x, y, seed=3)
    assert base.compute("zen", net, torch.randn_like(x), y, seed=3) == a
    assert base.compute("zen", net, x, y, seed=4) != a
    assert base.compute("zen", net, x, y, seed=3, repeat=2) != a


def test_ntk_trace_of_a_linear_model_is_the_rms_input_norm():
    x, y = torch.randn(7, 5), torch.tensor([0, 1, 2, 0, 1, 2, 0])
    for bias in (False, True):  # biases are not part of the NTK
        net = linear_model(bias=bias)
        expected = x.pow(2).sum(1).mean().sqrt().item()
        assert base.compute("ntk_trace", net, x, y) == pytest.approx(expected, rel=1e-6)
        assert base.compute("ntk_trace", net, x, y, per_sample="exact") == pytest.approx(expected, rel=1e-6)


def test_ntk_condition_number_of_a_linear_model():
    net = linear_model(d=8)
    x, y = torch.randn(4, 8, dtype=torch.float64), torch.tensor([0, 0, 1, 1])
    gram = (x @ x.T) * (y[:, None] == y[None, :])
    lam = np.linalg.eigvalsh(gram.numpy())
    assert base.compute("ntk_condnum", net.double(), x, y) == pytest.approx(lam[-1] / lam[0], rel=1e-8)


def test_ntk_hooks_and_exact_per_sample_gradients_agree_without_batchnorm():
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(4, 4, 3, stride=2, padding=1, groups=2),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, 3),
    )
    x, y = tiny_batch(n=5, size=6, classes=3)
    hooks = ntk.ntk_gram(net, x, y, per_sample="hooks")
    exact = ntk.ntk_gram(net, x, y, per_sample="exact", chunk=2)
    torch.testing.assert_close(hooks, exact, rtol=1e-4, atol=1e-6)


def test_hnas_combines_trace_and_condition_number_and_checks_its_options():
    net = tiny_net()
    x, y = tiny_batch()
    m = base.compute("ntk_trace", net, x, y)
    kappa = base.compute("ntk_condnum", net, x, y)
    nu, mu = 3.0, 0.5
    expected = -(mu * abs(m * m - nu * nu) + kappa / m)
    assert base.compute("hnas", net, x, y, nu=nu, mu=mu) == pytest.approx(expected, rel=1e-6)
    gn = base.compute("grad_norm", net, x, y)
    expected_gn = -(mu * abs(gn * gn - nu * nu) + kappa / gn)
    assert base.compute("hnas", net, x, y, nu=nu, mu=mu, metric="grad_norm") == pytest.approx(
        expected_gn, rel=1e-5
    )
    bad = base.run("hnas", net, x, y, metric="synflow")
    assert math.isnan(bad.value) and "metric" in bad.error
    assert "mu" in base.run("hnas", net, x, y, mu=0.0).error
    assert "per_sample" in base.run("ntk_trace", net, x, y, per_sample="loop").error
    with pytest.raises(ConfigError):
        ntk.hnas(tiny_net(), x, y, nu=-1.0)


def test_condition_number_follows_hnas_for_nan():
    assert ntk.condition_number(torch.zeros(3, 3)) == ntk.NAN_CONDITION


def test_failures_become_nan_with_a_reason():
    dead = tiny_net("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|")
    x, y = tiny_batch()
    result = base.run("jacov", dead, x, y)
    assert math.isnan(result.value) and "jacov" in result.error
    no_pool = linear_model()
    result = base.run("zen", no_pool, torch.randn(4, 5), torch.zeros(4, dtype=torch.long))
    assert math.isnan(result.value) and "pooling" in result.error
    result = base.run("nwot", tiny_net(), *tiny_batch(n=1))
    assert math.isnan(result.value) and "at least 2" in result.error
    with pytest.warns(RuntimeWarning, match="jacov"):
        assert math.isnan(base.compute("jacov", dead, x, y))


def test_gradient_helpers_leave_no_gradients_behind():
    net = tiny_net()
    x, y = tiny_batch()
    gradient.grasp(net, x, y)
    assert all(p.grad is None for p in net.parameters())


def _count_call(module: nn.Module, _inputs: object, _output: object) -> None:
    module.calls += 1


class _Tied(nn.Module):
    """Awkward corners for a module copy: tied weights, a plain list of submodules, a hook."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(4, 4)
        self.b = nn.Linear(4, 4)
        self.b.weight = self.a.weight
        self.order = [self.b, self.a]
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))
        self.a.calls = 0
        self.a.register_forward_hook(_count_call)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.order:
            x = layer(x)
        return x


@pytest.mark.parametrize(
    "make",
    [
        lambda: _Tied(),
        lambda: robnas.spaces.get("nb201").build(ARCH, C=8, N=1),
        lambda: robnas.spaces.get("darts").build(
            robnas.spaces.get("darts").sample(np.random.default_rng(0)),
            C=8,
            layers=3,
            auxiliary=True,
            drop_path_prob=0.2,
        ),
        lambda: robnas.spaces.get("robnet").build(
            robnas.spaces.get("robnet").sample(np.random.default_rng(0)), C=8, layers=3
        ),
    ],
)
@pytest.mark.parametrize("dtype", [None, torch.float64])
def test_clone_module_is_a_deep_copy(make, dtype):
    torch.manual_seed(0)
    model = make().eval()
    clone = base.clone_module(model, dtype)
    reference = copy.deepcopy(model)
    if dtype is not None:
        reference.to(dtype)
    assert type(clone) is type(model) and not clone.training
    ours, theirs = clone.state_dict(keep_vars=True), reference.state_dict(keep_vars=True)
    assert list(ours) == list(theirs)
    originals = {t.data_ptr() for t in model.state_dict().values()}
    for key, value in ours.items():
        assert torch.equal(value, theirs[key]) and value.dtype == theirs[key].dtype, key
        assert value.data_ptr() not in originals, key
        assert type(value) is type(theirs[key]) and value.requires_grad == theirs[key].requires_grad, key
    assert [type(m) for m in clone.modules()] == [type(m) for m in reference.modules()]
    x = torch.rand(2, 4) if isinstance(model, _Tied) else torch.rand(2, 3, 32, 32)
    x = x.to(dtype) if dtype is not None else x
    assert torch.equal(clone(x), reference(x))
    if isinstance(model, _Tied):  # sharing is preserved inside the copy, never with the original
        assert clone.b.weight is clone.a.weight and clone.order[0] is clone.b and clone.order[1] is clone.a
        assert clone.a.calls == 1 and model.a.calls == 0
    for p in clone.parameters():
        p.data.zero_()
    assert any(bool(p.abs().sum() > 0) for p in model.parameters())


def test_last_result_is_reused_only_on_the_same_bits():
    net, (x, _) = tiny_net(), tiny_batch()
    memo: base.LastResult[str] = base.LastResult()
    value, key = memo.lookup(net, x, tag="t")
    assert value is None
    memo.put(key, "kept")
    assert memo.lookup(net, x, tag="t")[0] == "kept"
    assert memo.lookup(net, x, tag="other")[0] is None  # another pass
    assert memo.lookup(net, x.clone(), tag="t")[0] == "kept"  # same values, another tensor
    w = next(net.parameters())
    with torch.no_grad():
        w.view(-1)[0] = torch.nextafter(w.view(-1)[0], torch.tensor(math.inf))
    assert memo.lookup(net, x, tag="t")[0] is None  # one ulp of one weight
    zero, nan = torch.zeros(3), torch.full((3,), math.nan)
    assert base._same_bits(nan, nan.clone()) and not base._same_bits(zero, -zero)
