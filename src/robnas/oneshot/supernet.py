"""Weight-sharing supernets of the NB201, DARTS and RobNets spaces (one-shot robust search).

A supernet holds the weights of every operation of every edge; ``net(x, arch)`` runs the
single path ``arch`` (an architecture of the space, or its text) and nothing else, so one
training step costs one sub-network (single-path one-shot, Guo et al., ECCV 2020, "SPOS").
``net.subnet(arch)`` is the standalone network the space's own builder makes for ``arch``,
with the inherited weights copied in: in eval mode its logits equal ``net(x, arch)``.

* ``nb201``: the NAS-Bench-201 ``TinyNetwork`` (Dong and Yang, ICLR 2020) with all 5
  operations on each of the 6 edges of every cell; a path is one operation per edge.
* ``darts``: Wsr-NAS's supernet (Cheng et al., AAAI 2023, ``model_search.py``): the DARTS
  macro network (stem 3C, reductions at ``layers // 3`` and ``2 * layers // 3``) whose cells
  have 14 mixed edges of the 8 DARTS operations, ``none`` included, pooling followed by
  BN(affine=False). A path is a genotype: on each node the two chosen input edges run their
  chosen operation; the other edges do not run. C=16 and 8 cells give 1,930,618 weights.
  ``net.forward_argmax(x, weights)`` runs Wsr-NAS's own single path instead: every edge's
  arg-max operation of ``weights`` (28, 8), scaled by its weight.
* ``robnet`` / ``robnet-free``: RobNets' dense supernet (Guo et al., CVPR 2020, Sec. 3.2),
  all alpha = 1: every one of a cell's 14 edges holds a separable convolution and an
  identity (FactorizedReduce on reduction edges); the 2-bit code of a path switches each on
  or off. ``robnet`` paths share one code across cells, ``robnet-free`` paths have one code
  per cell; both supernets accept either.

``net.sample_path(generator)`` draws a uniform single path (RobNets' "path dropout" for the
RobNets space). BN statistics: ``bn="track"`` keeps the usual running averages over all
sampled paths; ``bn="recalibrate"`` keeps none while training: every forward normalises with
the batch's statistics (in eval mode too, as NAS-Bench-201's search cells do), except an
eval-mode forward of the path whose statistics :func:`recalibrate_bn` last estimated on a few
training batches (call it before scoring a path with inherited weights). ``affine`` switches the BN parameters of cells and operations (off by default, as
in RobNets' cells and DARTS-style supernets; the RobNets cells have none at all).

>>> import torch
>>> net = supernet("nb201", C=4, N=1)
>>> arch = net.sample_path(torch.Generator().manual_seed(0))
>>> net(torch.rand(2, 3, 8, 8), arch).shape
torch.Size([2, 10])
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from robnas import spaces
from robnas.errors import ConfigError, InvalidArchitecture
from robnas.registry import Registry
from robnas.spaces.darts import PRIMITIVES as DARTS_OPERATIONS
from robnas.spaces.darts import Genotype, cell_genes, make_operation
from robnas.spaces.nb201 import EDGES as NB201_EDGES
from robnas.spaces.nb201 import OPERATIONS as NB201_OPERATIONS
from robnas.spaces.nb201 import ResidualReduction, _operation
from robnas.spaces.network import Cell, CellFactory, CellNetwork
from robnas.spaces.ops import FactorizedReduce, SepConv, StdReLUConvBN, drop_path
from robnas.spaces.robnet import STEPS, sample_codes

BN_MODES: tuple[str, ...] = ("track", "recalibrate")
#: Generators a path can be drawn from (a torch generator, as ``StepContext.generator`` gives).
GeneratorLike = torch.Generator | np.random.Generator | int | None


def _seed_from(generator: GeneratorLike) -> np.random.Generator:
    """A numpy generator seeded from ``generator`` (one draw from a torch generator)."""
    if isinstance(generator, torch.Generator):
        return np.random.default_rng(int(torch.randint(0, 2**62, (1,), generator=generator).item()))
    if isinstance(generator, np.random.Generator):
        return generator
    if generator is None or (isinstance(generator, int) and not isinstance(generator, bool)):
        return np.random.default_rng(generator)
    raise ConfigError(f"a path is drawn from a torch or numpy generator or a seed, got {generator!r}")


def _batch_norms(module: nn.Module) -> list[_BatchNorm]:
    return [m for m in module.modules() if isinstance(m, _BatchNorm)]


class Supernet(nn.Module, ABC):
    """Base class: a space's weight-sharing network with ``forward(x, arch)`` and ``subnet(arch)``."""

    space_name: str = ""

    def _configure(self, num_classes: int, affine: bool, bn: str) -> None:
        """Set the options every supernet has (called by subclasses after ``nn.Module.__init__``)."""
        if bn not in BN_MODES:
            raise ConfigError(f"supernet bn must be one of {', '.join(BN_MODES)}, got {bn!r}")
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ConfigError(f"num_classes must be a positive integer, got {num_classes!r}")
        self.space = spaces.get(self.space_name)
        self.num_classes = num_classes
        self.affine = bool(affine)
        self.bn = bn
        self._calibrated: str | None = None

    # -- set-up helpers -------------------------------------------------------------------
    def _finish_init(self) -> None:
        """In ``recalibrate`` mode forwards leave the running statistics alone (momentum 0)."""
        if self.bn == "recalibrate":
            for m in _batch_norms(self):
                m.momentum = 0.0

    @property
    def build_options(self) -> dict[str, Any]:
        """The options that rebuild this supernet with :func:`supernet` (checkpoint metadata):
        the constructor's parameters, each stored on the supernet under its own name."""
        return {name: getattr(self, name) for name in _constructor_options(type(self))}

    # -- paths ----------------------------------------------------------------------------
    def path(self, arch: Any) -> Any:
        """``arch`` (or its text) as a checked architecture of this supernet's space."""
        try:
            return self._check(self.space.parse(arch) if isinstance(arch, str) else self.space.validate(arch))
        except InvalidArchitecture as exc:
            raise InvalidArchitecture(f"not a path of the {self.space_name} supernet: {exc}") from None
        except (TypeError, ValueError) as exc:
            raise InvalidArchitecture(
                f"not a path of the {self.space_name} supernet: {arch!r} ({exc})"
            ) from None

    def _check(self, arch: Any) -> Any:
        return arch

    def path_text(self, arch: Any) -> str:
        """The canonical text of the path ``arch``."""
        return self.space.format(self.path(arch))

    def sample_path(self, generator: GeneratorLike = None) -> Any:
        """A uniformly random single path drawn from ``generator`` (the space's own ``sample``)."""
        return self.path(self.space.sample(_seed_from(generator)))

    # -- forward --------------------------------------------------------------------------
    def forward(self, x: Tensor, arch: Any) -> Tensor:
        """Logits (B, num_classes) of the sub-network ``arch``; only its operations run."""
        a = self.path(arch)
        if self.training:
            self._calibrated = None
        elif self.bn == "recalibrate" and self._calibrated != self.space.format(a):
            norms = _batch_norms(self)  # batch statistics; momentum 0 keeps the running ones
            try:
                for m in norms:
                    m.train()
                return self._forward(x, a)
            finally:
                for m in norms:
                    m.eval()
        return self._forward(x, a)

    @abstractmethod
    def _forward(self, x: Tensor, arch: Any) -> Tensor: ...

    @property
    def calibrated_path(self) -> str | None:
        """The text of the path whose BN statistics :func:`recalibrate_bn` estimated last."""
        return self._calibrated

    # -- sub-networks -----------------------------------------------------------------------
    @abstractmethod
    def _build_subnet(self, arch: Any) -> nn.Module: ...

    @abstractmethod
    def _prefixes(self, arch: Any, sub: nn.Module) -> dict[str, str]:
        """Sub-network module prefix -> supernet module prefix, where the names differ."""

    def subnet(self, arch: Any) -> nn.Module:
        """The standalone network of ``arch`` built by the space's builder, with the supernet's
        weights and BN statistics copied in (eval-mode logits equal ``self(x, arch)``). BN
        affine parameters the supernet lacks are set to the identity (weight 1, bias 0). With
        ``bn="recalibrate"``, call :func:`recalibrate_bn` for ``arch`` first: the statistics
        copied are then the path's own."""
        a = self.path(arch)
        sub = self._build_subnet(a)
        prefixes = self._prefixes(a, sub)
        ours = self.state_dict()
        state: dict[str, Tensor] = {}
        for key, value in sub.state_dict().items():
            source = key
            for sub_prefix, super_prefix in prefixes.items():
                if key.startswith(sub_prefix):
                    source = super_prefix + key[len(sub_prefix) :]
                    break
            if source in ours and ours[source].shape == value.shape:
                state[key] = ours[source].detach().clone()
                continue
            module_name, _, leaf = key.rpartition(".")
            module = sub.get_submodule(module_name)
            if isinstance(module, _BatchNorm) and leaf in ("weight", "bias") and not self.affine:
                state[key] = torch.ones_like(value) if leaf == "weight" else torch.zeros_like(value)
                continue
            raise RuntimeError(f"{self.space_name} supernet has no weight for sub-network entry {key!r}")
        sub.load_state_dict(state)
        ref = next(self.parameters())
        return sub.to(device=ref.device, dtype=ref.dtype).train(self.training)


