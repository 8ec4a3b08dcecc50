"""CRoZe (faithful and corrected): the quirks of the authors' code, checked one by one."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import robnas
from robnas.data import MEAN_STD, proxy_batch, synthetic
from robnas.errors import ProxyError
from robnas.proxies import base
from robnas.proxies import croze as C

SPACE = robnas.spaces.get("nb201")
CONV3 = ("nor_conv_3x3",) * 6
MIXED = ("nor_conv_3x3", "nor_conv_1x1", "avg_pool_3x3", "skip_connect", "nor_conv_3x3", "none")
# The conv on edge 0->1 only feeds 'none' edges: it runs, but its gradient is exactly zero.
DEAD_CONV = ("nor_conv_3x3", "skip_connect", "none", "skip_connect", "none", "skip_connect")


def _batch(n: int = 8, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = proxy_batch(synthetic(32, seed=seed), n, seed=seed)
    return x.double(), y


def _model(arch=MIXED, seed: int = 0, **size) -> nn.Module:
    torch.manual_seed(seed)
    return SPACE.build(arch, **size)


def _prepared(model: nn.Module, name: str = "croze") -> nn.Module:
    """What robnas.proxies.run hands the proxy: a float64 copy, BN policy applied."""
    return base.prepare(model, base.PROXIES.get(name))


def _weights(net: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p for n, p in net.named_parameters() if p.ndim > 1 and "weight" in n}


def test_registered_with_the_reference_policy():
    for name in ("croze", "croze_fixed"):
        spec = base.PROXIES.get(name)
        assert name in robnas.proxies.names("croze*")
        assert spec.bn == "remove" and spec.dtype == torch.float64 and spec.needs_data


def test_bn_policy_keeps_only_the_reduction_bn():
    net = _prepared(_model(CONV3))
    kept = [n for n, m in net.named_modules() if isinstance(m, nn.BatchNorm2d)]
    assert kept == ["cells.5.conv_a.2", "cells.5.conv_b.2", "cells.11.conv_a.2", "cells.11.conv_b.2"]
    assert all(m.training for m in net.modules())


def test_weight_step_is_exactly_twice_the_layer_norm():
    x, y = _batch()
    net = _prepared(_model(DEAD_CONV, C=8, N=2))
    base.linearize(net)
    adv = copy.deepcopy(net)
    C.perturb_weights(adv, x, y)
    before, after = _weights(net), _weights(adv)
    dead = {n for n in before if ".edges.0." in n}
    assert len(dead) == 6 and len(before) > len(dead)
    for name, w in before.items():
        ratio = float((after[name] - w).detach().norm() / w.detach().norm())
        assert ratio == pytest.approx(0.0 if name in dead else 2.0, abs=1e-9), name
    # biases and everything else are untouched
    for (name, p), q in zip(net.named_parameters(), adv.parameters(), strict=True):
        if name not in before:
            assert torch.equal(p, q), name


def test_the_pass_uses_the_same_weight_step():
    x, y = _batch()
    state = C.croze_pass(_prepared(_model(MIXED, C=8, N=2)), x, y)
    alive = [bool(g.abs().sum() > 0) for g in state.grads]
    assert 0 < sum(alive) < len(alive)  # MIXED's node 2 only feeds a 'none' edge
    for w, wr, moved in zip(state.weights, state.adv_weights, alive, strict=True):
        ratio = float((wr - w).norm() / w.norm())
        assert ratio == pytest.approx(2.0 if moved else 0.0, abs=1e-9)
    assert all(bool((w >= 0).all()) for w in state.weights)  # |W| linearisation
    # the network ends as the surrogate
    assert all(layer.weight is not w for layer, w in zip(state.fmap.layers, state.weights, strict=True))
    assert all(
        torch.equal(layer.weight, wr) for layer, wr in zip(state.fmap.layers, state.adv_weights, strict=True)
    )


def test_nb201_layer_to_feature_table():
    net = _model(CONV3)
    fmap = C.feature_map(net)
    assert not fmap.generic
    names = {id(m): n for n, m in net.named_modules()}
    # cells: 0-4 stage 1, 5 reduction 1, 6-10 stage 2, 11 reduction 2, 12-16 stage 3
    expected_by_cell = {0: 0, 1: 0, 2: 0, 3: 0, 4: 1, 5: 1, 6: 1, 7: 1, 8: 1, 9: 1}
    expected_by_cell |= {10: 2, 11: 2, 12: 2, 13: 2, 14: 2, 15: 2, 16: 3}
    seen = set()
    for layer, index in zip(fmap.layers, fmap.index, strict=True):
        name = names[id(layer)]
        if name.startswith("stem"):
            assert index == 0
        elif name == "classifier":
            assert index == 4
        else:
            cell = int(name.split(".")[1])
            assert index == expected_by_cell[cell], name
            seen.add(cell)
    assert seen == set(range(17))
    assert len(fmap.layers) == len(base.weight_layers(net))


def test_feature_shapes():
    _, feats = _model(CONV3).forward_features(torch.zeros(2, 3, 32, 32))
    shapes = [tuple(f.shape) for f in feats]
    assert shapes == [(2, 16, 32, 32), (2, 32, 16, 16), (2, 64, 8, 8), (2, 64, 8, 8), (2, 64)]


def _input_grad(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    probe = copy.deepcopy(net)
    x0 = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(F.cross_entropy(probe(x0), y), x0)
    return grad


def test_faithful_input_step_subtracts_and_clamps_normalised_inputs():
    x, y = _batch()
    net = _prepared(_model(MIXED, C=8, N=2))
    base.linearize(net)
    grad = _input_grad(net, x, y)
    x_adv = C.faithful_input_step(net, x, y)
    assert torch.equal(x_adv, torch.clamp(x - 0.01 * grad.sign(), 0, 1))
    inside = (x > 0.01) & (x < 0.99)
    assert torch.allclose((x_adv - x)[inside], -0.01 * grad.sign()[inside])
    # on normalised data the clamp, not the step, moves most entries
    assert float(((x_adv - x).abs() > 0.011).double().mean()) > 0.5
    assert all(p.grad is not None for p in net.parameters())  # the step leaves its gradients


def test_fixed_input_step_ascends_in_pixel_space():
    x, y = _batch()
    net = _prepared(_model(MIXED, C=8, N=2))
    base.linearize(net)
    grad = _input_grad(net, x, y)
    mean, std = (torch.tensor(v, dtype=x.dtype).view(1, 3, 1, 1) for v in MEAN_STD["cifar10"])
    eps = 8 / 255
    x_adv = C.fgsm_pixel_step(net, x, y, eps)
    pixels, adv_pixels = x * std + mean, x_adv * std + mean
    assert float(adv_pixels.min()) >= -1e-12 and float(adv_pixels.max()) <= 1 + 1e-12
    inside = (pixels > eps) & (pixels < 1 - eps)
    assert bool(inside.any())
    assert torch.allclose((adv_pixels - pixels)[inside], eps * grad.sign()[inside])
    assert all(p.grad is None for p in net.parameters())


@pytest.mark.parametrize("faithful", [True, False])
def test_surrogate_gradients(faithful):
    """Faithful: grad CE(adv(x)) + grad CE(adv(x')) accumulate; fixed: grad CE(adv(x')) only."""
    x, y = _batch()
    model = _model(MIXED, C=8, N=2)
    state = C.croze_pass(_prepared(model), x, y, faithful=faithful)
    probe = copy.deepcopy(state.net)  # the surrogate
    layers = [m for m in probe.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    weights = [m.weight for m in layers]
    on_adv = torch.autograd.grad(F.cross_entropy(probe(state.x_adv), y), weights)
    on_clean = torch.autograd.grad(F.cross_entropy(probe(x), y), weights)
    for g, g_adv, g_clean in zip(state.adv_grads, on_adv, on_clean, strict=True):
        expected = g_adv + g_clean if faithful else g_adv
        assert torch.allclose(g, expected, rtol=1e-9, atol=0)
    # the clean gradients are grad CE(net(x)) of the linearised clean network only
    clean = _prepared(model)
    base.linearize(clean)
    layers = [m for m in clean.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    expected = torch.autograd.grad(F.cross_entropy(clean(x), y), [m.weight for m in layers])
    for g, e in zip(state.grads, expected, strict=True):
        assert torch.allclose(g, e, rtol=1e-9, atol=0)


def _reference_procedure(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """The authors' algorithm written out step by step (three copies, SGD, joint backward)."""
    net = _prepared(model)
    advnet = copy.deepcopy(net)
    base.linearize(net)
    base.linearize(advnet)
    logits, feats = net.forward_features(x)
    throwaway = copy.deepcopy(advnet)
    sgd = torch.optim.SGD(throwaway.parameters(), lr=1e-3)
    sgd.zero_grad()
    (-F.cross_entropy(throwaway(x), y)).backward()
    sgd.step()
    with torch.no_grad():
        old, new = advnet.state_dict(), throwaway.state_dict()
        diffs = {k: new[k] - old[k] for k in old if old[k].ndim > 1 and "weight" in k}
        for k, d in diffs.items():
            old[k].add_(2.0 * old[k].norm() / (d.norm() + 1e-30) * d)
    x0 = x.clone().requires_grad_(True)
    advnet.zero_grad()
    F.cross_entropy(advnet(x0), y).backward()
    x_adv = torch.clamp(x0 - 0.01 * x0.grad.sign(), 0, 1)
    adv_logits, adv_feats = advnet.forward_features(x_adv.detach())
    (F.cross_entropy(logits, y) + F.cross_entropy(adv_logits, y)).backward()
    cos = nn.CosineSimilarity(dim=0)
    total = 0.0
    pairs = zip(net.layer_feature_indices(), advnet.layer_feature_indices(), strict=True)
    for (layer, m), (adv_layer, _) in pairs:
        if layer.weight.grad is None:
            continue
        s_w = (1 + cos(adv_layer.weight, layer.weight)).sum()
        s_g = cos(adv_layer.weight.grad, layer.weight.grad).abs().sum()
        s_z = (1 + cos(adv_feats[m], feats[m])).sum()
        total += abs(float((s_w * s_g * s_z).detach()))
    return total


