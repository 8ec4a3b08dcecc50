"""The NAS-RobBench-201 reader: official web format, isomorph resolution, targets, bad files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from nas_robbench_fixture import write_nas_robbench
from robnas import benchmarks, spaces
from robnas.benchmarks import NASRobBench201, TargetBenchmark
from robnas.benchmarks.nas_robbench import COLUMNS, TARGETS
from robnas.errors import ConfigError, DataError, InvalidArchitecture, UnknownName

SPACE = spaces.get("nb201")
REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "nas_robbench201"
ROBUSTNESS = REAL.parent / "robustness"
needs_real = pytest.mark.skipif(
    not (REAL / "NAS-RobBench-201_html.json").is_file(), reason=f"NAS-RobBench-201 files absent ({REAL})"
)


@pytest.fixture
def bench_dir(tmp_path: Path) -> Path:
    return write_nas_robbench(tmp_path / "nrb")


def _acc(root: Path) -> dict:
    text = (root / "NAS-RobBench-201_html.json").read_text()
    return json.loads(text[len("acc="):])


def test_opens_by_name_and_answers_the_query_interface(bench_dir: Path) -> None:
    bench = benchmarks.open("nas-robbench-201", bench_dir)
    assert isinstance(bench, NASRobBench201) and isinstance(bench, TargetBenchmark)
    assert "nas-robbench-201" in benchmarks.names("nas-*")
    assert bench.datasets() == ["cifar10", "cifar100", "imagenet16-120"]
    assert bench.target_names("cifar10") == ["clean", "fgsm@3", "pgd@3", "fgsm@8", "pgd@8", "aa@8"]
    assert len(bench.arch_strings) == 60


def test_values_by_index_and_string_with_isomorphs_resolved(bench_dir: Path) -> None:
    bench = NASRobBench201(bench_dir)
    acc = _acc(bench_dir)
    copies = [int(k) for k, v in acc.items() if isinstance(v, str)]
    assert copies, "the fixture must hold isomorphic copies"
    for i in copies:
        rep = int(acc[str(i)])
        assert bench.isomorph(i) == str(rep)
        # a copy and its representative are the same network up to isomorphism
        assert SPACE.canonical_string(bench.arch_strings[i]) == SPACE.canonical_string(bench.arch_strings[rep])
        assert bench.representative(i) == bench.arch_strings[rep]
        for t, column in enumerate(COLUMNS):
            prefix, suffix = column.split("#")
            dataset = {"imagenet": "ImageNet16-120"}.get(prefix, prefix)
            target = next(name for name, s in TARGETS.items() if s == suffix)
            assert bench.target(i, dataset, target) == acc[str(rep)][t]
            assert bench.target(" " + bench.arch_strings[i] + " ", dataset, target) == acc[str(rep)][t]
    values = bench.target_values("cifar10", "pgd@8")
    assert values.shape == (len(bench.keys),)
    assert bench.keys == sorted({k for k, v in acc.items() if isinstance(v, list) and k}, key=int)
    np.testing.assert_array_equal(bench.target(list(range(60)), "cifar10", "pgd@8"), values[bench.rows(range(60))])
    weights = bench.weights()
    assert weights.sum() == 60 and weights.min() >= 1
    assert weights[bench.keys.index(str(int(acc[str(copies[0])])))] >= 2


def test_target_and_dataset_spellings(bench_dir: Path) -> None:
    bench = NASRobBench201(bench_dir)
    np.testing.assert_array_equal(bench.target_values("imagenet", "PGD@8.0"), bench.target_values("imagenet16-120", "pgd@8"))
    assert bench.canonical_target("autoattack") == "aa@8"
    with pytest.raises(UnknownName, match="aa@8"):
        bench.target_values("cifar10", "apgd@8")
    with pytest.raises(UnknownName, match="pgd@8"):
        bench.target_values("cifar10", "pgd@4")
    with pytest.raises(ConfigError, match="no settings"):
        bench.target_values("cifar10", "pgd@8:steps=20")
    with pytest.raises(ConfigError, match="1/255"):
        bench.target_values("cifar10", "pgd@0.031")
    with pytest.raises(UnknownName, match="imagenet16-120"):
        bench.target_values("svhn", "clean")
    with pytest.raises(InvalidArchitecture):
        bench.target("|conv~0|", "cifar10", "clean")
    with pytest.raises(DataError, match="outside"):
        bench.target(60, "cifar10", "clean")
    unlisted = SPACE.format(SPACE.all()[-1])
    with pytest.raises(DataError, match="not listed"):
        bench.target(unlisted, "cifar10", "clean")


def _one_line(exc: pytest.ExceptionInfo, name: str) -> None:
    text = str(exc.value)
    assert "\n" not in text and name in text


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda t: t[: len(t) // 2], "truncated or malformed"),
        (lambda t: "var x=" + t[4:], "does not start with 'acc='"),
        (lambda t: t.replace('"cifar10#val_acc"', '"cifar10#acc"'), "should list the 18 columns"),
        (lambda t: t.replace('"0": [', '"0": ["x", ', 1), "18 finite numbers"),
        (lambda t: t.replace('"0": [', '"0": [0.5, ', 1), "18 finite numbers"),
        (lambda t: t.replace('"0": [', '"99": [0.5], "0": [', 1), "not a NAS-Bench-201 index"),
        (lambda t: t.replace(', "59": ', ', "x59": ', 1), "not a NAS-Bench-201 index"),
        (lambda t: "acc=" + json.dumps({k: v for k, v in json.loads(t[4:]).items() if k != "59"}), "missing"),
    ],
)
def test_bad_value_file_is_one_line_naming_it(bench_dir: Path, damage, message: str) -> None:
    path = bench_dir / "NAS-RobBench-201_html.json"
    path.write_text(damage(path.read_text()))
    with pytest.raises(DataError, match=message) as exc:
        NASRobBench201(bench_dir).target_values("cifar10", "clean")
    _one_line(exc, str(path))


def test_dangling_reference_is_one_line(bench_dir: Path) -> None:
    acc = _acc(bench_dir)
    copy = next(k for k, v in acc.items() if isinstance(v, str))
    acc[copy] = str(next(k for k, v in acc.items() if isinstance(v, str) and k != copy))
    path = bench_dir / "NAS-RobBench-201_html.json"
    path.write_text("acc=" + json.dumps(acc))
    with pytest.raises(DataError, match="not an index holding values") as exc:
        _ = NASRobBench201(bench_dir).keys
    _one_line(exc, str(path))


@pytest.mark.parametrize(
    "text, message",
    [
        ('arch=["000000", "00', "truncated or malformed"),
        ('["000000"]', "does not start with 'arch='"),
        ('arch=["000000", "000005"]', "six digits"),
        ("arch=[]", "non-empty list"),
    ],
)
def test_bad_ops_file_is_one_line_naming_it(bench_dir: Path, text: str, message: str) -> None:
    path = bench_dir / "ops.json"
    path.write_text(text)
    with pytest.raises(DataError, match=message) as exc:
        NASRobBench201(bench_dir).target_values("cifar10", "clean")
    _one_line(exc, str(path))


def test_missing_files_name_the_source(tmp_path: Path, bench_dir: Path) -> None:
    with pytest.raises(DataError, match="folder not found") as exc:
        NASRobBench201(tmp_path / "nowhere")
    _one_line(exc, "nasrobbench201hp")
    (bench_dir / "ops.json").unlink()
    with pytest.raises(DataError, match="file not found") as exc:
        _ = NASRobBench201(bench_dir).keys
    _one_line(exc, "ops.json")


@needs_real
def test_real_files() -> None:
    bench = benchmarks.open("nas-robbench-201", REAL)
    assert len(bench.arch_strings) == 15_625 and len(bench.keys) == 6_466
    assert bench.weights().sum() == 15_625
    pgd8 = bench.target_values("cifar10", "pgd@8")
    best = bench.keys[int(np.argmax(pgd8))]
    assert round(float(pgd8.max()), 4) == 0.4811
    assert bench.target(int(best), "cifar10", "aa@8") == pytest.approx(0.4434, abs=1e-4)
    for dataset in bench.datasets():
        for target in bench.target_names(dataset):
            v = bench.target_values(dataset, target)
            assert v.min() >= 0.0 and v.max() <= 1.0
        assert (bench.target_values(dataset, "clean") >= bench.target_values(dataset, "pgd@8")).all()
    # isomorph resolution: every copy is isomorphic to its representative (a sample of them)
    copies = [i for i, k in enumerate(bench.isomorphs) if int(k) != i]
    for i in np.random.default_rng(0).choice(copies, size=300, replace=False):
        assert SPACE.canonical_string(bench.arch_strings[i]) == SPACE.canonical_string(bench.representative(int(i)))


@needs_real
@pytest.mark.skipif(not (ROBUSTNESS / "meta.json").is_file(), reason=f"robustness dataset absent ({ROBUSTNESS})")
def test_real_classes_are_the_robustness_datasets() -> None:
    bench = NASRobBench201(REAL)
    rob = benchmarks.open("robustness", ROBUSTNESS)
    assert bench.arch_strings == rob.arch_strings
    assert bench.isomorphs == rob.isomorphs and bench.keys == rob.keys
    np.testing.assert_array_equal(bench.weights(), rob.weights())


def test_from_spec_names_a_target_benchmark(bench_dir: Path, tmp_path: Path) -> None:
    bench = benchmarks.from_spec(f"nas-robbench-201:{bench_dir}")
    assert isinstance(bench, NASRobBench201) and benchmarks.from_spec(bench) is bench
    assert {"robustness", "nas-robbench-201"} <= set(benchmarks.target_benchmarks())
    assert isinstance(benchmarks.from_spec(tmp_path), benchmarks.RobustnessDataset)  # a bare folder
    with pytest.raises(ConfigError, match="not a benchmark of per-architecture targets"):
        benchmarks.from_spec(f"nb201:{tmp_path}")
    with pytest.raises(UnknownName, match="nas-robbench-201"):
        benchmarks.from_spec(f"nasrobbench:{bench_dir}")
