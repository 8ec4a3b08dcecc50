"""The DARTS space, CRoZe's DARTS variant and their networks."""

from __future__ import annotations

import copy
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

import robnas.proxies
from robnas import spaces
from robnas.errors import InvalidArchitecture
from robnas.spaces.base import FeatureNetwork
from robnas.spaces.darts import (
    CROZE_INPUTS,
    CrozeDartsSpace,
    DartsSpace,
    Genotype,
    count_parameters,
    format_genotype,
    parse_genotype,
)
from robnas.spaces.ops import FactorizedReduce

DARTS_V2 = (
    "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), "
    "('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], "
    "normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), "
    "('max_pool_3x3', 1), ('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), "
    "('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])"
)

SPACE_NAMES = ["darts", "darts-croze"]


def test_registered() -> None:
    assert isinstance(spaces.get("darts"), DartsSpace)
    assert isinstance(spaces.get("darts-croze"), CrozeDartsSpace)


def test_darts_text_matches_the_darts_repository_print() -> None:
    space = DartsSpace()
    arch = space.parse(DARTS_V2)
    text = space.format(arch)
    assert text.startswith("Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ")
    assert "normal_concat=range(2, 6), reduce=[('max_pool_3x3', 0)" in text
    assert text.endswith("('max_pool_3x3', 1)], reduce_concat=range(2, 6))")
    # range(2, 6) and [2, 3, 4, 5] are the same architecture
    assert space.parse(text) == arch
    assert space.parse(DARTS_V2.replace("[2, 3, 4, 5]", "range(2, 6)")) == arch


def test_positional_and_dict_forms() -> None:
    arch = parse_genotype(DARTS_V2)
    positional = f"Genotype({list(arch.normal)}, [2, 3, 4, 5], {list(arch.reduce)}, range(2, 6))"
    assert parse_genotype(positional) == arch
    as_dict = (
        f"{{'normal': {list(arch.normal)}, 'normal_concat': range(2, 6), "
        f"'reduction': {list(arch.reduce)}, 'reduction_concat': range(2, 6)}}"
    )
    assert parse_genotype(as_dict) == arch


@pytest.mark.parametrize("name", SPACE_NAMES)
def test_roundtrip_of_samples(name: str) -> None:
    space = spaces.get(name)
    for seed in range(25):
        arch = space.sample(seed)
        assert space.validate(arch) == arch
        assert space.parse(space.format(arch)) == arch
        assert space.canonical_string(space.format(arch)) == space.format(arch)
    assert space.sample(3) == space.sample(3)


def test_croze_samples_have_the_reference_structure() -> None:
    space = CrozeDartsSpace()
    for seed in range(30):
        g = space.sample(seed)
        for edges in (g.normal, g.reduce):
            assert tuple(i for _, i in edges) == CROZE_INPUTS
            assert all(op != "none" for op, _ in edges)
        assert len(g.normal_concat) == len(g.reduce_concat)
        assert 1 <= len(g.normal_concat) <= 4
        assert all(2 <= c <= 5 for c in g.normal_concat + g.reduce_concat)


def test_standard_samples_have_two_different_inputs() -> None:
    space = DartsSpace()
    for seed in range(30):
        g = space.sample(seed)
        for edges in (g.normal, g.reduce):
            for step in range(4):
                a, b = edges[2 * step], edges[2 * step + 1]
                assert a[1] != b[1] and max(a[1], b[1]) < step + 2
        assert g.normal_concat == g.reduce_concat == (2, 3, 4, 5)


BAD_TEXTS = [
    ("Genotype(normal=[('sep_conv_3x3', 0)", "not valid syntax"),
    ("hello", "expected 'Genotype("),
    ("__import__('os').system('true')", "expected 'Genotype("),
    (DARTS_V2.replace("'dil_conv_3x3'", "'conv_9x9'"), "unknown darts operation 'conv_9x9'"),
    (DARTS_V2.replace("('dil_conv_3x3', 2)", "('dil_conv_3x3', 7)"), "must read a state in 0..4"),
    (
        DARTS_V2.replace(
            "('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1)",
            "('sep_conv_3x3', 0), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1)",
            1,
        ),
        "takes state 0 twice",
    ),
    (DARTS_V2.replace("normal_concat=[2, 3, 4, 5]", "normal_concat=[2, 3]"), "must be range(2, 6)"),
    (DARTS_V2.replace(", reduce_concat=[2, 3, 4, 5]", ""), "lacks reduce_concat"),
    (DARTS_V2.replace("normal=", "normals="), "unknown Genotype field 'normals'"),
    (
        DARTS_V2.replace("('skip_connect', 0), ('dil_conv_3x3', 2)", "('dil_conv_3x3', 2)"),
        "needs 8 (op, input) pairs",
    ),
    (DARTS_V2.replace("('dil_conv_3x3', 2)", "('dil_conv_3x3', '2')"), "('op', input) pairs"),
]


