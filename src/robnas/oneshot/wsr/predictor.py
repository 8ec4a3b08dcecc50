"""Wsr-NAS's Efficient Wide Spectrum Searcher (EWSS): a small loss predictor that maps DARTS
architecture weights to the supernet's clean and adversarial validation losses, and the
architecture step that moves alpha through it instead of through the supernet (Cheng et al.,
AAAI 2023; spec: ``robnets_wsrnas.md`` B4-B5).

The architecture is the sequence of 28 rows (14 normal edges, then 14 reduction edges) of its
8-way Gumbel-softmax weights, (B, 28, 8). The predictor, an LSTM (8 -> 16) and 7 heads of
``2 * sigmoid`` (range (0, 2)), returns (B, 7): the clean loss, then the losses at the six
strengths ``[0.03, 0.045*, 0.06, 0.075*, 0.09, 0.105*]`` (``*``: noise from the AN-E).

>>> net = loss_predictor()
>>> sum(p.numel() for p in net.parameters())
1783
>>> net(torch.rand(4, 28, 8)).shape
torch.Size([4, 7])
"""

from __future__ import annotations

import random
from collections import deque

import torch
from torch import Tensor, nn

from robnas.errors import ConfigError

EDGES, OPS, HEADS = 28, 8, 7
#: the six search strengths in head order (l_inf; starred ones are AN-E estimates in the reference)
STRENGTHS = (0.03, 0.045, 0.06, 0.075, 0.09, 0.105)


def objective_weights(
    clean: float = 0.8, adversarial: float = 0.2, ratios: tuple[float, ...] = (1, 2, 3, 5, 7, 10)
) -> Tensor:
    """The reference's ``renormalize_search_objective``: clean weight 0.8, then
    ``0.2 * ratios / sum(ratios)`` over the strengths (larger strengths weigh more).

    >>> [round(w, 5) for w in objective_weights().tolist()]
    [0.8, 0.00714, 0.01429, 0.02143, 0.03571, 0.05, 0.07143]
    """
    r = torch.tensor(ratios, dtype=torch.float64)
    return torch.cat([torch.tensor([clean], dtype=torch.float64), adversarial * r / r.sum()]).float()


class LossPredictor(nn.Module):
    """The EWSS predictor (``predictor2.py``; 1,783 parameters): (B, 28, 8) -> (B, 7) in (0, 2)."""

    def __init__(self, ops: int = OPS, hidden: int = 16, heads: int = HEADS) -> None:
        super().__init__()
        self.lstm = nn.LSTM(ops, hidden, num_layers=1, batch_first=True)
        self.heads = nn.ModuleList(nn.Linear(hidden, 1) for _ in range(heads))

    def forward(self, weights: Tensor) -> Tensor:
        if weights.dim() != 3 or weights.shape[-1] != self.lstm.input_size:
            raise ConfigError(
                f"the loss predictor takes (B, edges, {self.lstm.input_size}) architecture weights, "
                f"got {tuple(weights.shape)}"
            )
        _, (h, _) = self.lstm(weights)
        last = h[-1]
        return torch.cat([2 * torch.sigmoid(head(last)) for head in self.heads], dim=1)


def loss_predictor(**options: int) -> LossPredictor:
    """The EWSS LSTM loss predictor with the reference sizes (input (B, 28, 8), output (B, 7))."""
    return LossPredictor(**options)


class LossMemory:
    """FIFO of the last ``capacity`` (architecture weights (28, 8), losses (7,)) pairs (reference: 100)."""

    def __init__(self, capacity: int = 100) -> None:
        if capacity < 1:
            raise ConfigError(f"loss memory capacity must be >= 1, got {capacity}")
        self.items: deque[tuple[Tensor, Tensor]] = deque(maxlen=capacity)

    def add(self, weights: Tensor, losses: Tensor) -> None:
        if weights.shape != (EDGES, OPS) or losses.shape != (HEADS,):
            raise ConfigError(
                f"a loss memory entry is weights ({EDGES}, {OPS}) and losses ({HEADS},), "
                f"got {tuple(weights.shape)} and {tuple(losses.shape)}"
            )
        if not bool(torch.isfinite(losses).all()):
            raise ConfigError(f"non-finite losses {losses.tolist()} cannot train the loss predictor")
        self.items.append((weights.detach().float().cpu(), losses.detach().float().cpu()))

    def __len__(self) -> int:
        return len(self.items)

    def state_dict(self) -> dict[str, Tensor]:
        if not self.items:
            return {"weights": torch.zeros(0, EDGES, OPS), "losses": torch.zeros(0, HEADS)}
        w, loss = zip(*self.items, strict=True)
        return {"weights": torch.stack(w), "losses": torch.stack(loss)}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        self.items.clear()
        for w, loss in zip(state["weights"], state["losses"], strict=True):
            self.items.append((w, loss))