@pytest.mark.parametrize("arch", [MIXED, DEAD_CONV])
def test_faithful_matches_the_reference_procedure(arch):
    x, y = _batch(seed=1)
    model = _model(arch, seed=2, C=8, N=3)
    result = robnas.proxies.run("croze", model, x.float(), y, rescale_float32=False)
    assert result.error == ""
    assert result.value == pytest.approx(_reference_procedure(model, x, y), rel=1e-7)


@pytest.mark.parametrize("name", ["croze", "croze_fixed"])
@pytest.mark.parametrize("arch", [MIXED, CONV3, DEAD_CONV])
def test_rescaled_float32_agrees_with_float64(name, arch):
    """The default float32 path (exact power-of-two rescaling) gives float64's value to float32
    rounding, on a network deep enough that its activations overflow float32 without it."""
    x, y = _batch(seed=3)
    model = _model(arch, seed=1, C=8, N=5)
    if arch == CONV3:  # plain float32 overflows here
        assert not math.isfinite(C.croze(_prepared(model).float(), x.float(), y, rescale_float32=False))
    fast = robnas.proxies.run(name, model, x.float(), y)
    exact = robnas.proxies.run(name, model, x.float(), y, rescale_float32=False)
    assert fast.error == "" and exact.error == ""
    assert fast.value == pytest.approx(exact.value, rel=1e-3)


