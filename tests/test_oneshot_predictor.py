"""Wsr-NAS's EWSS loss predictor and architecture step (robnets_wsrnas.md B4-B5)."""

from __future__ import annotations

import random

import pytest
import torch

from robnas.errors import ConfigError
from robnas.oneshot.wsr import loss_predictor
from robnas.oneshot.wsr.predictor import (
    ArchitectureStep,
    LossMemory,
    gumbel_weights,
    objective_weights,
    predicted_objective,
    predictor_optimizer,
    train_predictor,
)


def test_shapes_range_and_size():
    net = loss_predictor()
    out = net(torch.rand(5, 28, 8))
    assert out.shape == (5, 7) and (out > 0).all() and (out < 2).all()
    assert sum(p.numel() for p in net.parameters()) == 1783
    with pytest.raises(ConfigError, match="architecture weights"):
        net(torch.rand(5, 28, 7))


def test_objective_weights_follow_the_reference():
    w = objective_weights()
    assert w[0] == pytest.approx(0.8) and w[1:].sum() == pytest.approx(0.2)
    assert w[6] / w[1] == pytest.approx(10)


def test_predictor_fits_a_known_function():
    torch.manual_seed(0)
    memory = LossMemory(capacity=100)
    g = torch.Generator().manual_seed(1)
    for _ in range(120):  # the first 20 fall out of the FIFO
        w = torch.softmax(torch.randn(28, 8, generator=g) / 0.5, dim=-1)
        losses = 0.4 + 1.2 * w[:, :7].mean(dim=0) * 3 + 0.2 * w[:14, 7].mean()
        memory.add(w, losses.clamp(0.05, 1.95))
    assert len(memory) == 100
    net = loss_predictor()
    opt = predictor_optimizer(net)
    first = train_predictor(net, memory, opt, passes=1, rng=random.Random(0))
    last = train_predictor(net, memory, opt, passes=300, rng=random.Random(1))
    assert last < first / 4, (first, last)


def test_one_architecture_step_lowers_the_predicted_objective():
    torch.manual_seed(0)
    net = loss_predictor()
    alphas = (1e-3 * torch.randn(14, 8), 1e-3 * torch.randn(14, 8))
    alphas = tuple(a.requires_grad_() for a in alphas)
    gumbels = (torch.zeros(14, 8), torch.zeros(14, 8))
    step = ArchitectureStep(alphas, lr=1e-2)
    before = step.step(net, gumbels, tau=1.0)
    after = float(predicted_objective(net, gumbel_weights(alphas, gumbels, 1.0)).detach())
    assert after < before
    assert all(p.requires_grad for p in net.parameters())  # the predictor itself is not moved


def test_memory_rejects_bad_entries_and_round_trips():
    memory = LossMemory(capacity=3)
    with pytest.raises(ConfigError, match="weights"):
        memory.add(torch.rand(14, 8), torch.rand(7))
    with pytest.raises(ConfigError, match="non-finite"):
        memory.add(torch.rand(28, 8), torch.tensor([float("nan")] * 7))
    with pytest.raises(ConfigError, match="empty"):
        train_predictor(loss_predictor(), memory, predictor_optimizer(loss_predictor()), 1, random.Random(0))
    memory.add(torch.rand(28, 8), torch.rand(7))
    copy = LossMemory(capacity=3)
    copy.load_state_dict(memory.state_dict())
    assert torch.equal(copy.items[0][0], memory.items[0][0])
