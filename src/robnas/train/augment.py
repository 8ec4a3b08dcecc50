"""CIFAR-style augmentation on tensors, a whole batch at once.

Random crop with zero padding, horizontal flip and cutout (one square hole, DeVries and
Taylor 2017, as in the DARTS code). The random draws are made per epoch for every image of
the training set from ``(seed, epoch)`` and looked up by image index, so an image is
augmented the same way whatever process, rank or batch it lands in.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor


@dataclass
class AugmentDraws:
    """Per-image random choices for one epoch: crop offsets, flips, cutout centres."""

    offsets: Tensor  # (N, 2) int64 in [0, 2 * padding]
    flips: Tensor  # (N,) bool
    centres: Tensor  # (N, 2) int64 in [0, H) x [0, W)


def draw(n: int, height: int, width: int, padding: int, seed: int, epoch: int) -> AugmentDraws:
    """The augmentation choices of every image of a training set of ``n`` images for one epoch."""
    rng = np.random.default_rng([seed, epoch, 0xA06])
    offsets = rng.integers(0, 2 * padding + 1, size=(n, 2))
    flips = rng.random(n) < 0.5
    centres = np.stack([rng.integers(0, height, n), rng.integers(0, width, n)], axis=1)
    return AugmentDraws(torch.from_numpy(offsets), torch.from_numpy(flips), torch.from_numpy(centres))


def augment(
    x: Tensor,
    offsets: Tensor,
    flips: Tensor,
    centres: Tensor,
    padding: int = 4,
    flip: bool = True,
    cutout: int = 0,
) -> Tensor:
    """Crop, flip and cut out a batch ``x`` (B, C, H, W) in [0, 1] with per-image choices."""
    b, c, h, w = x.shape
    dev = x.device
    offsets, flips, centres = offsets.to(dev), flips.to(dev), centres.to(dev)
    if padding > 0:
        padded = torch.nn.functional.pad(x, (padding, padding, padding, padding))
        rows = (offsets[:, 0, None] + torch.arange(h, device=dev)).view(b, 1, h, 1)
        cols = (offsets[:, 1, None] + torch.arange(w, device=dev)).view(b, 1, 1, w)
        batch = torch.arange(b, device=dev).view(b, 1, 1, 1)
        chan = torch.arange(c, device=dev).view(1, c, 1, 1)
        x = padded[batch, chan, rows, cols]
    if flip:
        x = torch.where(flips.view(b, 1, 1, 1), x.flip(3), x)
    if cutout > 0:
        ys = torch.arange(h, device=dev).view(1, h, 1)
        xs = torch.arange(w, device=dev).view(1, 1, w)
        cy, cx = centres[:, 0].view(b, 1, 1), centres[:, 1].view(b, 1, 1)
        half = cutout // 2
        hole = (ys >= cy - half) & (ys < cy + half) & (xs >= cx - half) & (xs < cx + half)
        x = x.masked_fill(hole.unsqueeze(1), 0.0)
    return x


__all__ = ["AugmentDraws", "augment", "draw"]