def test_block_scaling_runs_the_residual_blocks_in_float32_too():
    x, y = _batch()
    state = C.croze_pass(_prepared(_model(MIXED, C=8, N=2)), x, y, rescale_float32=True)
    assert state.rescaled and state.x_adv.dtype == torch.float32
    assert {p.dtype for p in state.net.parameters()} == {torch.float32}
    # a network without rescale_blocks() stays in its own dtype
    plain = C.croze_pass(_prepared(_NoProtocol()), x, y, rescale_float32=True)
    assert not plain.rescaled and plain.x_adv.dtype == torch.float64
    # a BN outside a restart branch: no scaling (its output would not follow the scale)
    net = _prepared(_model(MIXED, C=8, N=2))
    net.cells[0].bn_outside = nn.BatchNorm2d(8)
    assert C.BlockScaling.attach(net) is None


def test_dead_conv_contributes_nothing():
    x, y = _batch()
    state = C.croze_pass(_prepared(_model(DEAD_CONV, C=8, N=2)), x, y)
    names = {id(m): n for n, m in state.net.named_modules()}
    terms = C.layer_consistencies(state)
    dead = [c for layer, c in zip(state.fmap.layers, terms, strict=True) if ".edges.0" in names[id(layer)]]
    assert len(dead) == 6 and all(c.grad == 0 and c.term == 0 for c in dead)
    assert sum(c.term > 0 for c in terms) == len(terms) - len(dead)
    # ... so the score equals that of the same network with the edge set to 'none'
    pruned = _model(("none", *DEAD_CONV[1:]), seed=5, C=8, N=2)
    full = _model(DEAD_CONV, seed=6, C=8, N=2)
    missing = full.load_state_dict(pruned.state_dict(), strict=False).missing_keys
    assert missing and all(".edges.0." in k for k in missing)
    a = robnas.proxies.run("croze", full, x.float(), y)
    b = robnas.proxies.run("croze", pruned, x.float(), y)
    assert a.value == pytest.approx(b.value, rel=1e-12)


