"""The Tiny-RobustBench reader (Feng et al., ICLR 2025): real files and a tiny file of the same format."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import robnas.benchmarks as benchmarks
from robnas.errors import DataError, UnknownName
from robnas.spaces import get as get_space
from robnas.spaces.network import count_parameters

NORMAL = [
    ["sep_conv_3x3", 0],
    ["skip_connect", 1],
    ["max_pool_3x3", 2],
    ["dil_conv_3x3", 0],
    ["sep_conv_5x5", 1],
    ["avg_pool_3x3", 3],
    ["dil_conv_5x5", 4],
    ["skip_connect", 0],
]
REDUCE = [
    ["max_pool_3x3", 0],
    ["sep_conv_3x3", 1],
    ["avg_pool_3x3", 2],
    ["skip_connect", 1],
    ["sep_conv_5x5", 0],
    ["dil_conv_3x3", 3],
    ["max_pool_3x3", 2],
    ["sep_conv_3x3", 4],
]


def entry(normal=NORMAL, clean=75.4, adv=41.99, width=4, depth=5, seed=0, aux=False) -> dict:
    return {
        "seed": seed,
        "net": {
            "aux": aux,
            "depth": depth,
            "drop_prob": 0.0,
            "genotype": {
                "normal": normal,
                "normal_concat": [2, 3, 4, 5],
                "reduce": REDUCE,
                "reduce_concate": [2, 3, 4, 5],
            },
            "width": width,
        },
        "optim": {"total_epochs": 105},
        "cutout": False,
        "adversarial_param": {"adv_loss": "pgd", "epsilon": 8 / 255, "num_steps": 7, "step_size": 0.01},
        "max_test_top1_original": clean,
        "max_test_top1_adv": adv,
        "train_ep_top1_adv": [20.0, 25.0],
    }


def write(path: Path, entries: list[dict]) -> Path:
    path.write_text(json.dumps(entries))
    return path


def swapped(edges, k=0, op="sep_conv_5x5"):
    out = [list(e) for e in edges]
    out[k][0] = op
    return out


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    write(tmp_path / "robust_bench_seed_0_1000.json", [entry(), entry(swapped(NORMAL), 70.0, 40.0, seed=1)])
    write(tmp_path / "robust_bench_seed_1000_2000.json", [entry(swapped(NORMAL, 1), 72.5, 38.5, seed=1000)])
    return tmp_path


def test_tiny_file_targets_as_fractions(folder: Path) -> None:
    bench = benchmarks.open("tiny-robustbench", folder)
    assert len(bench) == 3 and bench.space == "darts" and bench.datasets() == ["cifar10"]
    assert bench.target_names("cifar10") == ["clean", "pgd@8"]
    np.testing.assert_allclose(bench.target_values("cifar10", "pgd@8"), [0.4199, 0.40, 0.385])
    np.testing.assert_allclose(bench.target_values("cifar10", "clean"), [0.754, 0.70, 0.725])
    assert bench.canonical_target("pgd@8.0") == "pgd@8"
    with pytest.raises(UnknownName, match="no target 'fgsm@8'"):
        bench.target_values("cifar10", "fgsm@8")
    with pytest.raises(UnknownName, match="one dataset"):
        bench.target_values("cifar100", "clean")
    np.testing.assert_array_equal(bench.weights(), [1.0, 1.0, 1.0])


def test_rows_accept_any_spelling_of_a_genotype(folder: Path) -> None:
    bench = benchmarks.open("tiny-robustbench", folder)
    space = get_space("darts")
    g = bench.entries[2].genotype
    loose = space.format(g).replace("normal_concat=range(2, 6)", "normal_concat=[2, 3, 4, 5]")
    assert list(bench.rows([loose, g, 0])) == [2, 2, 0]
    assert bench.target(loose, "pgd@8") == pytest.approx(0.385)
    other = space.format(g).replace("'sep_conv_5x5', 1)", "'sep_conv_3x3', 1)", 1)
    with pytest.raises(DataError, match="not listed"):
        bench.rows([other])


def test_entry_settings_build_the_trained_network(folder: Path) -> None:
    bench = benchmarks.open("tiny-robustbench", folder)
    assert bench.build_options(0) == {"C": 4, "layers": 5, "auxiliary": False, "drop_path_prob": 0.0}
    net = bench.build(bench.keys[0])
    space = get_space("darts")
    assert count_parameters(net) == round(space.parameters_m(bench.keys[0], C=4, layers=5) * 1e6)
    assert (
        len(net.cells) == 5
        and net.stem[0].out_channels == 3 * 4
        and net.cells[0].preprocess1[1].out_channels == 4
    )


def test_repeated_genotype_is_one_row_with_the_mean(tmp_path: Path) -> None:
    write(tmp_path / "a.json", [entry(clean=70.0, adv=40.0)])
    write(tmp_path / "b.json", [entry(clean=72.0, adv=42.0, seed=7)])
    bench = benchmarks.open("tiny-robustbench", tmp_path)
    assert len(bench) == 1 and len(bench.entries) == 2
    np.testing.assert_allclose(bench.target_values("cifar10", "pgd@8"), [0.41])


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ('[{"seed": 0, "net": {"genotype"', "b.json: truncated or malformed JSON"),
        ('{"seed": 0}', "b.json: top level is a dict, not a list"),
        ('[{"seed": 0}]', "b.json: entry 0 lacks 'net'"),
    ],
)
def test_bad_file_is_one_line_naming_it(tmp_path: Path, text: str, match: str) -> None:
    write(tmp_path / "a.json", [entry()])
    (tmp_path / "b.json").write_text(text)
    with pytest.raises(DataError, match=match) as err:
        benchmarks.open("tiny-robustbench", tmp_path).target_values("cifar10", "pgd@8")
    assert "\n" not in str(err.value)


def test_bad_entries_name_the_entry(tmp_path: Path) -> None:
    bad_op = entry(swapped(NORMAL, 0, "conv_9x9"))
    write(tmp_path / "a.json", [entry(), bad_op])
    with pytest.raises(DataError, match=r"a.json: entry 1: unknown darts operation 'conv_9x9'"):
        _ = benchmarks.open("tiny-robustbench", tmp_path).keys
    write(tmp_path / "a.json", [entry(adv="n/a")])
    with pytest.raises(DataError, match="entry 0: max_test_top1_adv is 'n/a'"):
        _ = benchmarks.open("tiny-robustbench", tmp_path).keys
    with pytest.raises(DataError, match="not found"):
        benchmarks.open("tiny-robustbench", tmp_path / "missing")
    with pytest.raises(DataError, match="no .json files"):
        benchmarks.open("tiny-robustbench", (tmp_path / "empty").mkdir() or tmp_path / "empty")


def test_real_files(shared_data: Path) -> None:
    root = shared_data / "tiny_robustbench"
    if not root.is_dir():
        pytest.skip(f"{root} is absent")
    bench = benchmarks.open("tiny-robustbench", root)
    assert len(bench) == 110 and bench.target_names() == ["clean", "pgd@8"]
    adv, clean = bench.target_values("cifar10", "pgd@8"), bench.target_values("cifar10", "clean")
    assert 0.37 < adv.min() < adv.max() < 0.44 and 0.72 < clean.min() < clean.max() < 0.76
    assert bench.target(bench.keys[0], "pgd@8") == pytest.approx(0.4199)
    assert all(
        bench.build_options(k) == {"C": 16, "layers": 8, "auxiliary": False, "drop_path_prob": 0.0}
        for k in bench.keys
    )
    net = bench.build(0)
    assert len(net.cells) == 8 and count_parameters(net) == round(
        get_space("darts").parameters_m(bench.keys[0], C=16, layers=8) * 1e6
    )
