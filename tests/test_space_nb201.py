import csv
import json

import numpy as np
import pytest
import torch

import robnas
from robnas.errors import ConfigError, InvalidArchitecture
from robnas.spaces.nb201 import OPERATIONS
from robnas.spaces.network import count_parameters

SPACE = robnas.spaces.get("nb201")
ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"


def test_parse_format_roundtrip():
    arch = SPACE.parse(ARCH)
    assert arch == (
        "nor_conv_3x3",
        "nor_conv_3x3",
        "avg_pool_3x3",
        "skip_connect",
        "nor_conv_3x3",
        "skip_connect",
    )
    assert SPACE.format(arch) == ARCH
    for seed in range(20):
        a = SPACE.sample(seed)
        assert SPACE.parse(SPACE.format(a)) == a


@pytest.mark.parametrize(
    "text, message",
    [
        ("nor_conv_3x3~0|+|", "start and end"),
        ("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|", "3 nodes"),
        (
            "|nor_conv_3x3~0|+|nor_conv_3x3~0|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|",
            "node 2 needs 2",
        ),
        (
            "|conv_5x5~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|",
            "conv_5x5",
        ),
        (
            "|nor_conv_3x3~1|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|",
            "op~0",
        ),
    ],
)
def test_invalid_strings_name_the_problem(text, message):
    with pytest.raises(InvalidArchitecture, match=message):
        SPACE.parse(text)


def test_validate_rejects_wrong_length_and_ops():
    with pytest.raises(InvalidArchitecture, match="6 operations"):
        SPACE.validate(("none",) * 5)
    with pytest.raises(InvalidArchitecture, match="unknown"):
        SPACE.validate(("none",) * 5 + ("conv",))


def test_mutate_changes_exactly_one_edge_and_keeps_parent():
    rng = np.random.default_rng(0)
    for _ in range(50):
        parent = SPACE.sample(rng)
        before = tuple(parent)
        child = SPACE.mutate(parent, rng)
        assert parent == before
        assert sum(a != b for a, b in zip(parent, child, strict=True)) == 1
        assert all(op in OPERATIONS for op in child)


def test_canonical_counts_6466_classes_and_is_idempotent():
    classes = {SPACE.canonical(a) for a in SPACE.all()}
    assert len(classes) == 6466
    for a in list(classes)[:100]:
        assert SPACE.canonical(a) == a


def test_canonical_known_isomorphisms():
    # a none edge and a skip from an all-zero node are both zero terms; sums are unordered
    a = SPACE.parse("|none~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|avg_pool_3x3~1|nor_conv_1x1~2|")
    b = SPACE.parse("|none~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|none~1|nor_conv_1x1~2|")
    assert SPACE.canonical(a) == SPACE.canonical(b)
    c = SPACE.parse("|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|none~0|none~1|skip_connect~2|")
    d = SPACE.parse("|nor_conv_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|none~0|none~1|skip_connect~2|")
    assert SPACE.canonical(c) != SPACE.canonical(d)


def test_build_forward_backward_and_features():
    net = SPACE.build(ARCH, num_classes=10, C=4, N=1)
    x = torch.randn(2, 3, 32, 32)
    logits, feats = net.forward_features(x)
    assert logits.shape == (2, 10)
    assert [tuple(f.shape[1:]) for f in feats] == [(4, 32, 32), (8, 16, 16), (16, 8, 8), (16, 8, 8), (16,)]
    torch.testing.assert_close(net(x), logits)
    logits.sum().backward()
    assert all(p.grad is not None for p in net.classifier.parameters())


def test_unknown_build_options_are_a_config_error_naming_the_accepted_ones():
    with pytest.raises(ConfigError, match=r"unknown nb201 build options: layers \(accepted: C, N, affine, track"):
        SPACE.build(ARCH, layers=8)
    net = SPACE.build(ARCH, C=4, N=1, affine=False, track_running_stats=False)
    bns = [m for m in net.cells[0].modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and not any(bn.affine or bn.track_running_stats for bn in bns)


def test_train_arch_options_reach_the_space_as_one_config_error():
    # robnas train --arch nb201:ARCH --arch-opt layers=8 builds through robnas.models.build_model
    from robnas.models import build_model

    with pytest.raises(ConfigError, match="unknown nb201 build options: layers"):
        build_model("nb201:" + ARCH, layers=8)


def test_parameter_count_of_a_known_arch():
    # NAS-Bench-201 index 1 has 0.802426 M parameters
    assert count_parameters(SPACE.build(ARCH)) == 802426


def test_params_match_benchmark(shared_data):
    rows = list(csv.DictReader(open(shared_data / "nb201" / "nb201_merged_by_index.csv")))
    rng = np.random.default_rng(0)
    picked = rng.choice(len(rows), 150, replace=False)
    ok = sum(
        abs(count_parameters(SPACE.build(rows[i]["arch_str"])) / 1e6 - float(rows[i]["params_M"])) < 1e-6
        for i in picked
    )
    assert ok >= 0.98 * len(picked)


def test_canonical_agrees_with_robustness_isomorphs(shared_data):
    ids = json.loads((shared_data / "robustness" / "meta.json").read_text())["ids"]
    ours: dict = {}
    theirs: dict = {}
    for i, v in ids.items():
        ours.setdefault(SPACE.canonical(SPACE.parse(v["nb201-string"])), set()).add(i)
        theirs.setdefault(v["isomorph"], set()).add(i)
    mine = {i: frozenset(g) for g in ours.values() for i in g}
    ref = {i: frozenset(g) for g in theirs.values() for i in g}
    agree = sum(mine[i] == ref[i] for i in ids) / len(ids)
    assert agree >= 0.999