@pytest.mark.parametrize(("text", "message"), BAD_TEXTS)
def test_invalid_standard_genotypes(text: str, message: str) -> None:
    with pytest.raises(InvalidArchitecture, match=re.escape(message)):
        DartsSpace().parse(text)


def test_invalid_croze_genotypes() -> None:
    space = CrozeDartsSpace()
    good = space.sample(1)
    with pytest.raises(InvalidArchitecture, match="needs 14"):
        space.validate(good._replace(normal=good.normal[:8]))
    with pytest.raises(InvalidArchitecture, match="must read state 1"):
        space.validate(good._replace(normal=(good.normal[0], (good.normal[1][0], 0), *good.normal[2:])))
    with pytest.raises(InvalidArchitecture, match="1-4 states from 2..5"):
        space.validate(good._replace(reduce_concat=(2, 3, 4, 5, 5)))
    with pytest.raises(InvalidArchitecture, match="1-4 states from 2..5"):
        space.validate(good._replace(normal_concat=(6,)))
    with pytest.raises(InvalidArchitecture, match="use parse"):
        space.validate("Genotype()")
    # a standard genotype is not a member of the CRoZe variant, and the reverse
    with pytest.raises(InvalidArchitecture):
        space.parse(DARTS_V2)
    with pytest.raises(InvalidArchitecture):
        DartsSpace().validate(good)


@pytest.mark.parametrize("name", SPACE_NAMES)
def test_mutation_is_the_documented_edit_and_leaves_the_parent_alone(name: str) -> None:
    space = spaces.get(name)
    concat_changes = 0
    for seed in range(30):
        parent = space.sample(seed)
        before = copy.deepcopy(parent)
        child = space.mutate(parent, seed + 100)
        assert parent == before
        assert space.validate(child) == child
        for old, new in ((parent.normal, child.normal), (parent.reduce, child.reduce)):
            changed = [k for k in range(len(old)) if old[k] != new[k]]
            assert len(changed) == 1
            k = changed[0]
            assert new[k][1] == old[k][1]  # inputs never change
            assert new[k][0] not in ("none", old[k][0])
        concats = (parent.normal_concat != child.normal_concat) + (
            parent.reduce_concat != child.reduce_concat
        )
        assert concats <= 1
        concat_changes += concats
    if name == "darts":
        assert concat_changes == 0
    else:
        assert concat_changes > 0  # select_step 1 or 2 redraws a concat


@pytest.mark.parametrize("name", SPACE_NAMES)
def test_budget_filter(name: str) -> None:
    space = spaces.get(name)
    arch = space.sample(5)
    size = space.parameters_m(arch)
    assert space.within_budget(arch, size + 1e-3)
    assert not space.within_budget(arch, size - 1e-3)
    budget = 4.0 if name == "darts" else 8.0
    small = space.sample(7, max_params_m=budget)
    assert space.parameters_m(small) <= budget
    child = space.mutate(small, 8, max_params_m=budget)
    assert space.parameters_m(child) <= budget


def test_budget_counts_the_c36_20_cell_network_without_auxiliary_head() -> None:
    space = DartsSpace()
    arch = space.parse(DARTS_V2)
    net = space.build(arch, auxiliary=True)
    assert count_parameters(net) / 1e6 == pytest.approx(space.parameters_m(arch))
    assert count_parameters(net, exclude_auxiliary=False) > count_parameters(net)
    assert space.parameters_m(arch) == pytest.approx(3.349, abs=0.002)


def _check_feature_network(net: nn.Module, x: torch.Tensor, layers: int) -> None:
    assert isinstance(net, FeatureNetwork)
    logits, feats = net.forward_features(x)
    assert logits.shape == (x.shape[0], 10)
    assert len(feats) == layers + 2
    assert feats[-1].shape[2:] == (1, 1)
    assert torch.allclose(logits, net(x))
    pairs = net.layer_feature_indices()
    aux = set(net.auxiliary_head.modules()) if net.auxiliary_head is not None else set()
    expected = [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear)) and m not in aux]
    assert [m for m, _ in pairs] == expected
    assert pairs[0][1] == 0 and pairs[-1] == (net.classifier, layers + 1)
    # a cell's own convolutions are paired with that cell's output
    for k, cell in enumerate(net.cells, start=1):
        cell_convs = {id(m) for m in cell.modules() if isinstance(m, nn.Conv2d)}
        assert {i for m, i in pairs if id(m) in cell_convs} == {k}
        if k < layers:  # the feature is what the next cell reads as its input s1
            assert feats[k].shape[1] == net.cells[k].preprocess1[1].in_channels


