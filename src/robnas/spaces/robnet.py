"""The RobNets cell space (Guo, Yang, Xu, Liu and Lin, "When NAS Meets Robustness", CVPR 2020).

A cell has 4 intermediate nodes, densely connected: node ``i`` sums one edge from every
earlier state (the two cell inputs and nodes ``0..i-1``), so a cell has 2+3+4+5 = 14 edges,
ordered by target node then source state. Each edge carries a 2-bit code, written as in
the RobNets ``architecture_code.py``:

=====  ==========================  ==========================================
code   operation                   on a reduction edge (from a cell input)
=====  ==========================  ==========================================
``00`` zero (edge absent)          input subsampled ``[::2, ::2]`` times 0
``01`` 3x3 separable convolution   first depthwise convolution at stride 2
``10`` identity                    FactorizedReduce
``11`` separable conv + identity   SepConv (stride 2) + FactorizedReduce
=====  ==========================  ==========================================

The first character is the identity bit, the second the separable-convolution bit. The cell
output concatenates the 4 nodes (4C channels). Every BatchNorm inside the cells is
``affine=False``, as in the reference's final networks; only the stem BNs learn.

An architecture is a tuple of cells, each a tuple of 14 codes. One cell means the code is
shared by every cell, reduction cells included (``robnet_large_v1``); ``L`` cells give the
cell-free form (``robnet_free``). The text form is the reference's Python literal,
``[['11', '11', ..., '11']]``; :meth:`RobNetSpace.parse` also accepts one base-4 digit
string per cell (``0=00, 1=01, 2=10, 3=11``), e.g. ``33333131231113``, cells separated by
commas or spaces. The network is the DARTS macro network (:class:`robnas.spaces.network.CellNetwork`).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from robnas.errors import ConfigError, InvalidArchitecture
from robnas.spaces.base import Choice, Choices, ParameterCapped, RandomLike, SearchSpace, as_rng
from robnas.spaces.network import Cell, CellNetwork, cell_network_parameters, module_parameters
from robnas.spaces.ops import FactorizedReduce, SepConv, StdReLUConvBN, Zero

CODES: tuple[str, ...] = ("00", "01", "10", "11")
NUM_EDGES = 14
STEPS = 4
#: (target node, source state) of every edge in code order; states 0, 1 are the cell inputs.
EDGES: tuple[tuple[int, int], ...] = tuple((i, j) for i in range(STEPS) for j in range(i + 2))

CellCode = tuple[str, ...]
RobNetArch = tuple[CellCode, ...]
#: ``(factory, args)``: how a cell builds one of its modules (``factory(*args)``)
Part = tuple[Callable[..., nn.Module], tuple[Any, ...]]



def sample_codes(rng: np.random.Generator, cells: int) -> tuple[tuple[str, ...], ...]:
    """``cells`` random RobNet cell codes: each of the 2 bits of every edge on or off with
    probability 1/2 (RobNets' sampling and path dropout), drawn from ``rng``."""
    return tuple(tuple(CODES[int(i)] for i in rng.integers(0, 4, NUM_EDGES)) for _ in range(cells))

class ResSepConv(nn.Module):
    """Code ``11``: a 3x3 separable convolution plus a residual identity (FactorizedReduce at stride 2)."""

    def __init__(self, c: int, stride: int) -> None:
        super().__init__()
        self.conv = SepConv(c, c, 3, stride, 1, affine=False)
        self.res = nn.Identity() if stride == 1 else FactorizedReduce(c, c, affine=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x) + self.res(x)


def edge_operation(code: str, c: int, stride: int) -> nn.Module:
    """The operation of one 2-bit edge code (BN without affine parameters)."""
    if code == "00":
        return Zero(stride)
    if code == "01":
        return SepConv(c, c, 3, stride, 1, affine=False)
    if code == "10":
        return nn.Identity() if stride == 1 else FactorizedReduce(c, c, affine=False)
    if code == "11":
        return ResSepConv(c, stride)
    raise InvalidArchitecture(f"unknown RobNet edge code {code!r}; expected one of {CODES}")


class RobNetCell(Cell):
    """A RobNets cell: 4 densely connected nodes, output = concat of the 4 nodes."""

    multiplier = STEPS

    def __init__(
        self, code: CellCode, c_prev_prev: int, c_prev: int, c: int, reduction: bool, reduction_prev: bool
    ) -> None:
        super().__init__()
        self.code = tuple(code)
        self.reduction = reduction
        (pre0, args0), (pre1, args1), ops = self.parts(
            self.code, c_prev_prev, c_prev, c, reduction, reduction_prev
        )
        self.preprocess0 = pre0(*args0)
        self.preprocess1 = pre1(*args1)
        self._ops = nn.ModuleList(make(*args) for make, args in ops)

    @staticmethod
    def parts(
        code: CellCode, c_prev_prev: int, c_prev: int, c: int, reduction: bool, reduction_prev: bool
    ) -> tuple[Part, Part, list[Part]]:
        """``(factory, args)`` of preprocess0, preprocess1 and the 14 edge operations (BN without
        affine parameters; an edge from a cell input of a reduction cell has stride 2)."""
        pre0: Part = (
            (FactorizedReduce, (c_prev_prev, c, False))
            if reduction_prev
            else (StdReLUConvBN, (c_prev_prev, c, 1, 1, 0, False))
        )
        ops: list[Part] = [
            (edge_operation, (bits, c, 2 if reduction and source < 2 else 1))
            for bits, (_, source) in zip(code, EDGES, strict=True)
        ]
        return pre0, (StdReLUConvBN, (c_prev, c, 1, 1, 0, False)), ops

    @classmethod
    def parameter_count(
        cls, code: CellCode, c_prev_prev: int, c_prev: int, c: int, reduction: bool, reduction_prev: bool
    ) -> int:
        """The parameters of such a cell, from memoised per-operation counts (nothing is built)."""
        pre0, pre1, ops = cls.parts(tuple(code), c_prev_prev, c_prev, c, reduction, reduction_prev)
        return sum(module_parameters(make, *args) for make, args in (pre0, pre1, *ops))

    def forward(self, s0: Tensor, s1: Tensor, drop_prob: float = 0.0) -> Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        offset = 0
        for _ in range(STEPS):
            terms = [self._ops[offset + j](h) for j, h in enumerate(states)]
            offset += len(states)
            states.append(sum(terms[1:], terms[0]))
        return torch.cat(states[-self.multiplier :], dim=1)


class RobNetNetwork(CellNetwork):
    """The RobNets ``Network``: CIFAR stem (``stem="cifar"``) or ImageNet stems, ``layers``
    cells using ``arch[0]`` everywhere (shared) or ``arch[i]`` for cell ``i`` (cell-free)."""

    def __init__(
        self, arch: RobNetArch, num_classes: int = 10, C: int = 36, layers: int = 20, stem: str = "cifar"
    ) -> None:
        if len(arch) not in (1, layers):
            raise InvalidArchitecture(
                f"a cell-free RobNet code has one cell per layer: {len(arch)} cells for layers={layers}"
            )
        self.arch = arch

        def make_cell(i: int, c_pp: int, c_p: int, c: int, reduction: bool, reduction_prev: bool) -> Cell:
            code = arch[0] if len(arch) == 1 else arch[i]
            return RobNetCell(code, c_pp, c_p, c, reduction, reduction_prev)

        super().__init__(make_cell, C, num_classes, layers, stem)

    @staticmethod
    def parameter_count(
        arch: RobNetArch, num_classes: int = 10, C: int = 36, layers: int = 20, stem: str = "cifar"
    ) -> int:
        """The parameters of such a network, without building it."""
        if len(arch) not in (1, layers):
            raise InvalidArchitecture(
                f"a cell-free RobNet code has one cell per layer: {len(arch)} cells for layers={layers}"
            )

        def cell(
            i: int, c_pp: int, c_p: int, c: int, reduction: bool, reduction_prev: bool
        ) -> tuple[int, int]:
            code = arch[0] if len(arch) == 1 else arch[i]
            return RobNetCell.parameter_count(code, c_pp, c_p, c, reduction, reduction_prev), STEPS

        return cell_network_parameters(cell, C, num_classes, layers, stem)


# ---------------------------------------------------------------------------------------
# text form and statistics


def code_to_digits(cell: CellCode) -> str:
    """A cell's 14 codes as base-4 digits (``00 -> 0, 01 -> 1, 10 -> 2, 11 -> 3``)."""
    return "".join(str(CODES.index(c)) for c in cell)


def digits_to_code(digits: str) -> CellCode:
    """The inverse of :func:`code_to_digits`."""
    if len(digits) != NUM_EDGES or any(d not in "0123" for d in digits):
        raise InvalidArchitecture(f"a base-4 RobNet cell code has {NUM_EDGES} digits 0-3, got {digits!r}")
    return tuple(CODES[int(d)] for d in digits)


def density(arch: RobNetArch) -> float:
    """Architecture density D = set (edge, op) bits / all bits (RobNets Sec. 3.3), over all cells."""
    bits = sum(c.count("1") for cell in arch for c in cell)
    return bits / (2 * NUM_EDGES * len(arch))


def num_convolutions(cell: CellCode) -> int:
    """Separable convolutions in one cell (codes ``01`` and ``11``)."""
    return sum(c[1] == "1" for c in cell)


class RobNetSpace(ParameterCapped, SearchSpace[RobNetArch]):
    """The RobNets space with one code shared by every cell: 4**14 cells.

    ``sample`` draws the 14 codes uniformly; ``mutate`` gives one random edge of one random
    cell a different code. With ``max_params_m`` (a constructor option, or an argument that
    overrides it for one call) both redraw until the C=36, 20-cell CIFAR network is within
    the budget; ``None`` (the default) means no cap.
    """

    name = "robnet"
    #: number of cells a sampled architecture has (1 = shared code)
    sampled_cells = 1
    budget_C = 36
    budget_layers = 20
    max_tries = 1000

    def parse(self, text: str) -> RobNetArch:
        if not isinstance(text, str):
            raise InvalidArchitecture(f"expected RobNet code text, got {type(text).__name__}")
        s = text.strip()
        if not s:
            raise InvalidArchitecture("empty RobNet architecture code")
        if s.startswith("["):
            try:
                value = ast.literal_eval(s)
            except (ValueError, SyntaxError):
                raise InvalidArchitecture(
                    f"RobNet code is not a list literal like [['11', '01', ...]]: {text!r}"
                ) from None
            if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
                value = [value]  # one cell written without the outer list
            if not isinstance(value, list) or not all(isinstance(v, (list, tuple)) for v in value):
                raise InvalidArchitecture(
                    f"RobNet code must be a list of cells (lists of 2-bit codes): {text!r}"
                )
            return self.validate(tuple(tuple(cell) for cell in value))
        parts = [p for p in re.split(r"[\s,;|]+", s) if p]
        return self.validate(tuple(digits_to_code(p) for p in parts))

    def format(self, arch: RobNetArch) -> str:
        arch = self.validate(arch)
        cells = ", ".join("[" + ", ".join(repr(c) for c in cell) + "]" for cell in arch)
        return f"[{cells}]"

    def format_digits(self, arch: RobNetArch) -> str:
        """The compact base-4 form: one 14-digit string per cell, comma separated."""
        return ",".join(code_to_digits(cell) for cell in self.validate(arch))

    def validate(self, arch: RobNetArch) -> RobNetArch:
        if isinstance(arch, str):
            raise InvalidArchitecture("expected a tuple of cells; use parse() for strings")
        try:
            cells = tuple(tuple(cell) for cell in arch)
        except TypeError:
            raise InvalidArchitecture(f"a RobNet architecture is a sequence of cells, got {arch!r}") from None
        if not cells:
            raise InvalidArchitecture("a RobNet architecture needs at least one cell")
        for i, cell in enumerate(cells):
            if len(cell) != NUM_EDGES:
                raise InvalidArchitecture(f"RobNet cell {i} needs {NUM_EDGES} edge codes, got {len(cell)}")
            for k, code in enumerate(cell):
                if code not in CODES:
                    raise InvalidArchitecture(
                        f"RobNet cell {i}, edge {k}: unknown code {code!r}; expected one of {CODES}"
                    )
        return cells

    def sample(self, rng: RandomLike = None, max_params_m: float | str | None = "default") -> RobNetArch:
        max_params_m = self._cap(max_params_m)
        g = as_rng(rng)
        for _ in range(self.max_tries):
            arch = sample_codes(g, self.sampled_cells)
            if max_params_m is None or self.within_budget(arch, max_params_m):
                return arch
        raise ConfigError(
            f"no {self.name} architecture within {max_params_m}M parameters in {self.max_tries} draws"
        )

    def mutate(
        self, arch: RobNetArch, rng: RandomLike = None, max_params_m: float | str | None = "default"
    ) -> RobNetArch:
        """A new architecture with one edge of one cell set to a different 2-bit code."""
        max_params_m = self._cap(max_params_m)
        parent = self.validate(arch)
        g = as_rng(rng)
        for _ in range(self.max_tries):
            i = int(g.integers(len(parent)))
            k = int(g.integers(NUM_EDGES))
            choices = [c for c in CODES if c != parent[i][k]]
            cell = list(parent[i])
            cell[k] = choices[int(g.integers(len(choices)))]
            child = (*parent[:i], tuple(cell), *parent[i + 1 :])
            if max_params_m is None or self.within_budget(child, max_params_m):
                return child
        raise ConfigError(f"no mutant of this {self.name} architecture within {max_params_m}M parameters")

    def categorical_choices(self) -> Choices:
        """``cell{i}.edge{k}``: the 2-bit code of edge ``k`` of cell ``i``, for the
        ``sampled_cells`` cells (14 variables here, 280 in the cell-free space).

        >>> RobNetSpace().categorical_choices()[13]
        ('cell0.edge13', ('00', '01', '10', '11'))
        """
        return [(f"cell{i}.edge{k}", CODES) for i in range(self.sampled_cells) for k in range(NUM_EDGES)]

    def from_choices(self, choices: Mapping[str, Any]) -> RobNetArch:
        c = self.check_choices(choices)
        return tuple(
            tuple(str(c[f"cell{i}.edge{k}"]) for k in range(NUM_EDGES)) for i in range(self.sampled_cells)
        )

    def to_choices(self, arch: RobNetArch) -> dict[str, Choice]:
        a = self.validate(arch)
        if len(a) != self.sampled_cells:
            raise InvalidArchitecture(
                f"the {self.name} categorical encoding has {self.sampled_cells} cell(s), got {len(a)}"
            )
        return {f"cell{i}.edge{k}": code for i, cell in enumerate(a) for k, code in enumerate(cell)}

    def build(
        self,
        arch: RobNetArch | str,
        num_classes: int = 10,
        C: int = 36,
        layers: int = 20,
        imagenet: bool = False,
        **options: Any,
    ) -> RobNetNetwork:
        """The RobNets network (CIFAR stem, or the ImageNet stems with ``imagenet=True``)."""
        self.reject_build_options(options)
        a = self.parse(arch) if isinstance(arch, str) else self.validate(arch)
        return RobNetNetwork(a, num_classes, C, layers, stem="imagenet" if imagenet else "cifar")

    def parameters_m(self, arch: RobNetArch | str, num_classes: int = 10, **options: Any) -> float:
        """Millions of parameters of ``build(arch, num_classes, **options)``."""
        options.setdefault("C", self.budget_C)
        options.setdefault("layers", self.budget_layers)
        stem = "imagenet" if options.pop("imagenet", False) else "cifar"
        C, layers = options.pop("C"), options.pop("layers")
        self.reject_build_options(options)
        a = self.parse(arch) if isinstance(arch, str) else self.validate(arch)
        return RobNetNetwork.parameter_count(a, num_classes, C, layers, stem) / 1e6

    def within_budget(self, arch: RobNetArch | str, max_params_m: float, num_classes: int = 10) -> bool:
        """Whether the C=36, 20-cell network has at most ``max_params_m`` million parameters."""
        layers = self.budget_layers
        a = self.parse(arch) if isinstance(arch, str) else self.validate(arch)
        if len(a) > 1:
            layers = len(a)
        return self.parameters_m(a, num_classes, layers=layers) <= max_params_m


class RobNetFreeSpace(RobNetSpace):
    """The cell-free RobNets space: every one of the 20 cells has its own code (4**280 archs)."""

    name = "robnet-free"
    sampled_cells = 20


__all__ = [
    "CODES",
    "EDGES",
    "NUM_EDGES",
    "ResSepConv",
    "RobNetArch",
    "RobNetCell",
    "RobNetFreeSpace",
    "RobNetNetwork",
    "RobNetSpace",
    "code_to_digits",
    "density",
    "digits_to_code",
    "edge_operation",
    "num_convolutions",
]