# ---------------------------------------------------------------------------------------
# NAS-Bench-201


class NB201MixedCell(nn.Module):
    """A NAS-Bench-201 cell with all 5 operations on each of its 6 edges."""

    def __init__(self, c: int, affine: bool, track: bool) -> None:
        super().__init__()
        self.edges = nn.ModuleList(
            nn.ModuleDict({op: _operation(op, c, affine, track) for op in NB201_OPERATIONS})
            for _ in NB201_EDGES
        )

    def forward(self, x: Tensor, arch: tuple[str, ...]) -> Tensor:
        nodes = [x]
        for target in (1, 2, 3):
            terms = [
                self.edges[i][arch[i]](nodes[source])
                for i, (t, source) in enumerate(NB201_EDGES)
                if t == target
            ]
            nodes.append(sum(terms[1:], terms[0]))
        return nodes[3]


class NB201Supernet(Supernet):
    """The NAS-Bench-201 ``TinyNetwork`` (Dong and Yang, ICLR 2020) with mixed cells: ``N``
    cells per stage at C, 2C, 4C channels; every edge holds all 5 operations."""

    space_name = "nb201"

    def __init__(
        self, num_classes: int = 10, C: int = 16, N: int = 5, affine: bool = False, bn: str = "track"
    ) -> None:
        super().__init__()
        self._configure(num_classes, affine, bn)
        if C < 1 or N < 1:
            raise ConfigError(f"an nb201 supernet needs C >= 1 and N >= 1, got C={C}, N={N}")
        self.C, self.N = C, N
        self.stem = nn.Sequential(nn.Conv2d(3, C, 3, padding=1, bias=False), nn.BatchNorm2d(C))
        layers: list[nn.Module] = []
        c = C
        for stage in range(3):
            if stage > 0:
                layers.append(ResidualReduction(c, 2 * c, self.affine, True))
                c *= 2
            layers.extend(NB201MixedCell(c, self.affine, True) for _ in range(N))
        self.cells = nn.ModuleList(layers)
        self.lastact = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(inplace=True))
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c, num_classes)
        self._finish_init()

    def _forward(self, x: Tensor, arch: tuple[str, ...]) -> Tensor:
        x = self.stem(x)
        for layer in self.cells:
            x = layer(x, arch) if isinstance(layer, NB201MixedCell) else layer(x)
        return self.classifier(self.global_pooling(self.lastact(x)).flatten(1))

    def _build_subnet(self, arch: tuple[str, ...]) -> nn.Module:
        return self.space.build(
            arch, self.num_classes, C=self.C, N=self.N, affine=self.affine, track_running_stats=True
        )

    def _prefixes(self, arch: tuple[str, ...], sub: nn.Module) -> dict[str, str]:
        return {
            f"cells.{k}.edges.{i}.": f"cells.{k}.edges.{i}.{op}."
            for k, layer in enumerate(self.cells)
            if isinstance(layer, NB201MixedCell)
            for i, op in enumerate(arch)
        }


