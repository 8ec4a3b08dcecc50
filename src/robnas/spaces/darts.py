"""The DARTS cell space (Liu, Simonyan and Yang, ICLR 2019) and the variant CRoZe samples from.

An architecture is a :class:`Genotype`, written exactly as the DARTS repository prints it::

    Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ...], normal_concat=range(2, 6),
             reduce=[('max_pool_3x3', 0), ...], reduce_concat=range(2, 6))

Each ``(op, input)`` pair is one edge; consecutive pairs ``2i, 2i+1`` feed step ``i`` (state
``i + 2``); states 0 and 1 are the two cell inputs; the cell output is the channel
concatenation of ``states[c] for c in concat`` (repeats allowed, width ``len(concat) * C``).

Two spaces share the same genotype, cell and network code:

* ``darts``: the standard space, 8 operations, 4 steps of two edges from two different
  earlier states, concat ``range(2, 6)``.
* ``darts-croze``: what CRoZe's ``sampling.py`` really generates (NeurIPS 2023 code): 10
  primitives (adds ``sep_conv_7x7`` and ``conv_7x1_1x7``), one edge from *every* predecessor
  of the 4 intended nodes (14 pairs, inputs ``0,1, 0,1,2, 0,1,2,3, 0,1,2,3,4``), which the
  DARTS cell reads as 7 two-input steps; concat is 1-4 states drawn from 2..5 with repeats.
  Steps 4-6 are computed but never used, yet their parameters count, as in the reference.

Networks are the DARTS ``NetworkCIFAR`` / ``NetworkImageNet`` skeleton of
:mod:`robnas.spaces.network` (stems, reductions at 1/3 and 2/3 of the depth, optional auxiliary
head, drop-path, CRoZe's features) around :class:`DartsCell`.
Inputs are (B, 3, H, W) images as the training pipeline gives them; outputs are logits.
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from robnas.errors import ConfigError, InvalidArchitecture
from robnas.spaces.base import Choice, Choices, ParameterCapped, RandomLike, SearchSpace, as_rng
from robnas.spaces.network import (
    AuxiliaryHeadCIFAR,
    AuxiliaryHeadImageNet,
    Cell,
    CellNetwork,
    cell_network_parameters,
    count_parameters,
    module_parameters,
    parameters_m,
)
from robnas.spaces.ops import (
    Conv7x1x1x7,
    DilConv,
    FactorizedReduce,
    SepConv,
    StdReLUConvBN,
    Zero,
    drop_path,
)

#: The standard DARTS primitives, in the order of the DARTS ``genotypes.py``.
PRIMITIVES: tuple[str, ...] = (
    "none",
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
)
#: The primitives of CRoZe's ``sampling.py`` (``none`` is never drawn).
CROZE_PRIMITIVES: tuple[str, ...] = (
    "none",
    "avg_pool_3x3",
    "max_pool_3x3",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "sep_conv_7x7",
    "dil_conv_3x3",
    "dil_conv_5x5",
    "conv_7x1_1x7",
)
#: Every operation the cell builder knows.
OPERATIONS: tuple[str, ...] = tuple(dict.fromkeys(PRIMITIVES + CROZE_PRIMITIVES))
#: Inputs of CRoZe's 14 pairs: node ``i`` gets one edge from every state ``0..i+1``.
CROZE_INPUTS: tuple[int, ...] = tuple(j for i in range(4) for j in range(i + 2))
STANDARD_CONCAT: tuple[int, ...] = (2, 3, 4, 5)
#: Every darts-croze concat (1-4 states from 2..5, repeats allowed) as its categorical choice "2,5,5".
CROZE_CONCATS: tuple[str, ...] = tuple(
    ",".join(map(str, c)) for n in range(1, 5) for c in itertools.product(range(2, 6), repeat=n)
)

Edge = tuple[str, int]
#: ``(factory, args)``: how a cell builds one of its modules (``factory(*args)``)
Part = tuple[Callable[..., nn.Module], tuple[Any, ...]]


class Genotype(NamedTuple):
    """A DARTS architecture: edge lists and concat lists of the normal and reduction cells."""

    normal: tuple[Edge, ...]
    normal_concat: tuple[int, ...]
    reduce: tuple[Edge, ...]
    reduce_concat: tuple[int, ...]


def make_genotype(
    normal: Iterable[Sequence[Any]],
    normal_concat: Iterable[int],
    reduce: Iterable[Sequence[Any]],
    reduce_concat: Iterable[int],
) -> Genotype:
    """A :class:`Genotype` from lists, tuples or ``range`` objects (stored as tuples)."""

    def edges(items: Iterable[Sequence[Any]], field: str) -> tuple[Edge, ...]:
        out: list[Edge] = []
        for item in items:
            if (
                not isinstance(item, (tuple, list))
                or len(item) != 2
                or not isinstance(item[0], str)
                or isinstance(item[1], bool)
                or not isinstance(item[1], int)
            ):
                raise InvalidArchitecture(f"{field} entries must be ('op', input) pairs, got {item!r}")
            out.append((item[0], int(item[1])))
        return tuple(out)

    def concat(items: Iterable[int], field: str) -> tuple[int, ...]:
        out = tuple(items)
        if not all(isinstance(c, int) and not isinstance(c, bool) for c in out):
            raise InvalidArchitecture(f"{field} must hold state indices (integers), got {out!r}")
        return out

    return Genotype(
        edges(normal, "normal"),
        concat(normal_concat, "normal_concat"),
        edges(reduce, "reduce"),
        concat(reduce_concat, "reduce_concat"),
    )


# ---------------------------------------------------------------------------------------
# text form


def _format_edges(edges: Sequence[Edge]) -> str:
    return "[" + ", ".join(f"({op!r}, {index})" for op, index in edges) + "]"


def _format_concat(concat: Sequence[int]) -> str:
    c = tuple(concat)
    if len(c) >= 2 and c == tuple(range(c[0], c[0] + len(c))):
        return f"range({c[0]}, {c[-1] + 1})"
    return "[" + ", ".join(str(i) for i in c) + "]"


def format_genotype(genotype: Genotype) -> str:
    """The DARTS repository's printed form; contiguous concats print as ``range(a, b)``."""
    g = genotype
    return (
        f"Genotype(normal={_format_edges(g.normal)}, normal_concat={_format_concat(g.normal_concat)}, "
        f"reduce={_format_edges(g.reduce)}, reduce_concat={_format_concat(g.reduce_concat)})"
    )


