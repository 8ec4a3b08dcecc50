"""The cell network skeleton shared by the DARTS and RobNets spaces and their supernets.

A :class:`CellNetwork` is the DARTS macro network (Liu, Simonyan and Yang, ICLR 2019,
``NetworkCIFAR`` / ``NetworkImageNet``) around any two-input :class:`Cell`: stems, ``layers``
stacked cells with reductions at 1/3 and 2/3 of the depth, an optional auxiliary head, global
pooling and a linear classifier. It exposes CRoZe's features (``forward_features``, Ha et al.,
NeurIPS 2023). A space supplies the cells through a factory; a weight-sharing supernet passes
its architecture at forward time as a cell keyword (``_run(..., arch=...)``).

:func:`cell_network_parameters` counts such a network's parameters from per-cell counts without
building it (the spaces' size caps check thousands of candidates).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from robnas.errors import ConfigError


class Cell(nn.Module):
    """A two-input cell ``(s0, s1, drop_prob) -> state``, ``multiplier * C`` channels out.

    Also the marker CRoZe's layer -> feature mapping counts cells by."""

    multiplier: int

    def forward(self, s0: Tensor, s1: Tensor, drop_prob: float = 0.0) -> Tensor:  # pragma: no cover
        raise NotImplementedError


class _AuxiliaryHead(nn.Module):
    """DARTS' auxiliary classifier: ReLU, 5x5 average pool, 1x1 conv to 128, 2x2 conv to 768, linear."""

    pool_stride = 3
    second_bn = True

    def __init__(self, c: int, num_classes: int) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            nn.ReLU(inplace=False),
            nn.AvgPool2d(5, stride=self.pool_stride, padding=0, count_include_pad=False),
            nn.Conv2d(c, 128, 1, bias=False),
            nn.BatchNorm2d(128),
            nn.ReLU(inplace=False),
            nn.Conv2d(128, 768, 2, bias=False),
        ]
        if self.second_bn:
            layers.append(nn.BatchNorm2d(768))
        self.features = nn.Sequential(*layers, nn.ReLU(inplace=False))
        self.classifier = nn.Linear(768, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x).flatten(1))


class AuxiliaryHeadCIFAR(_AuxiliaryHead):
    """DARTS auxiliary classifier for 8x8 CIFAR feature maps (after cell ``2L // 3``)."""


class AuxiliaryHeadImageNet(_AuxiliaryHead):
    """DARTS auxiliary classifier for 14x14 ImageNet feature maps (the reference has no BN
    after its second convolution, kept as is)."""

    pool_stride = 2
    second_bn = False


CellFactory = Callable[[int, int, int, int, bool, bool], Cell]
#: ``(i, c_prev_prev, c_prev, c, reduction, reduction_prev) -> multiplier`` of the cell placed at ``i``
CellSlot = Callable[[int, int, int, int, bool, bool], int]


def _check_skeleton(C: int, layers: int, stem: str) -> None:
    if layers < 1 or C < 2:
        raise ConfigError(f"a cell network needs layers >= 1 and C >= 2, got layers={layers}, C={C}")
    if stem not in ("cifar", "imagenet"):
        raise ConfigError(f"stem must be 'cifar' or 'imagenet', got {stem!r}")