class _NoProtocol(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.head = nn.Linear(4, 10)
        self.unused = nn.Linear(4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(F.adaptive_avg_pool2d(F.relu(self.conv(x)), 1).flatten(1))


def test_generic_map_and_layer_without_gradient():
    x, y = _batch()
    model = _NoProtocol()
    fmap = C.feature_map(model)
    assert fmap.generic and fmap.index == [0, 1, 2]
    state = C.croze_pass(_prepared(model), x, y)
    conv, head, unused = C.layer_consistencies(state)
    assert conv.used and head.used and conv.term > 0 and head.term > 0
    assert not unused.used and unused.term == 0 and state.grads[2] is None
    assert state.feats[0].shape == (8, 4, 32, 32) and state.feats[2] is None
    assert math.isfinite(robnas.proxies.compute("croze", model, x, y))


def test_float32_overflows_where_float64_is_finite():
    x, y = _batch()
    model = _model(CONV3)
    net32 = _prepared(model).float()
    assert not math.isfinite(C.croze(net32, x.float(), y, rescale_float32=False))
    with pytest.raises(ProxyError, match="not finite"):
        C.croze_fixed(_prepared(model).float(), x.float(), y, rescale_float32=False)
    result = robnas.proxies.run("croze", model, x.float(), y)
    assert result.error == "" and math.isfinite(result.value) and result.value > 1e6


def test_deterministic_for_a_seed_and_caller_model_untouched():
    x, y = _batch()
    model = _model(MIXED, seed=3, C=8, N=2)
    saved = {k: v.clone() for k, v in model.state_dict().items()}
    model.eval()
    first = robnas.proxies.run("croze", model, x.float(), y)
    again = robnas.proxies.run("croze", _model(MIXED, seed=3, C=8, N=2), x.float(), y)
    other = robnas.proxies.run("croze", _model(MIXED, seed=4, C=8, N=2), x.float(), y)
    assert first.value == again.value and first.value != other.value
    assert robnas.proxies.run("croze_fixed", model, x.float(), y).error == ""
    for k, v in model.state_dict().items():
        assert torch.equal(v, saved[k]) and v.dtype == saved[k].dtype, k
    assert all(p.grad is None for p in model.parameters()) and not model.training


def test_nan_inputs_are_recorded_not_raised():
    x, y = _batch()
    x[0, 0, 0, 0] = float("nan")
    model = _model(MIXED, C=8, N=2)
    faithful = robnas.proxies.run("croze", model, x.float(), y)
    assert math.isnan(faithful.value) and "non-finite" in faithful.error
    fixed = robnas.proxies.run("croze_fixed", model, x.float(), y)
    assert math.isnan(fixed.value) and fixed.error.startswith("ProxyError: croze_fixed")


def test_fixed_uses_per_element_means_and_updated_params():
    x, y = _batch()
    model = _model(MIXED, C=8, N=2)
    state = C.croze_pass(_prepared(model), x, y, faithful=False)
    terms = C.layer_consistencies(state, mean=True, rescale=True)
    assert all(0 <= c.weight <= 2 and 0 <= c.grad <= 1 and 0 <= c.feature <= 2 for c in terms)
    value = robnas.proxies.run("croze_fixed", model, x.float(), y, rescale_float32=False)
    assert value.error == "" and 0 < value.value <= 4 * len(terms)
    assert value.value == pytest.approx(math.fsum(c.term for c in terms), rel=1e-12)
    updated = robnas.proxies.run("croze_fixed", model, x.float(), y, updated_params=True, eta=0.1)
    assert updated.error == "" and updated.value != value.value
    signed = robnas.proxies.run("croze_fixed", model, x.float(), y, linearize_weights=False)
    assert signed.error == "" and signed.value != value.value


def test_axis0_cosines_batch_and_rescale():
    g = torch.Generator().manual_seed(0)
    pairs = [(torch.randn(5, 3, 2, generator=g), torch.randn(5, 3, 2, generator=g)) for _ in range(3)]
    pairs.append((torch.randn(4, 7, generator=g), torch.zeros(4, 7)))
    got = C.axis0_cosines(pairs)
    for (a, b), cos in zip(pairs, got, strict=True):
        assert torch.allclose(cos, F.cosine_similarity(a, b, dim=0, eps=1e-8), atol=1e-6)
    assert torch.equal(got[-1], torch.zeros(7))  # zero vectors give cosine 0
    huge = torch.full((3, 2), 1e200, dtype=torch.float64)
    assert float(C.axis0_cosines([(huge, huge)])[0].sum()) == 0.0  # torch overflows silently
    assert torch.allclose(
        C.axis0_cosines([(huge, huge)], rescale=True)[0], torch.ones(2, dtype=torch.float64)
    )


@pytest.mark.parametrize("dim", [0, 1, 2])
def test_cosine_equals_torch_cosine_similarity(dim):
    g = torch.Generator().manual_seed(dim)
    a = torch.randn(4, 6, 5, generator=g, dtype=torch.float64) * 1e30
    b = torch.randn(4, 6, 5, generator=g, dtype=torch.float64) * 1e30
    a.narrow((dim + 1) % 3, 0, 1).zero_()  # zero vectors along dim
    b[..., 1] = 1e200  # squared norms overflow in some places
    expected = F.cosine_similarity(a, b, dim=dim, eps=1e-8)
    got = C.cosine(a, b, dim)
    assert torch.allclose(got, expected, rtol=1e-13, atol=1e-15)
    assert torch.equal(got == 0, expected == 0)


def test_croze_and_croze_fixed_share_the_clean_pass_without_changing_values():
    """croze_fixed after croze on the same network reuses its clean pass and its input step's
    gradient (two forward / backward passes fewer): the values are those of a cold run, in either
    order; another network never hits."""
    x, y = _batch(seed=4)
    model, other = _model(MIXED, seed=5, C=8, N=2), _model(CONV3, seed=5, C=8, N=2)
    cold = {}
    for name in ("croze", "croze_fixed"):
        C._LAST_CLEAN_PASS.clear()
        cold[name] = robnas.proxies.run(name, model, x.float(), y).value
    for first, second in (("croze", "croze_fixed"), ("croze_fixed", "croze")):
        C._LAST_CLEAN_PASS.clear()
        assert robnas.proxies.run(first, model, x.float(), y).value == cold[first]
        entry = C._LAST_CLEAN_PASS.value
        input_grad = entry.input_grad
        assert input_grad is not None
        assert robnas.proxies.run(second, model, x.float(), y).value == cold[second]
        assert C._LAST_CLEAN_PASS.value is entry  # reused, not recomputed
        if second == "croze_fixed":  # and the input step's gradient with it
            assert entry.input_grad is input_grad
    robnas.proxies.run("croze", other, x.float(), y)
    assert C._LAST_CLEAN_PASS.value is not entry
