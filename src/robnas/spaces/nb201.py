"""NAS-Bench-201 (Dong and Yang, ICLR 2020): a 4-node cell with 6 edges and 5 operations.

An architecture is a tuple of 6 operation names in the order of the official string
``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``: edges 0->1, 0->2, 1->2, 0->3, 1->3, 2->3.
The network follows the official NAS-Bench-201 ``TinyNetwork``: a 3x3 stem, three stages of
``N`` cells at ``C``, ``2C``, ``4C`` channels joined by residual reduction blocks, BN + ReLU,
global average pooling and a linear classifier, so parameter counts equal the benchmark's.
"""

from __future__ import annotations

import inspect
import itertools
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from torch import Tensor, nn

from robnas.errors import InvalidArchitecture
from robnas.spaces.base import Choice, Choices, RandomLike, SearchSpace, as_rng
from robnas.spaces.ops import ReLUConvBN, Zero

OPERATIONS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
#: (target node, source node) of each of the 6 edges, in string order.
EDGES: tuple[tuple[int, int], ...] = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
NUM_EDGES = len(EDGES)

NB201Arch = tuple[str, ...]


def _operation(name: str, c: int, affine: bool, track: bool) -> nn.Module:
    if name == "none":
        return Zero()
    if name == "skip_connect":
        return nn.Identity()
    if name == "nor_conv_1x1":
        return ReLUConvBN(c, c, 1, 1, 0, 1, affine, track)
    if name == "nor_conv_3x3":
        return ReLUConvBN(c, c, 3, 1, 1, 1, affine, track)
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    raise InvalidArchitecture(f"unknown NAS-Bench-201 operation {name!r}; expected one of {OPERATIONS}")


class NB201Cell(nn.Module):
    """One NAS-Bench-201 cell; only the 6 chosen operations are instantiated."""

    def __init__(self, arch: NB201Arch, c: int, affine: bool = True, track: bool = True) -> None:
        super().__init__()
        self.arch = arch
        self.edges = nn.ModuleList(_operation(op, c, affine, track) for op in arch)

    def forward(self, x: Tensor) -> Tensor:
        nodes = [x]
        for target in (1, 2, 3):
            terms = [self.edges[i](nodes[source]) for i, (t, source) in enumerate(EDGES) if t == target]
            nodes.append(sum(terms[1:], terms[0]))
        return nodes[3]


