"""Hand-designed baselines of the robust-training literature, for 32x32 inputs.

The networks that adversarial-training papers and RobustBench compare against, written from
their papers' definitions, with the parameter names of the reference implementations so that
their published checkpoints load (``robnas evaluate --model wrn_34_10 --weights FILE``):

* :func:`resnet18`: ResNet-18 (He et al., CVPR 2016) in its CIFAR form, a 3x3 stem without
  max-pooling, as in kuangliu/pytorch-cifar, which Madry et al. (ICLR 2018, the ``robustness``
  library) and Rice et al. use; 11,173,962 parameters with 10 classes.
* :func:`preact_resnet18`: PreAct-ResNet-18 (He et al., ECCV 2016) as Rice, Wong & Kolter,
  "Overfitting in adversarially robust deep learning" (ICML 2020, locuslab/robust_overfitting
  ``preactresnet.py``) train it, with its final BN-ReLU before pooling; 11,172,170 parameters
  (11,171,146 without that BN, as in kuangliu/pytorch-cifar's PreActResNet18).
* :func:`wide_resnet` ``(depth=28, widen_factor=10)``: WRN-28-10 (Zagoruyko & Komodakis, BMVC
  2016, 36.5M in their Table; 36,479,194 exactly), the network of RobustBench's CIFAR-10 L-inf
  leaderboard (e.g. Carmon et al. 2019).
* :func:`wide_resnet` ``(depth=34, widen_factor=10)``: WRN-34-10 of Madry et al. and TRADES
  (Zhang et al., ICML 2019, yaodongyu/TRADES ``models/wideresnet.py``); 46,160,474 parameters.
  TRADES' code also builds an unused copy of the first block (``sub_block1``), which its
  checkpoints contain; ``sub_block1=True`` adds it (for loading them; it never runs).

Inputs are (B, 3, H, W) images as the data pipeline gives them (robnas normalises in front of
the network, :class:`robnas.models.NormalizedNet`); the output is (B, num_classes) logits. The
final pooling is global (identical to the references' fixed 4x4 / 8x8 pooling at 32x32, and
it lets other image sizes run).
"""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn import functional as F


def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    """ResNet's post-activation block: conv-BN-ReLU-conv-BN plus a (1x1 conv-BN) shortcut."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = _conv3x3(cin, cout, stride)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = _conv3x3(cout, cout)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class PreActBlock(nn.Module):
    """The pre-activation block: BN-ReLU-conv-BN-ReLU-conv; a 1x1 conv shortcut (no BN) taken
    after the first BN-ReLU when the shape changes."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = _conv3x3(cin, cout, stride)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = _conv3x3(cout, cout)
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False))

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(x))
        shortcut = self.shortcut(out) if hasattr(self, "shortcut") else x
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + shortcut