# ---------------------------------------------------------------------------------------
# DARTS (Wsr-NAS's supernet)


def _edge_index(node: int, source: int) -> int:
    """Index of the edge ``source -> node`` among a dense cell's 14 edges (node-major order)."""
    return sum(k + 2 for k in range(node)) + source


def darts_mixed_operation(name: str, c: int, stride: int, affine: bool, pool_bn: bool) -> nn.Module:
    """One operation of a DARTS mixed edge; pooling is followed by BN(affine=False) when ``pool_bn``."""
    op = make_operation(name, c, stride, affine)
    if pool_bn and "pool" in name:
        return nn.Sequential(op, nn.BatchNorm2d(c, affine=False))
    return op


class _DenseCell(Cell):
    """The inputs of a dense supernet cell, as DARTS preprocesses them: ``s0`` by a
    FactorizedReduce after a reduction cell (else ReLU-conv1x1-BN), ``s1`` by ReLU-conv1x1-BN,
    both to ``c`` channels."""

    def __init__(
        self, c_prev_prev: int, c_prev: int, c: int, reduction: bool, reduction_prev: bool, affine: bool
    ) -> None:
        super().__init__()
        self.reduction = reduction
        self.preprocess0 = (
            FactorizedReduce(c_prev_prev, c, affine)
            if reduction_prev
            else StdReLUConvBN(c_prev_prev, c, 1, 1, 0, affine)
        )
        self.preprocess1 = StdReLUConvBN(c_prev, c, 1, 1, 0, affine)


