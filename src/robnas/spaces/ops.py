"""Building blocks shared by the cell-based search spaces."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class ReLUConvBN(nn.Sequential):
    """ReLU -> Conv2d -> BatchNorm2d, the NAS-Bench-201 / DARTS convolution unit.

    As in NAS-Bench-201, the convolution has a bias exactly when the BN is not affine.
    """

    def __init__(
        self,
        c_in: int,
        c_out: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        dilation: int = 1,
        affine: bool = True,
        track_running_stats: bool = True,
    ) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel_size, stride, padding, dilation, bias=not affine),
            nn.BatchNorm2d(c_out, affine=affine, track_running_stats=track_running_stats),
        )


class Zero(nn.Module):
    """The ``none`` operation: zeros of the output shape (keeps the graph connected)."""

    def __init__(self, stride: int = 1, c_out: int | None = None) -> None:
        super().__init__()
        self.stride = stride
        self.c_out = c_out

    def forward(self, x: Tensor) -> Tensor:
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        if self.c_out is not None and self.c_out != x.shape[1]:
            shape = (x.shape[0], self.c_out, *x.shape[2:])
            return x.new_zeros(shape)
        return x.mul(0.0)


# ---------------------------------------------------------------------------------------
# DARTS / RobNets operations (Liu et al., ICLR 2019; Guo et al., CVPR 2020). In both code
# bases the convolutions never carry a bias; ``affine`` only switches the BN parameters.


class StdReLUConvBN(nn.Sequential):
    """ReLU -> Conv2d (no bias) -> BatchNorm2d, the DARTS / RobNets ``ReLUConvBN``."""

    def __init__(
        self, c_in: int, c_out: int, kernel_size: int, stride: int = 1, padding: int = 0, affine: bool = True
    ) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel_size, stride, padding, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )


class SepConv(nn.Sequential):
    """DARTS separable convolution: twice (ReLU, depthwise k x k, pointwise 1x1, BN).

    Only the first depthwise convolution has ``stride``.
    """

    def __init__(
        self, c_in: int, c_out: int, kernel_size: int, stride: int, padding: int, affine: bool = True
    ) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_in, kernel_size, stride, padding, groups=c_in, bias=False),
            nn.Conv2d(c_in, c_in, 1, bias=False),
            nn.BatchNorm2d(c_in, affine=affine),
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_in, kernel_size, 1, padding, groups=c_in, bias=False),
            nn.Conv2d(c_in, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )


class DilConv(nn.Sequential):
    """DARTS dilated separable convolution: ReLU, dilated depthwise k x k, pointwise 1x1, BN."""

    def __init__(
        self,
        c_in: int,
        c_out: int,
        kernel_size: int,
        stride: int,
        padding: int,
        dilation: int,
        affine: bool = True,
    ) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_in, kernel_size, stride, padding, dilation, groups=c_in, bias=False),
            nn.Conv2d(c_in, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )


class Conv7x1x1x7(nn.Sequential):
    """DARTS ``conv_7x1_1x7``: ReLU, 1x7 conv, 7x1 conv, BN (stride split over the two convs)."""

    def __init__(self, c: int, stride: int, affine: bool = True) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c, c, (1, 7), stride=(1, stride), padding=(0, 3), bias=False),
            nn.Conv2d(c, c, (7, 1), stride=(stride, 1), padding=(3, 0), bias=False),
            nn.BatchNorm2d(c, affine=affine),
        )


class FactorizedReduce(nn.Module):
    """Halve the resolution with two stride-2 1x1 convs, the second on the input shifted by one
    pixel; their outputs are concatenated (``c_out`` must be even) and batch-normalised.

    Each stride-2 1x1 conv is computed as a stride-1 1x1 conv of the subsampled input (the
    same function, weights and output shape): torch's oneDNN backward of a stride-2 1x1 conv
    on a channels_last input with fewer than 8 channels corrupts the heap (torch 2.13 CPU),
    which crashed small DARTS supernets (``C=2``).
    """

    def __init__(self, c_in: int, c_out: int, affine: bool = True) -> None:
        super().__init__()
        if c_out % 2:
            raise ValueError(f"FactorizedReduce needs an even number of output channels, got {c_out}")
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(c_in, c_out // 2, 1, bias=False)
        self.conv_2 = nn.Conv2d(c_in, c_out // 2, 1, bias=False)
        self.bn = nn.BatchNorm2d(c_out, affine=affine)

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu(x)
        return self.bn(torch.cat([self.conv_1(x[:, :, ::2, ::2]), self.conv_2(x[:, :, 1::2, 1::2])], dim=1))


def drop_path(x: Tensor, drop_prob: float) -> Tensor:
    """DARTS drop-path: zero whole samples with probability ``drop_prob``, rescale the others.

    The mask is drawn on ``x``'s device and dtype (the reference always draws a CUDA float32
    mask, which fails on CPU).
    """
    if drop_prob <= 0.0:
        return x
    keep = 1.0 - drop_prob
    mask = torch.empty((x.shape[0], 1, 1, 1), device=x.device, dtype=x.dtype).bernoulli_(keep)
    return x / keep * mask