def predictor_optimizer(net: LossPredictor) -> torch.optim.Adam:
    """Adam, lr 1e-3, betas (0.5, 0.999), weight decay 1e-3 (the reference's ``arch_weight_decay``,
    which its code applies to the predictor, not to alpha)."""
    return torch.optim.Adam(net.parameters(), lr=1e-3, betas=(0.5, 0.999), weight_decay=1e-3)


def train_predictor(
    net: LossPredictor,
    memory: LossMemory,
    optimizer: torch.optim.Optimizer,
    passes: int,
    rng: random.Random,
    batch_size: int = 64,
    input_noise: float = 0.01,
) -> float:
    """``passes`` shuffled passes over the memory (reference: 500 at warm-up, 501 per search
    epoch); loss = the sum over the 7 heads of their MSE; Gaussian noise of std ``input_noise``
    on the architecture weights. Returns the last pass's mean loss."""
    if not memory.items:
        raise ConfigError("the loss memory is empty: record supernet losses before training the predictor")
    weights = torch.stack([w for w, _ in memory.items])
    losses = torch.stack([loss for _, loss in memory.items])
    device = next(net.parameters()).device
    weights, losses = weights.to(device), losses.to(device)
    gen = torch.Generator(device="cpu").manual_seed(rng.getrandbits(63))
    net.train()
    last = float("nan")
    for _ in range(passes):
        order = list(range(len(weights)))
        rng.shuffle(order)
        total = []
        for start in range(0, len(order), batch_size):
            idx = torch.tensor(order[start : start + batch_size], device=device)
            noisy = weights[idx] + input_noise * torch.randn(weights[idx].shape, generator=gen).to(device)
            pred = net(noisy)
            loss = ((pred - losses[idx]) ** 2).mean(dim=0).sum()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total.append(loss.item())
        last = sum(total) / len(total)
    return last


def gumbel_weights(alphas: tuple[Tensor, Tensor], gumbels: tuple[Tensor, Tensor], tau: float = 0.1) -> Tensor:
    """The predictor's input: ``softmax((alpha + g) / tau)`` of the normal then reduction alphas
    (14, 8) each, stacked to (28, 8); differentiable in alpha."""
    return torch.cat([((a + g) / tau).softmax(dim=-1) for a, g in zip(alphas, gumbels, strict=True)])


def predicted_objective(net: LossPredictor, weights: Tensor, w: Tensor | None = None) -> Tensor:
    """``J = sum_i w_i * p_i(alpha)^2`` over the 7 predicted losses (the search minimises it)."""
    w = objective_weights() if w is None else w
    pred = net(weights[None])[0]
    return (w.to(pred) * pred**2).sum()


class ArchitectureStep:
    """One Adam step on (alpha_normal, alpha_reduce) through the frozen predictor per search
    epoch (``architect3_9.Architect.step``): lr 3e-5, betas (0.5, 0.999), no weight decay."""

    def __init__(self, alphas: tuple[Tensor, Tensor], lr: float = 3e-5) -> None:
        for a in alphas:
            if not a.requires_grad:
                raise ConfigError("the architecture weights must require gradients")
        self.alphas = alphas
        self.optimizer = torch.optim.Adam(alphas, lr=lr, betas=(0.5, 0.999))

    def step(self, net: LossPredictor, gumbels: tuple[Tensor, Tensor], tau: float = 0.1) -> float:
        """Move alpha down the predicted objective; returns the objective before the step."""
        net.eval()
        for p in net.parameters():
            p.requires_grad_(False)
        try:
            self.optimizer.zero_grad(set_to_none=True)
            j = predicted_objective(net, gumbel_weights(self.alphas, gumbels, tau))
            j.backward()
            self.optimizer.step()
        finally:
            for p in net.parameters():
                p.requires_grad_(True)
        return float(j.detach())


__all__ = [
    "STRENGTHS",
    "ArchitectureStep",
    "LossMemory",
    "LossPredictor",
    "gumbel_weights",
    "loss_predictor",
    "objective_weights",
    "predicted_objective",
    "predictor_optimizer",
    "train_predictor",
]