class DartsMixedCell(_DenseCell):
    """A DARTS search cell: 4 nodes, 14 mixed edges of the 8 DARTS operations; a genotype
    picks, on each node, two input edges and their operations (only those run)."""

    multiplier = 4

    def __init__(
        self,
        c_prev_prev: int,
        c_prev: int,
        c: int,
        reduction: bool,
        reduction_prev: bool,
        affine: bool,
        pool_bn: bool,
    ) -> None:
        super().__init__(c_prev_prev, c_prev, c, reduction, reduction_prev, affine)
        self.edges = nn.ModuleList(
            nn.ModuleDict(
                {
                    op: darts_mixed_operation(op, c, 2 if reduction and source < 2 else 1, affine, pool_bn)
                    for op in DARTS_OPERATIONS
                }
            )
            for node in range(4)
            for source in range(node + 2)
        )

    def forward(
        self,
        s0: Tensor,
        s1: Tensor,
        drop_prob: float = 0.0,
        *,
        arch: Genotype | None = None,
        weights: tuple[Tensor, Tensor] | None = None,
    ) -> Tensor:
        if weights is not None:
            return self._forward_argmax(s0, s1, weights[1] if self.reduction else weights[0])
        assert arch is not None
        edges, _ = cell_genes(arch, self.reduction)
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for node in range(4):
            terms = []
            for op, source in edges[2 * node : 2 * node + 2]:
                module = self.edges[_edge_index(node, source)][op]
                h = module(states[source])
                if self.training and drop_prob > 0.0 and not isinstance(module, nn.Identity):
                    h = drop_path(h, drop_prob)
                terms.append(h)
            states.append(terms[0] + terms[1])
        return torch.cat(states[2:], dim=1)

    def _forward_argmax(self, s0: Tensor, s1: Tensor, weights: Tensor) -> Tensor:
        """Wsr-NAS's ``MixedOp``: every edge runs its arg-max operation scaled by its weight
        (``none`` adds nothing); ``weights`` (14, 8) in ``PRIMITIVES`` order."""
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        choice = weights.argmax(dim=-1).tolist()
        stride = 2 if self.reduction else 1
        for node in range(4):
            terms = []
            for source in range(node + 2):
                e = _edge_index(node, source)
                op = DARTS_OPERATIONS[choice[e]]
                if op != "none":
                    terms.append(weights[e, choice[e]] * self.edges[e][op](states[source]))
            if terms:
                states.append(sum(terms[1:], terms[0]))
            else:  # every edge of the node is "none": a zero node of the cell's output size
                states.append(torch.zeros_like(states[1][:, :, ::stride, ::stride]))
        return torch.cat(states[2:], dim=1)