@pytest.mark.parametrize("name", SPACE_NAMES)
def test_tiny_network_forward_backward(name: str) -> None:
    space = spaces.get(name)
    torch.manual_seed(0)
    net = space.build(space.sample(2), C=8, layers=5, auxiliary=True, drop_path_prob=0.2)
    x = torch.randn(2, 3, 32, 32)
    net.train()
    logits, aux = net.forward_with_aux(x)
    assert logits.shape == aux.shape == (2, 10)
    assert isinstance(net(x), torch.Tensor)
    (logits.sum() + 0.4 * aux.sum()).backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())
    net.eval()
    _check_feature_network(net, x, 5)


def test_imagenet_network() -> None:
    space = DartsSpace()
    net = space.build(DARTS_V2, num_classes=10, C=8, layers=5, imagenet=True)
    x = torch.randn(1, 3, 64, 64)
    net(x).sum().backward()
    net.eval()
    _check_feature_network(net, x, 5)
    # the reference's NetworkImageNet head: 3 stem convolutions, cells start as after a reduction
    assert hasattr(net, "stem0") and hasattr(net, "stem1")
    assert type(net.cells[0].preprocess0).__name__ == "FactorizedReduce"
    with_aux = space.build(DARTS_V2, C=8, layers=5, imagenet=True, auxiliary=True)
    assert with_aux.forward_with_aux(torch.randn(1, 3, 224, 224))[1].shape == (1, 10)


def test_croze_steps_beyond_concat_get_no_gradient() -> None:
    """CRoZe's 14 pairs make 7 steps; steps 4-6 are never concatenated, so they get no gradient."""
    space = CrozeDartsSpace()
    arch = space.sample(0)._replace(normal_concat=(2, 3), reduce_concat=(2, 3))
    net = space.build(arch, C=8, layers=3)
    assert net.cells[0].steps == 7
    net(torch.randn(2, 3, 32, 32)).sum().backward()
    unused = [p for k in range(8, 14) for p in net.cells[0]._ops[k].parameters()]
    assert unused and all(p.grad is None for p in unused)


def test_format_genotype_concat_forms() -> None:
    g = Genotype(
        (("skip_connect", 0), ("skip_connect", 1)), (2,), (("skip_connect", 0), ("skip_connect", 1)), (2, 2)
    )
    text = format_genotype(g)
    assert "normal_concat=[2]" in text and "reduce_concat=[2, 2]" in text
    assert parse_genotype(text) == g


@pytest.mark.parametrize("name", SPACE_NAMES)
def test_every_registered_proxy_scores_a_tiny_network(name: str) -> None:
    space = spaces.get(name)
    torch.manual_seed(0)
    net = space.build(space.sample(4), C=8, layers=5)
    x, y = torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,))
    names = robnas.proxies.names()
    assert names, "no proxy is registered"
    for proxy in names:
        result = robnas.proxies.run(proxy, net, x, y)
        assert result.error == "" and math.isfinite(result.value), (proxy, result.error)


@pytest.mark.parametrize("size", [16, 6])
def test_factorized_reduce_is_the_two_stride_2_convs(size: int) -> None:
    """The subsampled stride-1 form computes the DARTS operation: stride-2 1x1 convs of the
    input and of the input shifted by one pixel, concatenated."""
    fr = FactorizedReduce(4, 6).eval()
    x = torch.randn(2, 4, size, size)
    a = torch.nn.functional.conv2d(x.relu(), fr.conv_1.weight, stride=2)
    b = torch.nn.functional.conv2d(x.relu()[:, :, 1:, 1:], fr.conv_2.weight, stride=2)
    torch.testing.assert_close(fr(x), fr.bn(torch.cat([a, b], dim=1)))


MALLOC_DEBUG = Path("/usr/lib/x86_64-linux-gnu/libc_malloc_debug.so.0")


@pytest.mark.skipif(not MALLOC_DEBUG.is_file(), reason="glibc's malloc debug library is not installed")
def test_factorized_reduce_backward_keeps_the_heap_intact_on_few_channels() -> None:
    """torch's oneDNN backward of a stride-2 1x1 conv on a channels_last input with under 8
    channels writes past its buffers (a DARTS supernet at C=2 crashed); glibc's checking
    allocator turns any such write into an abort."""
    code = (
        "import torch\n"
        "from robnas.spaces.ops import FactorizedReduce\n"
        "for c_in in (2, 4, 5):\n"
        "    fr = FactorizedReduce(c_in, 2)\n"
        "    for _ in range(20):\n"
        "        x = torch.randn(8, c_in, 16, 16).contiguous(memory_format=torch.channels_last)\n"
        "        fr(x.requires_grad_()).square().sum().backward()\n"
    )
    env = {**os.environ, "LD_PRELOAD": str(MALLOC_DEBUG), "MALLOC_CHECK_": "3", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