class ResNet(nn.Module):
    """A CIFAR ResNet of four stages (64, 128, 256, 512 channels, strides 1, 2, 2, 2).

    ``preact=True`` is the PreAct-ResNet: no BN after the stem, a final BN-ReLU (``bn``) before
    pooling; otherwise BN-ReLU after the stem (``bn1``).
    """

    def __init__(
        self, blocks: tuple[int, ...] = (2, 2, 2, 2), num_classes: int = 10, preact: bool = False
    ) -> None:
        super().__init__()
        block = PreActBlock if preact else BasicBlock
        self.preact = preact
        self.conv1 = _conv3x3(3, 64)
        if not preact:
            self.bn1 = nn.BatchNorm2d(64)
        cin = 64
        for i, (n, width) in enumerate(zip(blocks, (64, 128, 256, 512), strict=True)):
            layers = []
            for j in range(n):
                layers.append(block(cin, width, 1 if i == 0 or j > 0 else 2))
                cin = width
            self.add_module(f"layer{i + 1}", nn.Sequential(*layers))
        if preact:
            self.bn = nn.BatchNorm2d(512)
        self.linear = nn.Linear(512, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv1(x)
        if not self.preact:
            out = F.relu(self.bn1(out))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        if self.preact:
            out = F.relu(self.bn(out))
        return self.linear(F.adaptive_avg_pool2d(out, 1).flatten(1))


def resnet18(num_classes: int = 10) -> ResNet:
    """ResNet-18 for 32x32 inputs (kuangliu/pytorch-cifar; Madry et al. 2018, Rice et al. 2020)."""
    return ResNet((2, 2, 2, 2), num_classes)


def preact_resnet18(num_classes: int = 10) -> ResNet:
    """PreAct-ResNet-18 for 32x32 inputs (Rice et al. 2020, locuslab/robust_overfitting)."""
    return ResNet((2, 2, 2, 2), num_classes, preact=True)


class WideBlock(nn.Module):
    """Zagoruyko & Komodakis' wide block: BN-ReLU-conv3x3-BN-ReLU-(dropout)-conv3x3.

    As in their code (and every robust-training copy of it), when the width changes the shortcut
    (1x1 conv ``convShortcut``) and the first conv both take the activated input; otherwise the
    shortcut is the raw input.
    """

    def __init__(self, cin: int, cout: int, stride: int, drop_rate: float = 0.0) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = _conv3x3(cin, cout, stride)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(cout, cout)
        self.drop_rate = drop_rate
        self.equal = cin == cout
        self.convShortcut = None if self.equal else nn.Conv2d(cin, cout, 1, stride=stride, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        act = self.relu1(self.bn1(x))
        out = self.relu2(self.bn2(self.conv1(act)))
        if self.drop_rate > 0:
            out = F.dropout(out, p=self.drop_rate, training=self.training)
        out = self.conv2(out)
        return out + (x if self.convShortcut is None else self.convShortcut(act))


class NetworkBlock(nn.Module):
    """``n`` wide blocks, the first of which changes width and stride (``layer`` as in the reference)."""

    def __init__(self, n: int, cin: int, cout: int, stride: int, drop_rate: float = 0.0) -> None:
        super().__init__()
        self.layer = nn.Sequential(
            *[WideBlock(cin if i == 0 else cout, cout, stride if i == 0 else 1, drop_rate) for i in range(n)]
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.layer(x)


class WideResNet(nn.Module):
    """WRN-``depth``-``widen_factor`` (Zagoruyko & Komodakis 2016): a 16-channel stem and three
    groups of (depth - 4) / 6 wide blocks of 16k, 32k, 64k channels (strides 1, 2, 2)."""

    def __init__(
        self,
        depth: int = 34,
        widen_factor: int = 10,
        num_classes: int = 10,
        drop_rate: float = 0.0,
        sub_block1: bool = False,
    ) -> None:
        super().__init__()
        if (depth - 4) % 6:
            raise ValueError(f"a WideResNet's depth is 6n + 4, got {depth}")
        n = (depth - 4) // 6
        widths = [16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
        self.conv1 = _conv3x3(3, widths[0])
        self.block1 = NetworkBlock(n, widths[0], widths[1], 1, drop_rate)
        if sub_block1:  # TRADES' unused copy of block1, present in its checkpoints
            self.sub_block1 = NetworkBlock(n, widths[0], widths[1], 1, drop_rate)
        self.block2 = NetworkBlock(n, widths[1], widths[2], 2, drop_rate)
        self.block3 = NetworkBlock(n, widths[2], widths[3], 2, drop_rate)
        self.bn1 = nn.BatchNorm2d(widths[3])
        self.relu = nn.ReLU(inplace=True)
        self.fc = nn.Linear(widths[3], num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        out = self.block3(self.block2(self.block1(self.conv1(x))))
        out = self.relu(self.bn1(out))
        return self.fc(F.adaptive_avg_pool2d(out, 1).flatten(1))


def wide_resnet(
    depth: int = 34, widen_factor: int = 10, num_classes: int = 10, drop_rate: float = 0.0, sub_block1: bool = False
) -> WideResNet:
    """WRN-28-10 (Zagoruyko & Komodakis 2016; RobustBench) or WRN-34-10 (Madry et al. 2018; TRADES)."""
    return WideResNet(depth, widen_factor, num_classes, drop_rate, sub_block1)


__all__ = ["ResNet", "WideResNet", "preact_resnet18", "resnet18", "wide_resnet"]