class ResidualReduction(nn.Module):
    """The NAS-Bench-201 ``ResNetBasicblock`` with stride 2 between stages.

    ``robnas_keep_bn`` marks BN layers that the reference zero-cost code keeps even in its
    "no BN" network copies (CRoZe, synflow); see :mod:`robnas.proxies.base`.
    """

    robnas_keep_bn = True

    def __init__(self, c_in: int, c_out: int, affine: bool = True, track: bool = True) -> None:
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, 2, 1, 1, affine, track)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, 1, 1, 1, affine, track)
        self.downsample = nn.Sequential(
            nn.AvgPool2d(kernel_size=2, stride=2, padding=0), nn.Conv2d(c_in, c_out, 1, bias=False)
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.downsample(x) + self.conv_b(self.conv_a(x))

    def restart_branch(self) -> tuple[nn.Module, nn.Module]:
        """The branch whose first BN restarts the activations' scale: its first and last module
        (:class:`robnas.proxies.croze.BlockScaling`). The rest of the block (``downsample``) is
        positively homogeneous and is added to the branch's output."""
        return self.conv_a, self.conv_b


class NB201Network(nn.Module):
    """The NAS-Bench-201 ``TinyNetwork``; input (B, 3, H, W), normalised images; output logits."""

    def __init__(
        self,
        arch: NB201Arch,
        num_classes: int = 10,
        C: int = 16,
        N: int = 5,
        affine: bool = True,
        track_running_stats: bool = True,
    ) -> None:
        super().__init__()
        self.arch = arch
        self.cells_per_stage = N
        self.stem = nn.Sequential(nn.Conv2d(3, C, 3, padding=1, bias=False), nn.BatchNorm2d(C))
        layers: list[nn.Module] = []
        c = C
        for stage in range(3):
            if stage > 0:
                layers.append(ResidualReduction(c, 2 * c, affine, track_running_stats))
                c *= 2
            layers.extend(NB201Cell(arch, c, affine, track_running_stats) for _ in range(N))
        self.cells = nn.ModuleList(layers)
        self.lastact = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(inplace=True))
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.stem(x)
        for layer in self.cells:
            x = layer(x)
        x = self.global_pooling(self.lastact(x)).flatten(1)
        return self.classifier(x)

    def forward_features(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        """Logits and the stage-level features of the CRoZe reference.

        Z0 stem output, Z1 / Z2 outputs of the two reduction blocks, Z3 output of the last
        stage before ``lastact``, Z4 the pooled feature (B, 4C).
        """
        x = self.stem(x)
        feats = [x]
        for layer in self.cells:
            x = layer(x)
            if isinstance(layer, ResidualReduction):
                feats.append(x)
        feats.append(x)
        pooled = self.global_pooling(self.lastact(x)).flatten(1)
        feats.append(pooled)
        return self.classifier(pooled), feats

    def rescale_blocks(self) -> list[nn.Module]:
        """The cells, reduction blocks and classifier, in the order the input meets them.

        Between them run only positively homogeneous operations (``lastact``'s ReLU, pooling;
        its BN too once removed), so CRoZe's float32 path may rescale activations where they
        enter each (:class:`robnas.proxies.croze.BlockScaling`).
        """
        return [*self.cells, self.classifier]

    def layer_feature_indices(self) -> list[tuple[nn.Module, int]]:
        """CRoZe's layer -> feature map: ``cells_met // N``, plus one for the classifier.

        Cells are counted in ``modules()`` pre-order, so the last cell of a stage is paired
        with the next stage's feature, a quirk of the reference kept on purpose.
        """
        out: list[tuple[nn.Module, int]] = []
        cells_met = 0
        for module in self.modules():
            if isinstance(module, NB201Cell):
                cells_met += 1
            elif isinstance(module, nn.Conv2d):
                out.append((module, cells_met // self.cells_per_stage))
            elif isinstance(module, nn.Linear):
                out.append((module, cells_met // self.cells_per_stage + 1))
        return out


def _unique_string(arch: NB201Arch) -> str:
    """NAS-Bench-201's isomorphism key: zero terms, identity skips, unordered sums."""
    nodes = ["x"]
    for target in (1, 2, 3):
        terms = []
        for (t, source), op in zip(EDGES, arch, strict=True):
            if t != target:
                continue
            if op == "none" or nodes[source] == "#":
                terms.append("#")
            elif op == "skip_connect":
                terms.append(nodes[source])
            else:
                terms.append(f"({nodes[source]})@{op}")
        nodes.append("+".join(sorted(terms)))
    return nodes[3]


@lru_cache(maxsize=1)
def _canonical_table() -> dict[str, NB201Arch]:
    table: dict[str, NB201Arch] = {}
    for arch in itertools.product(OPERATIONS, repeat=NUM_EDGES):
        table.setdefault(_unique_string(arch), arch)
    return table


class NB201Space(SearchSpace[NB201Arch]):
    """The NAS-Bench-201 cell space: 5**6 = 15,625 architectures, 6,466 up to isomorphism."""

    name = "nb201"
    operations = OPERATIONS

    def parse(self, text: str) -> NB201Arch:
        if not isinstance(text, str):
            raise InvalidArchitecture(f"expected a NAS-Bench-201 string, got {type(text).__name__}")
        s = text.strip()
        if not (s.startswith("|") and s.endswith("|")):
            raise InvalidArchitecture(
                f"NAS-Bench-201 string must start and end with '|': {text!r} "
                "(expected |op~0|+|op~0|op~1|+|op~0|op~1|op~2|)"
            )
        nodes = s.split("+")
        if len(nodes) != 3:
            raise InvalidArchitecture(
                f"NAS-Bench-201 string needs 3 nodes separated by '+', got {len(nodes)}: {text!r}"
            )
        ops: list[str] = []
        for node, part in enumerate(nodes, start=1):
            entries = [e for e in part.split("|") if e]
            if len(entries) != node:
                raise InvalidArchitecture(
                    f"node {node} needs {node} incoming edges, got {len(entries)}: {part!r}"
                )
            for source, entry in enumerate(entries):
                op, sep, src = entry.partition("~")
                if not sep or src != str(source):
                    raise InvalidArchitecture(f"edge {entry!r} of node {node} should read 'op~{source}'")
                ops.append(op)
        return self.validate(tuple(ops))

    def format(self, arch: NB201Arch) -> str:
        arch = self.validate(arch)
        a = arch
        return f"|{a[0]}~0|+|{a[1]}~0|{a[2]}~1|+|{a[3]}~0|{a[4]}~1|{a[5]}~2|"

    def validate(self, arch: NB201Arch) -> NB201Arch:
        if isinstance(arch, str):
            raise InvalidArchitecture("expected a tuple of operations; use parse() for strings")
        try:
            arch = tuple(arch)
        except TypeError:
            raise InvalidArchitecture(
                f"a NAS-Bench-201 architecture is a tuple of operations, got {arch!r}"
            ) from None
        if len(arch) != NUM_EDGES:
            raise InvalidArchitecture(
                f"NAS-Bench-201 architecture needs {NUM_EDGES} operations, got {len(arch)}"
            )
        for op in arch:
            if op not in OPERATIONS:
                raise InvalidArchitecture(
                    f"unknown NAS-Bench-201 operation {op!r}; expected one of {OPERATIONS}"
                )
        return arch

    def canonical(self, arch: NB201Arch) -> NB201Arch:
        """The first architecture (in enumeration order) with the same NAS-Bench-201 unique string."""
        return _canonical_table()[_unique_string(self.validate(arch))]

    def isomorphism_key(self, arch: NB201Arch) -> str:
        """The NAS-Bench-201 unique string of ``arch`` (equal for isomorphic cells)."""
        return _unique_string(self.validate(arch))

    def all(self) -> list[NB201Arch]:
        """Every architecture of the space (15,625)."""
        return [tuple(a) for a in itertools.product(OPERATIONS, repeat=NUM_EDGES)]

    def sample(self, rng: RandomLike = None) -> NB201Arch:
        g = as_rng(rng)
        return tuple(OPERATIONS[i] for i in g.integers(0, len(OPERATIONS), NUM_EDGES))

    def mutate(self, arch: NB201Arch, rng: RandomLike = None) -> NB201Arch:
        """Replace the operation of one random edge by a different one."""
        arch = self.validate(arch)
        g = as_rng(rng)
        edge = int(g.integers(NUM_EDGES))
        choices = [op for op in OPERATIONS if op != arch[edge]]
        new = list(arch)
        new[edge] = choices[int(g.integers(len(choices)))]
        return tuple(new)

    def categorical_choices(self) -> Choices:
        """``edge0..edge5`` (string order), each over the 5 operations.

        >>> NB201Space().categorical_choices()[0]
        ('edge0', ('none', 'skip_connect', 'nor_conv_1x1', 'nor_conv_3x3', 'avg_pool_3x3'))
        """
        return [(f"edge{i}", OPERATIONS) for i in range(NUM_EDGES)]

    def from_choices(self, choices: Mapping[str, Any]) -> NB201Arch:
        c = self.check_choices(choices)
        return tuple(str(c[f"edge{i}"]) for i in range(NUM_EDGES))

    def to_choices(self, arch: NB201Arch) -> dict[str, Choice]:
        return {f"edge{i}": op for i, op in enumerate(self.validate(arch))}

    def build(self, arch: NB201Arch | str, num_classes: int = 10, **options: Any) -> NB201Network:
        """The NAS-Bench-201 ``TinyNetwork``; ``options`` are :class:`NB201Network`'s (``C``
        channels, ``N`` cells per stage, BN ``affine``, ``track_running_stats``)."""
        self.reject_build_options({k: v for k, v in options.items() if k not in self.build_options()})
        if isinstance(arch, str):
            arch = self.parse(arch)
        return NB201Network(self.validate(arch), num_classes, **options)

    def build_options(self) -> tuple[str, ...]:
        """The options of :class:`NB201Network` after ``arch`` and ``num_classes``."""
        return tuple(inspect.signature(NB201Network).parameters)[2:]


__all__ = ["EDGES", "OPERATIONS", "NB201Arch", "NB201Network", "NB201Space"]