def make_stems(C: int, stem: str = "cifar", stem_multiplier: int = 3) -> dict[str, nn.Module]:
    """The stem modules by attribute name: ``stem`` (CIFAR) or ``stem0`` and ``stem1`` (ImageNet)."""
    if stem == "cifar":
        c_stem = stem_multiplier * C
        return {"stem": nn.Sequential(nn.Conv2d(3, c_stem, 3, padding=1, bias=False), nn.BatchNorm2d(c_stem))}
    return {
        "stem0": nn.Sequential(
            nn.Conv2d(3, C // 2, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(C // 2),
            nn.ReLU(inplace=False),
            nn.Conv2d(C // 2, C, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(C),
        ),
        "stem1": nn.Sequential(
            nn.ReLU(inplace=False), nn.Conv2d(C, C, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(C)
        ),
    }


def stack_cells(
    add_cell: CellSlot, C: int, layers: int, stem: str = "cifar", stem_multiplier: int = 3
) -> tuple[int, int]:
    """Walk the DARTS cell schedule: ``add_cell`` is called for cells ``0..layers-1`` with their
    channels and reduction flags (reductions, channels doubled, at ``L // 3`` and ``2L // 3``) and
    returns the cell's multiplier. Returns the channels after cell ``2L // 3`` (the auxiliary
    head's input) and after the last cell (the classifier's input)."""
    if stem == "cifar":
        c_pp = c_p = stem_multiplier * C
        reduction_prev = False
    else:  # the ImageNet stems end at stride 8, seen by the first cell as a previous reduction
        c_pp = c_p = C
        reduction_prev = True
    c_curr, c_aux = C, c_p
    for i in range(layers):
        reduction = i in (layers // 3, 2 * layers // 3)
        if reduction:
            c_curr *= 2
        multiplier = add_cell(i, c_pp, c_p, c_curr, reduction, reduction_prev)
        reduction_prev = reduction
        c_pp, c_p = c_p, multiplier * c_curr
        if i == 2 * layers // 3:
            c_aux = c_p
    return c_aux, c_p


@functools.lru_cache(maxsize=8192)
def module_parameters(factory: Callable[..., nn.Module], *args: Any) -> int:
    """Parameters of ``factory(*args)``, built once on the ``meta`` device (memoised)."""
    with torch.device("meta"):
        return sum(p.numel() for p in factory(*args).parameters())


def cell_network_parameters(
    cell_parameters: Callable[[int, int, int, int, bool, bool], tuple[int, int]],
    C: int,
    num_classes: int,
    layers: int,
    stem: str = "cifar",
    stem_multiplier: int = 3,
) -> int:
    """Parameters of a :class:`CellNetwork` without its auxiliary head, without building it:
    ``cell_parameters(i, c_pp, c_p, c, reduction, reduction_prev) -> (parameters, multiplier)``
    counts one cell (e.g. from memoised per-operation counts, :func:`module_parameters`)."""
    _check_skeleton(C, layers, stem)
    total = 0

    def add(i: int, c_pp: int, c_p: int, c: int, reduction: bool, reduction_prev: bool) -> int:
        nonlocal total
        count, multiplier = cell_parameters(i, c_pp, c_p, c, reduction, reduction_prev)
        total += count
        return multiplier

    _, c_p = stack_cells(add, C, layers, stem, stem_multiplier)
    with torch.device("meta"):
        stems = make_stems(C, stem, stem_multiplier).values()
    total += sum(p.numel() for m in stems for p in m.parameters())
    return total + c_p * num_classes + num_classes


class CellNetwork(nn.Module):
    """The DARTS macro network around any two-input cell (DARTS and RobNets share it).

    ``stem="cifar"``: conv 3x3 (3 -> ``stem_multiplier * C``) + BN, both cell inputs are
    the stem output. ``stem="imagenet"``: stem0 = conv 3x3 s2 (3 -> C/2), BN, ReLU, conv 3x3
    s2 (C/2 -> C), BN; stem1 = ReLU, conv 3x3 s2, BN; the first cell sees a "previous
    reduction". ``layers`` cells, reductions (channels doubled) at ``L // 3`` and ``2L // 3``.
    Global average pooling (adaptive, equal to the reference's ``AvgPool2d(7)`` at 224x224)
    and a linear classifier. ``make_cell(i, c_pp, c_p, c, reduction, reduction_prev)``.
    """

    def __init__(
        self,
        make_cell: CellFactory,
        C: int,
        num_classes: int,
        layers: int,
        stem: str = "cifar",
        stem_multiplier: int = 3,
        auxiliary: bool = False,
        drop_path_prob: float = 0.0,
    ) -> None:
        super().__init__()
        self.C = C
        self.num_classes = num_classes
        self.layers = layers
        self.stem_kind = stem
        self.drop_path_prob = drop_path_prob
        _check_skeleton(C, layers, stem)
        for name, module in make_stems(C, stem, stem_multiplier).items():
            setattr(self, name, module)
        self.cells = nn.ModuleList()
        self.aux_position = 2 * layers // 3

        def add(i: int, c_pp: int, c_p: int, c: int, reduction: bool, reduction_prev: bool) -> int:
            cell = make_cell(i, c_pp, c_p, c, reduction, reduction_prev)
            self.cells.append(cell)
            return cell.multiplier

        c_aux, c_p = stack_cells(add, C, layers, stem, stem_multiplier)
        self.auxiliary_head: nn.Module | None = None
        if auxiliary:
            head = AuxiliaryHeadCIFAR if stem == "cifar" else AuxiliaryHeadImageNet
            self.auxiliary_head = head(c_aux, num_classes)
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_p, num_classes)

    def _stems(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if self.stem_kind == "cifar":
            s = self.stem(x)
            return s, s
        s0 = self.stem0(x)
        return s0, self.stem1(s0)

    def _run(
        self, x: Tensor, want_aux: bool, feats: list[Tensor] | None, **cell_inputs: Any
    ) -> tuple[Tensor, Tensor | None]:
        """Logits and auxiliary logits; ``feats`` collects CRoZe's features when given.
        ``cell_inputs`` are passed to every cell as keywords (a supernet's sampled ``arch``)."""
        s0, s1 = self._stems(x)
        if feats is not None:
            feats.append(s1)
        aux = None
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1, self.drop_path_prob, **cell_inputs)
            if feats is not None:
                feats.append(s1.clone())
            if want_aux and i == self.aux_position and self.auxiliary_head is not None:
                aux = self.auxiliary_head(s1)
        pooled = self.global_pooling(s1)
        if feats is not None:
            feats.append(pooled)
        return self.classifier(pooled.flatten(1)), aux

    def forward(self, x: Tensor) -> Tensor:
        """Logits (B, num_classes); the auxiliary head is not run."""
        return self._run(x, False, None)[0]

    def forward_with_aux(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        """``(logits, aux_logits)`` for training with the auxiliary loss (``None`` without a head)."""
        return self._run(x, True, None)

    def forward_features(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        """Logits and CRoZe's DARTS features: Z0 = stem output (stem1 for ImageNet stems),
        Zk = output of cell k (k = 1..L, cloned), Z(L+1) = the pooled output (B, C, 1, 1)."""
        feats: list[Tensor] = []
        logits, _ = self._run(x, False, feats)
        return logits, feats

    def layer_feature_indices(self) -> list[tuple[nn.Module, int]]:
        """CRoZe's DARTS mapping: the number of cells met so far in ``modules()`` pre-order
        (so a cell's own convolutions use its output), plus one for the classifier.
        The auxiliary head is left out."""
        aux_modules = set(self.auxiliary_head.modules()) if self.auxiliary_head is not None else set()
        out: list[tuple[nn.Module, int]] = []
        cells_met = 0
        for module in self.modules():
            if module in aux_modules:
                continue
            if isinstance(module, Cell):
                cells_met += 1
            elif isinstance(module, nn.Conv2d):
                out.append((module, cells_met))
            elif isinstance(module, nn.Linear):
                out.append((module, cells_met + 1))
        return out


def count_parameters(model: nn.Module, exclude_auxiliary: bool = True) -> int:
    """Parameters as DARTS / CRoZe count them (``count_parameters_in_MB``): names containing
    ``auxiliary`` are left out unless ``exclude_auxiliary=False``. Networks without an auxiliary
    head (NAS-Bench-201, RobNet) count every parameter, as NAS-Bench-201 does."""
    return sum(
        p.numel() for name, p in model.named_parameters() if not (exclude_auxiliary and "auxiliary" in name)
    )


def parameters_m(build: Callable[[], nn.Module]) -> float:
    """Millions of parameters (auxiliary head excluded) of the network ``build()`` makes.

    The network is built on the ``meta`` device, so no memory is allocated and nothing is
    initialised: counting a 30M-parameter network takes milliseconds.
    """
    with torch.device("meta"):
        model = build()
    return count_parameters(model) / 1e6


__all__ = [
    "AuxiliaryHeadCIFAR",
    "AuxiliaryHeadImageNet",
    "Cell",
    "CellFactory",
    "CellNetwork",
    "CellSlot",
    "cell_network_parameters",
    "count_parameters",
    "make_stems",
    "module_parameters",
    "parameters_m",
    "stack_cells",
]