_FIELD_ALIASES = {
    "normal": "normal",
    "normal_concat": "normal_concat",
    "reduce": "reduce",
    "reduction": "reduce",
    "reduce_concat": "reduce_concat",
    "reduction_concat": "reduce_concat",
}


def _value(node: ast.AST, text: str) -> Any:
    """A literal (numbers, strings, lists, tuples, dicts, ``range(a, b[, s])``) from ``node``."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_value(e, text) for e in node.elts]
    if isinstance(node, ast.Dict):
        if any(k is None for k in node.keys):
            raise InvalidArchitecture(f"'**' is not allowed in a genotype: {text!r}")
        return {_value(k, text): _value(v, text) for k, v in zip(node.keys, node.values, strict=True)}
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "range":
        args = [_value(a, text) for a in node.args]
        if node.keywords or not 1 <= len(args) <= 3 or not all(isinstance(a, int) for a in args):
            raise InvalidArchitecture(f"range(...) needs 1-3 integer arguments in {text!r}")
        return list(range(*args))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        inner = _value(node.operand, text)
        if isinstance(inner, int):
            return -inner
    raise InvalidArchitecture(f"unexpected expression {ast.unparse(node)!r} in genotype {text!r}")


def parse_genotype(text: str) -> Genotype:
    """Parse ``Genotype(normal=[...], normal_concat=..., reduce=[...], reduce_concat=...)``.

    Concats may be written ``range(2, 6)`` or ``[2, 3, 4, 5]``; positional fields and the
    dict form of CRoZe's ``train.py`` (keys ``normal``, ``reduction``, ...) are accepted too.
    Nothing is evaluated: the text is read with :mod:`ast`.
    """
    s = text.strip()
    try:
        tree = ast.parse(s, mode="eval").body
    except SyntaxError as exc:
        raise InvalidArchitecture(f"genotype text is not valid syntax ({exc.msg}): {text!r}") from None
    fields: dict[str, Any] = {}
    if isinstance(tree, ast.Call) and isinstance(tree.func, ast.Name) and tree.func.id == "Genotype":
        if len(tree.args) > 4:
            raise InvalidArchitecture(f"Genotype takes 4 fields, got {len(tree.args)} positional: {text!r}")
        for name, arg in zip(Genotype._fields, tree.args, strict=False):
            fields[name] = _value(arg, text)
        for kw in tree.keywords:
            if kw.arg not in _FIELD_ALIASES:
                raise InvalidArchitecture(f"unknown Genotype field {kw.arg!r} in {text!r}")
            key = _FIELD_ALIASES[kw.arg]
            if key in fields:
                raise InvalidArchitecture(f"Genotype field {key!r} given twice in {text!r}")
            fields[key] = _value(kw.value, text)
    elif isinstance(tree, ast.Dict):
        for key, value in _value(tree, text).items():
            if key not in _FIELD_ALIASES:
                raise InvalidArchitecture(f"unknown genotype key {key!r} in {text!r}")
            fields[_FIELD_ALIASES[key]] = value
    else:
        raise InvalidArchitecture(
            f"expected 'Genotype(normal=[...], normal_concat=..., reduce=[...], reduce_concat=...)', got {text!r}"
        )
    missing = [f for f in Genotype._fields if f not in fields]
    if missing:
        raise InvalidArchitecture(f"genotype lacks {', '.join(missing)}: {text!r}")
    return make_genotype(fields["normal"], fields["normal_concat"], fields["reduce"], fields["reduce_concat"])


# ---------------------------------------------------------------------------------------
# operations, cells and networks


def make_operation(name: str, c: int, stride: int, affine: bool = True) -> nn.Module:
    """The DARTS operation ``name`` on ``c`` channels (``stride`` 2 on reduction edges)."""
    if name == "none":
        return Zero(stride)
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False)
    if name == "max_pool_3x3":
        return nn.MaxPool2d(3, stride=stride, padding=1)
    if name == "skip_connect":
        return nn.Identity() if stride == 1 else FactorizedReduce(c, c, affine)
    if name in ("sep_conv_3x3", "sep_conv_5x5", "sep_conv_7x7"):
        k = int(name[-1])
        return SepConv(c, c, k, stride, k // 2, affine)
    if name in ("dil_conv_3x3", "dil_conv_5x5"):
        k = int(name[-1])
        return DilConv(c, c, k, stride, k - 1, 2, affine)
    if name == "conv_7x1_1x7":
        return Conv7x1x1x7(c, stride, affine)
    raise InvalidArchitecture(f"unknown DARTS operation {name!r}; expected one of {OPERATIONS}")


class DartsCell(Cell):
    """A DARTS cell: ``len(edges) // 2`` two-input steps, output = concat of ``concat`` states."""

    def __init__(
        self,
        edges: Sequence[Edge],
        concat: Sequence[int],
        c_prev_prev: int,
        c_prev: int,
        c: int,
        reduction: bool,
        reduction_prev: bool,
    ) -> None:
        super().__init__()
        self.reduction = reduction
        (pre0, args0), (pre1, args1), ops = self.parts(
            edges, c_prev_prev, c_prev, c, reduction, reduction_prev
        )
        self.preprocess0 = pre0(*args0)
        self.preprocess1 = pre1(*args1)
        self.steps = len(edges) // 2
        self.indices = tuple(index for _, index in edges)
        self.concat = tuple(concat)
        self.multiplier = len(self.concat)
        self._ops = nn.ModuleList(make(*args) for make, args in ops)

    @staticmethod
    def parts(
        edges: Sequence[Edge], c_prev_prev: int, c_prev: int, c: int, reduction: bool, reduction_prev: bool
    ) -> tuple[Part, Part, list[Part]]:
        """``(factory, args)`` of preprocess0, preprocess1 and every edge operation; an edge from a
        cell input of a reduction cell has stride 2."""
        pre0: Part = (
            (FactorizedReduce, (c_prev_prev, c))
            if reduction_prev
            else (StdReLUConvBN, (c_prev_prev, c, 1, 1, 0))
        )
        ops: list[Part] = [
            (make_operation, (op, c, 2 if reduction and index < 2 else 1)) for op, index in edges
        ]
        return pre0, (StdReLUConvBN, (c_prev, c, 1, 1, 0)), ops

    @classmethod
    def parameter_count(
        cls,
        edges: Sequence[Edge],
        c_prev_prev: int,
        c_prev: int,
        c: int,
        reduction: bool,
        reduction_prev: bool,
    ) -> int:
        """The parameters of such a cell, from memoised per-operation counts (nothing is built)."""
        pre0, pre1, ops = cls.parts(edges, c_prev_prev, c_prev, c, reduction, reduction_prev)
        return sum(module_parameters(make, *args) for make, args in (pre0, pre1, *ops))

    def forward(self, s0: Tensor, s1: Tensor, drop_prob: float = 0.0) -> Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for i in range(self.steps):
            terms = []
            for k in (2 * i, 2 * i + 1):
                op = self._ops[k]
                h = op(states[self.indices[k]])
                if self.training and drop_prob > 0.0 and not isinstance(op, nn.Identity):
                    h = drop_path(h, drop_prob)
                terms.append(h)
            states.append(terms[0] + terms[1])
        return torch.cat([states[i] for i in self.concat], dim=1)