class CellSupernet(Supernet, CellNetwork):
    """A supernet on the cell network of :mod:`robnas.spaces.network` (DARTS and RobNets
    macro networks) with the build options they share: ``layers`` mixed cells
    (:meth:`_cell_factory`) at ``C`` channels, BN ``affine`` or not, the ``bn`` mode of
    :data:`BN_MODES`, the CIFAR stem or the ImageNet stems (``imagenet``)."""

    def __init__(
        self,
        num_classes: int = 10,
        C: int = 16,
        layers: int = 8,
        affine: bool = False,
        bn: str = "track",
        imagenet: bool = False,
    ) -> None:
        super().__init__(
            self._cell_factory(bool(affine)), C, num_classes, layers, "imagenet" if imagenet else "cifar"
        )
        self._configure(num_classes, affine, bn)
        self.imagenet = bool(imagenet)
        self._finish_init()

    @abstractmethod
    def _cell_factory(self, affine: bool) -> CellFactory:
        """What builds the mixed cells (with BN ``affine`` parameters or not)."""

    def forward_features(self, x: Tensor, arch: Any) -> tuple[Tensor, list[Tensor]]:  # type: ignore[override]
        """Logits and CRoZe's features (stem output, every cell's output, pooled) of path ``arch``."""
        feats: list[Tensor] = []
        logits, _ = self._run(x, False, feats, arch=self.path(arch))
        return logits, feats

    def _forward(self, x: Tensor, arch: Any) -> Tensor:
        return self._run(x, False, None, arch=arch)[0]

    def _build_subnet(self, arch: Any) -> nn.Module:
        return self.space.build(arch, self.num_classes, C=self.C, layers=self.layers, imagenet=self.imagenet)


