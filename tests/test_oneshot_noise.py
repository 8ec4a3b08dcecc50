"""Wsr-NAS's AN-Estimator (robnets_wsrnas.md B3): shapes, exact norms, each faithful quirk, the
fixed mode's eps ball, the leave-one-out data, the memory and the schedule."""

from __future__ import annotations

import random

import pytest
import torch

from robnas.errors import ConfigError
from robnas.oneshot.wsr import l2_to_linf, linf_to_l2, noise_estimator
from robnas.oneshot.wsr.noise import (
    NoiseMemory,
    bracket,
    estimator_optimizer,
    estimator_schedule,
    leave_one_out,
    train_estimator_pass,
)

TARGETS = torch.tensor([2.3, 3.9, 5.5])


def _inputs(b: int = 2, size: int = 32, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(b, 3, size, size, generator=g)
    sources = torch.stack(
        [e * torch.randn(b, 3, size, size, generator=g).sign() for e in (0.03, 0.06, 0.09)], 1
    )
    return x, sources


def _estimate(variant: str, mode: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The images and the AN-E's (seeded, untrained) noises for them at :data:`TARGETS`."""
    torch.manual_seed(0)
    x, sources = _inputs()
    return x, noise_estimator(variant, mode)(x, sources, TARGETS)


def test_strength_units():
    assert linf_to_l2(0.03) == pytest.approx(1.663, abs=1e-3)  # 55.43 * eps at 3 x 32 x 32
    assert l2_to_linf(linf_to_l2(0.07, (3, 64, 64)), (3, 64, 64)) == pytest.approx(0.07)


def test_basic_has_the_reference_parameter_count():
    assert sum(p.numel() for p in noise_estimator("basic").parameters()) == 76_763


@pytest.mark.parametrize("variant", ["basic", "plus"])
def test_faithful_outputs_have_exactly_the_target_norms(variant):
    x, out = _estimate(variant, "faithful")
    assert out.shape == (2, 3, 3, 32, 32)
    assert torch.allclose(out.flatten(2).norm(dim=-1), TARGETS.expand(2, -1), rtol=1e-5)
    assert (x[:, None] + out).max() > 1 or (x[:, None] + out).min() < 0  # quirk: not clipped to [0, 1]


@pytest.mark.parametrize("variant", ["basic", "plus"])
def test_fixed_outputs_lie_in_the_eps_ball_and_the_image_range(variant):
    x, out = _estimate(variant, "fixed")
    eps = l2_to_linf(TARGETS)
    assert (out.abs().amax(dim=(2, 3, 4)) <= eps[None] + 1e-6).all()
    adv = x[:, None] + out
    assert adv.min() >= 0 and adv.max() <= 1


def test_faithful_weights_favour_the_farther_source_and_fixed_the_nearer():
    norms, t = torch.tensor([[1.0, 3.0]]), torch.tensor([[1.5]])
    faithful, fixed = bracket(norms, t, "faithful"), bracket(norms, t, "fixed")
    assert (faithful.low.item(), faithful.high.item()) == (0, 1)
    assert faithful.w_low.item() == pytest.approx(0.25) and faithful.w_high.item() == pytest.approx(0.75)
    assert fixed.w_low.item() == pytest.approx(0.75) and fixed.w_high.item() == pytest.approx(0.25)


def test_faithful_base_is_zero_outside_the_source_range():
    norms = torch.tensor([[1.0, 3.0]])
    above, below = torch.tensor([[5.0]]), torch.tensor([[0.5]])
    f_above, f_below = bracket(norms, above, "faithful"), bracket(norms, below, "faithful")
    assert (f_above.low.item(), f_above.high.item()) == (1, -1) and f_above.w_low.item() == 0
    assert (f_below.low.item(), f_below.high.item()) == (-1, 0) and f_below.w_high.item() == 0
    assert bracket(norms, above, "fixed").w_low.item() == 1  # fixed: the nearest source alone
    assert bracket(norms, below, "fixed").w_high.item() == 1


def test_faithful_takes_sources_unsorted_and_fixed_sorts_them():
    x, sources = _inputs(b=1)
    shuffled = sources[:, [2, 0, 1]]
    for mode, invariant in (("faithful", False), ("fixed", True)):
        torch.manual_seed(1)
        est = noise_estimator("basic", mode).eval()
        a, b = est(x, sources, TARGETS), est(x, shuffled, TARGETS)
        assert torch.allclose(a, b, atol=1e-5) == invariant, mode


@pytest.mark.parametrize("mode", ["faithful", "fixed"])
def test_plus_backward_term_weight(mode):
    """Faithful: the backward noise is weighted by the forward weight w1, as written; fixed: by w2."""
    torch.manual_seed(0)
    est = noise_estimator("plus", mode).eval()
    x, sources = _inputs(b=1)
    seen: dict[str, list[torch.Tensor]] = {"query": [], "backward": []}
    est.query.register_forward_hook(lambda m, i, o: seen["query"].append(i[0]))
    est.cell_backward.register_forward_hook(lambda m, i, o: seen["backward"].append(o))
    target = torch.tensor([1.0 * sources[0, 0].norm() + 0.25 * (sources[0, 1].norm() - sources[0, 0].norm())])
    est(x, sources, target)
    norms = sources.flatten(2).norm(dim=-1)
    br = bracket(norms, target[None], mode)
    assert (br.low.item(), br.high.item()) == (0, 1)
    weight = br.w_low if mode == "faithful" else br.w_high
    backward_of_source_1 = seen["backward"][1]  # the backward pass runs strongest first
    assert torch.allclose(seen["query"][0][:, 3:6], weight.item() * backward_of_source_1, atol=1e-6)


def test_any_image_size_for_basic_and_clear_errors():
    est = noise_estimator("basic", "fixed")
    x, sources = _inputs(size=64)
    assert est(x, sources, TARGETS).shape == (2, 3, 3, 64, 64)
    with pytest.raises(ConfigError, match="at least 9x9"):
        est(*_inputs(size=8), TARGETS)
    with pytest.raises(ConfigError, match="32x32"):
        noise_estimator("plus")(x, sources, TARGETS)
    with pytest.raises(ConfigError, match="positive"):
        est(*_inputs(), torch.tensor([2.0, -1.0]))
    with pytest.raises(ConfigError, match="variant"):
        noise_estimator("huge")
    with pytest.raises(ConfigError, match="mode"):
        noise_estimator("basic", "exact")


def test_leave_one_out_items():
    x, sources = _inputs(b=2)
    noises = torch.cat([sources, 0.12 * torch.randn(2, 1, 3, 32, 32)], 1)  # the random-eps noise last
    items = leave_one_out(x, noises, torch.tensor([3, 7]))
    assert items.sources.shape == (8, 3, 3, 32, 32) and items.label.shape == (8, 3, 32, 32)
    assert torch.equal(items.label[2:4], noises[:, 1]) and torch.equal(items.sources[2], noises[0, [0, 2, 3]])
    assert torch.allclose(items.target, items.label.flatten(1).norm(dim=1))
    assert items.y.tolist() == [3, 7] * 4


def test_memory_is_fifo_and_training_changes_the_estimator():
    memory = NoiseMemory(capacity=6)
    x, sources = _inputs(b=2)
    noises = torch.cat([sources, 0.05 * torch.randn(2, 1, 3, 32, 32)], 1)
    memory.add(leave_one_out(x, noises, torch.tensor([0, 1])))  # 8 items into 6 slots
    assert len(memory) == 6 and torch.equal(memory.items[0][3], noises[0, 1])
    est = noise_estimator("basic", "faithful")
    before = [p.detach().clone() for p in est.parameters()]
    opt, sched = estimator_optimizer(est)
    for _ in range(2):
        loss = train_estimator_pass(est, memory, opt, sched, random.Random(0), batch_size=4)
    assert loss == loss and sched.last_epoch == 4
    assert any(not torch.equal(a, b) for a, b in zip(before, est.parameters(), strict=True))
    with pytest.raises(ConfigError, match="empty"):
        NoiseMemory().batches(4, random.Random(0))


def test_estimator_schedule():
    assert estimator_schedule(0) == 0 and estimator_schedule(2000) == 0.5 and estimator_schedule(4000) == 1
    assert estimator_schedule(52_000) == pytest.approx(0.5) and estimator_schedule(100_000) == 0


def test_pgd_noises_at_the_reference_strengths_and_a_random_one():
    from robnas import spaces
    from robnas.oneshot.wsr.noise import pgd_noises

    torch.manual_seed(0)
    net = spaces.get("nb201").build(spaces.get("nb201").sample(0), C=4, N=1)
    x, y = torch.rand(2, 3, 16, 16), torch.tensor([1, 2])
    noises = pgd_noises(net, x, y, generator=torch.Generator().manual_seed(0))
    assert noises.shape == (2, 4, 3, 16, 16)
    linf = noises.flatten(2).abs().amax(dim=-1)
    assert (linf[:, :3] <= torch.tensor([0.03, 0.06, 0.09]) + 1e-6).all() and (linf[:, 3] <= 0.15 + 1e-6).all()
    assert ((x[:, None] + noises) >= 0).all() and ((x[:, None] + noises) <= 1).all()
    assert pgd_noises(net, x, y, random_eps_max=None).shape[1] == 3
    with pytest.raises(ConfigError, match="increasing"):
        pgd_noises(net, x, y, eps=(0.06, 0.03))