class DartsNetwork(CellNetwork):
    """DARTS ``NetworkCIFAR`` (``stem="cifar"``) or ``NetworkImageNet`` (``stem="imagenet"``)."""

    def __init__(
        self,
        genotype: Genotype,
        num_classes: int = 10,
        C: int = 36,
        layers: int = 20,
        auxiliary: bool = False,
        drop_path_prob: float = 0.0,
        stem: str = "cifar",
    ) -> None:
        self.genotype = genotype

        def make_cell(i: int, c_pp: int, c_p: int, c: int, reduction: bool, reduction_prev: bool) -> Cell:
            edges, concat = cell_genes(genotype, reduction)
            return DartsCell(edges, concat, c_pp, c_p, c, reduction, reduction_prev)

        super().__init__(
            make_cell, C, num_classes, layers, stem, auxiliary=auxiliary, drop_path_prob=drop_path_prob
        )

    @staticmethod
    def parameter_count(
        genotype: Genotype, num_classes: int = 10, C: int = 36, layers: int = 20, stem: str = "cifar"
    ) -> int:
        """``count_parameters`` of such a network (auxiliary head excluded), without building it."""

        def cell(
            i: int, c_pp: int, c_p: int, c: int, reduction: bool, reduction_prev: bool
        ) -> tuple[int, int]:
            edges, concat = cell_genes(genotype, reduction)
            return DartsCell.parameter_count(edges, c_pp, c_p, c, reduction, reduction_prev), len(concat)

        return cell_network_parameters(cell, C, num_classes, layers, stem)