class DartsSupernet(CellSupernet):
    """Wsr-NAS's DARTS supernet (Cheng et al., AAAI 2023; spec B2): ``layers`` mixed cells in
    the DARTS macro network; C=16, 8 cells, 10 classes hold 1,930,618 weights.

    Sampled paths are the space's uniform genotypes (two different inputs per node, one of the
    7 non-``none`` operations on each, as DARTS derives them); a ``none`` edge runs only when a
    given genotype has one."""

    space_name = "darts"

    def __init__(self, *args: Any, pool_bn: bool = True, **options: Any) -> None:
        """:class:`CellSupernet`'s options, and ``pool_bn``: pooling edges followed by BN(affine=False)."""
        self.pool_bn = bool(pool_bn)  # read by the cells, which the network builds
        super().__init__(*args, **options)

    def _cell_factory(self, affine: bool) -> CellFactory:
        pool_bn = self.pool_bn
        return lambda i, c_pp, c_p, c, red, red_prev: DartsMixedCell(
            c_pp, c_p, c, red, red_prev, affine, pool_bn
        )

    def forward_argmax(self, x: Tensor, weights: Tensor) -> Tensor:
        """Logits of Wsr-NAS's faithful single path (``model_search.py``'s ``MixedOp``): on all
        14 edges of every cell the arg-max operation of the edge weights ``weights`` (28, 8:
        normal then reduction edges, e.g. ``softmax((alpha + g) / tau)``), scaled by its weight;
        an edge whose arg-max is ``none`` adds nothing. Not a genotype: no BN recalibration."""
        if weights.shape != (28, len(DARTS_OPERATIONS)):
            raise ConfigError(
                f"arg-max path weights are (28, {len(DARTS_OPERATIONS)}), got {tuple(weights.shape)}"
            )
        w = weights.detach()
        return self._run(x, False, None, weights=(w[:14], w[14:]))[0]

    def _build_subnet(self, arch: Genotype) -> nn.Module:
        sub = super()._build_subnet(arch)
        if self.pool_bn:  # the sub-network keeps the BN its pooling edges were trained with
            for cell, super_cell in zip(sub.cells, self.cells, strict=True):
                edges, _ = cell_genes(arch, cell.reduction)
                for k, (op, source) in enumerate(edges):
                    if "pool" in op:
                        bn = super_cell.edges[_edge_index(k // 2, source)][op][1]
                        cell._ops[k] = nn.Sequential(
                            cell._ops[k], nn.BatchNorm2d(bn.num_features, affine=False)
                        )
        return sub

    def _prefixes(self, arch: Genotype, sub: nn.Module) -> dict[str, str]:
        out: dict[str, str] = {}
        for i, cell in enumerate(self.cells):
            edges, _ = cell_genes(arch, cell.reduction)
            for k, (op, source) in enumerate(edges):
                out[f"cells.{i}._ops.{k}."] = f"cells.{i}.edges.{_edge_index(k // 2, source)}.{op}."
        return out


# ---------------------------------------------------------------------------------------
# RobNets


class RobNetEdge(nn.Module):
    """A dense RobNets edge: a 3x3 separable convolution and an identity (FactorizedReduce at
    stride 2), switched on or off by the 2-bit code (identity bit first)."""

    def __init__(self, c: int, stride: int) -> None:
        super().__init__()
        self.conv = SepConv(c, c, 3, stride, 1, affine=False)
        self.res = nn.Identity() if stride == 1 else FactorizedReduce(c, c, affine=False)

    def forward(self, x: Tensor, code: str) -> Tensor | None:
        """The edge's output for ``code``; ``None`` for ``00`` (nothing runs)."""
        if code == "01":
            return self.conv(x)
        if code == "10":
            return self.res(x)
        if code == "11":
            return self.conv(x) + self.res(x)
        return None


class RobNetMixedCell(_DenseCell):
    """A RobNets supernet cell: 14 dense edges; the cell's code of a path picks the ops."""

    multiplier = STEPS

    def __init__(
        self, index: int, c_prev_prev: int, c_prev: int, c: int, reduction: bool, reduction_prev: bool
    ) -> None:
        super().__init__(c_prev_prev, c_prev, c, reduction, reduction_prev, False)
        self.index = index
        self.edges = nn.ModuleList(
            RobNetEdge(c, 2 if reduction and source < 2 else 1)
            for node in range(STEPS)
            for source in range(node + 2)
        )

    def forward(
        self, s0: Tensor, s1: Tensor, drop_prob: float = 0.0, *, arch: tuple[tuple[str, ...], ...]
    ) -> Tensor:
        code = arch[0] if len(arch) == 1 else arch[self.index]
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        offset = 0
        stride = 2 if self.reduction else 1
        for _ in range(STEPS):
            terms = [
                t
                for j, h in enumerate(states)
                if (t := self.edges[offset + j](h, code[offset + j])) is not None
            ]
            offset += len(states)
            if terms:
                states.append(sum(terms[1:], terms[0]))
            else:  # every edge is "00": a zero node of the cell's output size
                states.append(torch.zeros_like(states[0][:, :, ::stride, ::stride]))
        return torch.cat(states[-self.multiplier :], dim=1)


class RobNetSupernet(CellSupernet):
    """RobNets' dense supernet (Guo et al., CVPR 2020, Sec. 3.2): all alpha = 1, every edge a
    separable convolution plus an identity; paths are 2-bit codes shared by all cells (one
    cell) or cell-free (one per cell). BN has no affine parameters in the cells."""

    space_name = "robnet"

    def _cell_factory(self, affine: bool) -> CellFactory:
        if affine:
            raise ConfigError(
                "RobNets cells have no BN affine parameters: a robnet supernet takes affine=False only"
            )
        return RobNetMixedCell

    def _check(self, arch: tuple[tuple[str, ...], ...]) -> tuple[tuple[str, ...], ...]:
        if len(arch) not in (1, self.layers):
            raise InvalidArchitecture(
                f"a RobNet path has one shared cell code or one per cell ({self.layers}), got {len(arch)} cells"
            )
        return arch

    def sample_path(self, generator: GeneratorLike = None) -> tuple[tuple[str, ...], ...]:
        """A random code (RobNets' path dropout): each of the 2 bits of every edge on or off
        with probability 1/2; one shared cell for ``robnet``, one per cell for ``robnet-free``."""
        g = _seed_from(generator)
        cells = 1 if self.space_name == "robnet" else self.layers
        return sample_codes(g, cells)

    def _prefixes(self, arch: tuple[tuple[str, ...], ...], sub: nn.Module) -> dict[str, str]:
        out: dict[str, str] = {}
        suffix = {"01": "conv.", "10": "res.", "11": ""}
        for i in range(self.layers):
            code = arch[0] if len(arch) == 1 else arch[i]
            for e, bits in enumerate(code):
                if bits in suffix:
                    out[f"cells.{i}._ops.{e}."] = f"cells.{i}.edges.{e}.{suffix[bits]}"
        return out


class RobNetFreeSupernet(RobNetSupernet):
    """The RobNets supernet whose sampled paths are cell-free (one code per cell)."""

    space_name = "robnet-free"


# ---------------------------------------------------------------------------------------
# factory, path statistics


SUPERNETS: Registry[type[Supernet]] = Registry("supernet space")
SUPERNETS.register("nb201", NB201Supernet)
SUPERNETS.register("darts", DartsSupernet)
SUPERNETS.register("robnet", RobNetSupernet)
SUPERNETS.register("robnet-free", RobNetFreeSupernet)


def supernet(space: str, **build_options: Any) -> Supernet:
    """The weight-sharing supernet of ``space`` (``nb201``, ``darts``, ``robnet``,
    ``robnet-free``) with its build options (``num_classes``, ``C``, ``N`` or ``layers``,
    ``affine``, ``bn``, ...); an unknown option raises :class:`ConfigError` naming it."""
    check_build_options(space, build_options)
    return SUPERNETS.get(space)(**build_options)


def _constructor_options(cls: type[Supernet]) -> list[str]:
    """The build options of a supernet class: its constructor's named parameters, and those of
    the constructors it passes ``**options`` on to."""
    names: list[str] = []
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        params = inspect.signature(vars(klass)["__init__"]).parameters.values()
        named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        names += [p.name for p in params if p.kind in named and p.name != "self" and p.name not in names]
        if all(p.kind is not inspect.Parameter.VAR_KEYWORD for p in params):
            break
    return names


def check_build_options(space: str, options: dict[str, Any]) -> None:
    """:class:`ConfigError` naming the options the ``space`` supernet does not take (checked
    before any work starts); an unknown space raises :class:`robnas.errors.UnknownName`."""
    accepted = _constructor_options(SUPERNETS.get(space))
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ConfigError(
            f"the {space} supernet takes no option {', '.join(unknown)} (options: {', '.join(accepted)})"
        )


def recalibrate_bn(
    net: Supernet,
    arch: Any,
    batches: Iterable[Any],
    *,
    transform: Callable[[Tensor], Tensor] | None = None,
) -> int:
    """Re-estimate the BN running statistics of path ``arch`` on ``batches`` (tensors or
    ``(x, y)`` pairs): every BN the path runs is reset on first use and re-estimated as a
    cumulative average (momentum ``None``), without gradients; the BNs of other paths are left
    alone. Use it before scoring a path with inherited weights (SPOS, Guo et al., ECCV 2020).
    ``transform`` is applied to each batch first (e.g. the normalisation the supernet was
    trained behind). Returns the number of batches seen; none raises :class:`ConfigError`."""
    a = net.path(arch)
    norms = _batch_norms(net)
    saved = {m: m.momentum for m in norms}
    seen: set[nn.Module] = set()

    def reset_once(module: nn.Module, _inputs: Any) -> None:
        if module not in seen:
            seen.add(module)
            module.reset_running_stats()
            module.momentum = None

    hooks = [m.register_forward_pre_hook(reset_once) for m in norms]
    was_training = net.training
    count = 0
    try:
        net.train()
        with torch.no_grad():
            for batch in batches:
                x = batch[0] if isinstance(batch, (tuple, list)) else batch
                x = x.to(next(net.parameters()).device)
                net(transform(x) if transform is not None else x, a)
                count += 1
    finally:
        for hook in hooks:
            hook.remove()
        for m, momentum in saved.items():
            m.momentum = momentum
        net.train(was_training)
    if count == 0:
        raise ConfigError("recalibrate_bn needs at least one batch")
    net._calibrated = net.space.format(a)
    return count


__all__ = [
    "BN_MODES",
    "SUPERNETS",
    "CellSupernet",
    "DartsMixedCell",
    "DartsSupernet",
    "NB201MixedCell",
    "NB201Supernet",
    "RobNetEdge",
    "RobNetFreeSupernet",
    "RobNetMixedCell",
    "RobNetSupernet",
    "Supernet",
    "check_build_options",
    "darts_mixed_operation",
    "recalibrate_bn",
    "supernet",
]