def cell_genes(genotype: Genotype, reduction: bool) -> tuple[tuple[Edge, ...], tuple[int, ...]]:
    """The edges and concat of the reduction or the normal cell of ``genotype``."""
    if reduction:
        return genotype.reduce, genotype.reduce_concat
    return genotype.normal, genotype.normal_concat


# ---------------------------------------------------------------------------------------
# the spaces


class DartsSpace(ParameterCapped, SearchSpace[Genotype]):
    """The standard DARTS space: 8 operations, 4 steps of 2 edges, concat ``range(2, 6)``.

    ``sample`` draws, per step, two different inputs among the earlier states and a non-none
    operation for each. ``mutate`` follows CRoZe's ``mutate_architecture``: one random edge
    of the normal cell and one of the reduction cell get a different non-none operation;
    inputs never change (concat is fixed in this space). With ``max_params_m`` (a constructor
    option, or an argument that overrides it for one call) both redraw until the C=36, 20-cell
    CIFAR network (auxiliary head excluded) is within the budget; ``None`` means no cap.
    """

    name = "darts"
    primitives: tuple[str, ...] = PRIMITIVES
    steps = 4
    #: budget network: the one CRoZe's size filter builds
    budget_C = 36
    budget_layers = 20
    max_tries = 1000

    # -- text ---------------------------------------------------------------------------
    def parse(self, text: str) -> Genotype:
        if not isinstance(text, str):
            raise InvalidArchitecture(f"expected genotype text, got {type(text).__name__}")
        return self.validate(parse_genotype(text))

    def format(self, arch: Genotype) -> str:
        return format_genotype(self.validate(arch))

    # -- membership -----------------------------------------------------------------------
    def _as_genotype(self, arch: Any) -> Genotype:
        if isinstance(arch, str):
            raise InvalidArchitecture("expected a Genotype; use parse() for strings")
        if isinstance(arch, Genotype):
            return make_genotype(*arch)
        if isinstance(arch, (tuple, list)) and len(arch) == 4:
            return make_genotype(*arch)
        raise InvalidArchitecture(
            f"expected a Genotype (normal, normal_concat, reduce, reduce_concat), got {arch!r}"
        )

    def _check_edges(self, edges: tuple[Edge, ...], cell: str) -> None:
        if len(edges) != 2 * self.steps:
            raise InvalidArchitecture(
                f"{self.name} {cell} cell needs {2 * self.steps} (op, input) pairs, got {len(edges)}"
            )
        for k, (op, index) in enumerate(edges):
            if op not in self.primitives:
                raise InvalidArchitecture(
                    f"unknown {self.name} operation {op!r} in the {cell} cell; expected one of {self.primitives}"
                )
            step = k // 2
            if not 0 <= index < step + 2:
                raise InvalidArchitecture(
                    f"{cell} cell: edge {k} ({op!r}, {index}) of step {step} must read a state in 0..{step + 1}"
                )
        for step in range(self.steps):
            a, b = edges[2 * step][1], edges[2 * step + 1][1]
            if a == b:
                raise InvalidArchitecture(
                    f"{cell} cell: step {step} takes state {a} twice; DARTS steps have two different inputs"
                )

    def _check_concat(self, concat: tuple[int, ...], cell: str) -> None:
        if concat != STANDARD_CONCAT:
            raise InvalidArchitecture(
                f"{self.name} {cell}_concat must be range(2, 6) (all intermediate states), got {list(concat)}"
            )

    def validate(self, arch: Genotype) -> Genotype:
        g = self._as_genotype(arch)
        self._check_edges(g.normal, "normal")
        self._check_edges(g.reduce, "reduce")
        self._check_concat(g.normal_concat, "normal")
        self._check_concat(g.reduce_concat, "reduce")
        return g

    # -- sampling -------------------------------------------------------------------------
    @property
    def drawable_ops(self) -> tuple[str, ...]:
        return tuple(op for op in self.primitives if op != "none")

    def _choice(self, g: Any, items: Sequence[Any]) -> Any:
        return items[int(g.integers(len(items)))]

    def _sample_edges(self, g: Any) -> tuple[Edge, ...]:
        ops = self.drawable_ops
        edges: list[Edge] = []
        for step in range(self.steps):
            inputs = g.choice(step + 2, size=2, replace=False)
            edges.extend((self._choice(g, ops), int(j)) for j in inputs)
        return tuple(edges)

    def _sample_concats(self, g: Any) -> tuple[tuple[int, ...], tuple[int, ...]]:
        return STANDARD_CONCAT, STANDARD_CONCAT

    def _sample_once(self, g: Any) -> Genotype:
        normal, reduce = self._sample_edges(g), self._sample_edges(g)
        normal_concat, reduce_concat = self._sample_concats(g)
        return Genotype(normal, normal_concat, reduce, reduce_concat)

    def sample(self, rng: RandomLike = None, max_params_m: float | str | None = "default") -> Genotype:
        max_params_m = self._cap(max_params_m)
        g = as_rng(rng)
        for _ in range(self.max_tries):
            arch = self._sample_once(g)
            if max_params_m is None or self.within_budget(arch, max_params_m):
                return arch
        raise ConfigError(
            f"no {self.name} architecture within {max_params_m}M parameters in {self.max_tries} draws"
        )

    def _mutate_edges(self, g: Any, edges: tuple[Edge, ...]) -> tuple[Edge, ...]:
        k = int(g.integers(len(edges)))
        op, index = edges[k]
        new = list(edges)
        new[k] = (self._choice(g, [o for o in self.drawable_ops if o != op]), index)
        return tuple(new)

    def _mutate_concats(self, g: Any, arch: Genotype) -> tuple[tuple[int, ...], tuple[int, ...]]:
        return arch.normal_concat, arch.reduce_concat

    def _mutate_once(self, g: Any, arch: Genotype) -> Genotype:
        normal = self._mutate_edges(g, arch.normal)
        reduce = self._mutate_edges(g, arch.reduce)
        normal_concat, reduce_concat = self._mutate_concats(g, arch)
        return Genotype(normal, normal_concat, reduce, reduce_concat)

    def mutate(
        self, arch: Genotype, rng: RandomLike = None, max_params_m: float | str | None = "default"
    ) -> Genotype:
        """A new genotype: one random normal edge and one random reduce edge get a different
        non-none operation (inputs kept). ``arch`` is never changed.

        Unlike CRoZe's reference, whose ``_mutate_cell`` edits the parent's lists in place (so
        all children of a round, the parent and the recorded best share one accumulating op
        list), every child here is one edit away from its parent; over-budget children are
        redrawn from the same parent instead of accumulating edits.
        """
        max_params_m = self._cap(max_params_m)
        parent = self.validate(arch)
        g = as_rng(rng)
        for _ in range(self.max_tries):
            child = self._mutate_once(g, parent)
            if max_params_m is None or self.within_budget(child, max_params_m):
                return child
        raise ConfigError(f"no mutant of this {self.name} genotype within {max_params_m}M parameters")

    # -- categorical encoding -------------------------------------------------------------
    def categorical_choices(self) -> Choices:
        """Per cell (``normal``, ``reduce``) and step ``i``: ``{cell}.step{i}.inputs``, the
        unordered pair of different input states ``"a,b"`` (``a < b <= i + 1``), and
        ``{cell}.step{i}.op0`` / ``.op1``, the non-none operation on state ``a`` / ``b``.

        Every assignment is a valid genotype (two different inputs per step by construction);
        a genotype and the one with a step's two edges swapped share an assignment.

        >>> DartsSpace().categorical_choices()[3]
        ('normal.step1.inputs', ('0,1', '0,2', '1,2'))
        """
        return [choice for cell in ("normal", "reduce") for choice in self._cell_choices(cell)]

    def from_choices(self, choices: Mapping[str, Any]) -> Genotype:
        c = self.check_choices(choices)
        normal, normal_concat = self._cell_from_choices(c, "normal")
        reduce, reduce_concat = self._cell_from_choices(c, "reduce")
        return self.validate(Genotype(normal, normal_concat, reduce, reduce_concat))

    def to_choices(self, arch: Genotype) -> dict[str, Choice]:
        g = self.validate(arch)
        for cell, edges in (("normal", g.normal), ("reduce", g.reduce)):
            if any(op == "none" for op, _ in edges):
                raise InvalidArchitecture(
                    f"{self.name} {cell} cell: 'none' edges are outside the categorical encoding "
                    "(it covers the operations sample draws)"
                )
        return {
            **self._cell_to_choices(g.normal, g.normal_concat, "normal"),
            **self._cell_to_choices(g.reduce, g.reduce_concat, "reduce"),
        }

    def _cell_choices(self, cell: str) -> Choices:
        out: Choices = []
        for step in range(self.steps):
            pairs = tuple(f"{a},{b}" for a, b in itertools.combinations(range(step + 2), 2))
            out += [
                (f"{cell}.step{step}.inputs", pairs),
                (f"{cell}.step{step}.op0", self.drawable_ops),
                (f"{cell}.step{step}.op1", self.drawable_ops),
            ]
        return out

    def _cell_from_choices(self, c: dict[str, Any], cell: str) -> tuple[tuple[Edge, ...], tuple[int, ...]]:
        edges: list[Edge] = []
        for step in range(self.steps):
            a, b = (int(i) for i in str(c[f"{cell}.step{step}.inputs"]).split(","))
            edges += [(str(c[f"{cell}.step{step}.op0"]), a), (str(c[f"{cell}.step{step}.op1"]), b)]
        return tuple(edges), STANDARD_CONCAT

    def _cell_to_choices(
        self, edges: tuple[Edge, ...], concat: tuple[int, ...], cell: str
    ) -> dict[str, Choice]:
        out: dict[str, Choice] = {}
        for step in range(self.steps):
            (op0, a), (op1, b) = sorted(edges[2 * step : 2 * step + 2], key=lambda e: e[1])
            out[f"{cell}.step{step}.inputs"] = f"{a},{b}"
            out[f"{cell}.step{step}.op0"] = op0
            out[f"{cell}.step{step}.op1"] = op1
        return out

    # -- networks -------------------------------------------------------------------------
    def build(
        self,
        arch: Genotype | str,
        num_classes: int = 10,
        C: int = 36,
        layers: int = 20,
        auxiliary: bool = False,
        drop_path_prob: float = 0.0,
        imagenet: bool = False,
        **options: Any,
    ) -> DartsNetwork:
        """The DARTS ``NetworkCIFAR`` (or ``NetworkImageNet`` with ``imagenet=True``)."""
        self.reject_build_options(options)
        g = self.parse(arch) if isinstance(arch, str) else self.validate(arch)
        return DartsNetwork(
            g, num_classes, C, layers, auxiliary, drop_path_prob, stem="imagenet" if imagenet else "cifar"
        )

    def parameters_m(self, arch: Genotype | str, num_classes: int = 10, **options: Any) -> float:
        """Millions of parameters of ``build(arch, num_classes, **options)``, auxiliary excluded."""
        options.setdefault("C", self.budget_C)
        options.setdefault("layers", self.budget_layers)
        options.pop("auxiliary", None)
        options.pop("drop_path_prob", None)
        stem = "imagenet" if options.pop("imagenet", False) else "cifar"
        C, layers = options.pop("C"), options.pop("layers")
        self.reject_build_options(options)
        g = self.parse(arch) if isinstance(arch, str) else self.validate(arch)
        return DartsNetwork.parameter_count(g, num_classes, C, layers, stem) / 1e6

    def within_budget(self, arch: Genotype | str, max_params_m: float, num_classes: int = 10) -> bool:
        """CRoZe's size filter: the C=36, 20-cell network (no auxiliary head) has at most
        ``max_params_m`` million parameters (the reference resamples when it has more)."""
        return self.parameters_m(arch, num_classes) <= max_params_m


class CrozeDartsSpace(DartsSpace):
    """The DARTS variant CRoZe's ``sampling.py`` generates (see the module docstring).

    ``sample``: a non-none op for every one of the 14 fixed (op, input) pairs of each cell;
    ``n`` drawn from 1..4, then ``n`` normal and ``n`` reduce concat entries drawn
    independently from 2..5. ``mutate``: as :class:`DartsSpace`, then ``select_step`` drawn
    from {1, 2, 3}: 1 redraws normal_concat, 2 redraws reduce_concat (a new length 1..4),
    3 keeps both. Categorical encoding: per cell, the non-none operation of each of the 14
    pairs (``{cell}.edge{k}``) and the concat (``{cell}.concat``, one of 340 such as ``"2,5,5"``).
    Sampling and mutation keep the reference's 6 M parameter cap by default
    (``sampling.py`` resamples, ``search.py`` re-mutates over-budget networks); pass
    ``max_params_m=None`` to search without it.
    """

    name = "darts-croze"
    primitives = CROZE_PRIMITIVES
    default_max_params_m = 6.0

    def _check_edges(self, edges: tuple[Edge, ...], cell: str) -> None:
        if len(edges) != len(CROZE_INPUTS):
            raise InvalidArchitecture(
                f"{self.name} {cell} cell needs {len(CROZE_INPUTS)} (op, input) pairs, got {len(edges)}"
            )
        for k, ((op, index), expected) in enumerate(zip(edges, CROZE_INPUTS, strict=True)):
            if op not in self.primitives:
                raise InvalidArchitecture(
                    f"unknown {self.name} operation {op!r} in the {cell} cell; expected one of {self.primitives}"
                )
            if index != expected:
                raise InvalidArchitecture(
                    f"{cell} cell: pair {k} must read state {expected} (inputs are {list(CROZE_INPUTS)}), got {index}"
                )

    def _check_concat(self, concat: tuple[int, ...], cell: str) -> None:
        if not 1 <= len(concat) <= 4 or not all(2 <= c <= 5 for c in concat):
            raise InvalidArchitecture(
                f"{self.name} {cell}_concat must hold 1-4 states from 2..5, got {list(concat)}"
            )

    def _sample_edges(self, g: Any) -> tuple[Edge, ...]:
        ops = self.drawable_ops
        return tuple((self._choice(g, ops), j) for j in CROZE_INPUTS)

    def _draw_concat(self, g: Any, n: int) -> tuple[int, ...]:
        return tuple(int(c) for c in g.integers(2, 6, size=n))

    def _sample_concats(self, g: Any) -> tuple[tuple[int, ...], tuple[int, ...]]:
        n = int(g.integers(1, 5))
        return self._draw_concat(g, n), self._draw_concat(g, n)

    def _cell_choices(self, cell: str) -> Choices:
        """``{cell}.edge0..edge13``: the non-none operation of each of the 14 fixed pairs;
        ``{cell}.concat``: one of the 340 concats (``"2"`` ... ``"5,5,5,5"``, order kept)."""
        edges: Choices = [(f"{cell}.edge{k}", self.drawable_ops) for k in range(len(CROZE_INPUTS))]
        return [*edges, (f"{cell}.concat", CROZE_CONCATS)]

    def _cell_from_choices(self, c: dict[str, Any], cell: str) -> tuple[tuple[Edge, ...], tuple[int, ...]]:
        edges = tuple((str(c[f"{cell}.edge{k}"]), j) for k, j in enumerate(CROZE_INPUTS))
        return edges, tuple(int(i) for i in str(c[f"{cell}.concat"]).split(","))

    def _cell_to_choices(
        self, edges: tuple[Edge, ...], concat: tuple[int, ...], cell: str
    ) -> dict[str, Choice]:
        out: dict[str, Choice] = {f"{cell}.edge{k}": op for k, (op, _) in enumerate(edges)}
        out[f"{cell}.concat"] = ",".join(map(str, concat))
        return out

    def _mutate_concats(self, g: Any, arch: Genotype) -> tuple[tuple[int, ...], tuple[int, ...]]:
        select_step = int(g.integers(1, 4))
        normal_concat, reduce_concat = arch.normal_concat, arch.reduce_concat
        if select_step == 1:
            normal_concat = self._draw_concat(g, int(g.integers(1, 5)))
        elif select_step == 2:
            reduce_concat = self._draw_concat(g, int(g.integers(1, 5)))
        return normal_concat, reduce_concat


__all__ = [
    "CROZE_CONCATS",
    "CROZE_INPUTS",
    "CROZE_PRIMITIVES",
    "OPERATIONS",
    "PRIMITIVES",
    "AuxiliaryHeadCIFAR",
    "AuxiliaryHeadImageNet",
    "Cell",
    "CellNetwork",
    "CrozeDartsSpace",
    "DartsCell",
    "DartsNetwork",
    "DartsSpace",
    "Genotype",
    "count_parameters",
    "format_genotype",
    "make_genotype",
    "make_operation",
    "parameters_m",
    "parse_genotype",
]
