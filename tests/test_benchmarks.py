"""Readers of the robustness dataset and the NAS-Bench-201 tables, and their error messages."""

from __future__ import annotations

import bz2
import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest

from robnas import benchmarks, spaces
from robnas.benchmarks import NATSTopology, NB201Csv, NB201Pth, RobustnessDataset, open_nb201
from robnas.errors import ConfigError, DataError, InvalidArchitecture, UnknownName
from robustness_fixture import EPSILONS, write_robustness

SPACE = spaces.get("nb201")


@pytest.fixture
def rob_dir(tmp_path: Path) -> Path:
    return write_robustness(tmp_path / "rob")


def _raw(root: Path, measure: str) -> dict:
    return json.loads((root / "cifar10" / f"{measure}_accuracy.json").read_text())["cifar10"][measure][
        "accuracy"
    ]


# ----------------------------------------------------------------------------- robustness
def test_robustness_reads_every_kind_by_index_and_string(rob_dir: Path) -> None:
    rob = RobustnessDataset(rob_dir)
    meta = json.loads((rob_dir / "meta.json").read_text())
    i = 37
    key = meta["ids"][str(i)]["isomorph"]
    text = meta["ids"][str(i)]["nb201-string"]
    assert rob.isomorph(i) == rob.isomorph(text) == key
    spaced = " " + text + " "  # any spacing of a valid string is accepted
    assert rob.index_of(spaced) == i
    assert rob.accuracy(i, "cifar10", "clean") == _raw(rob_dir, "clean")[key]
    fgsm = _raw(rob_dir, "fgsm@Linf")[key]
    assert rob.accuracy(text, "cifar10", "fgsm", eps=8) == fgsm[2]
    assert rob.accuracy(i, "cifar10", "fgsm@Linf", eps=0.1) == fgsm[0]
    assert rob.accuracy(i, "cifar10", "square", eps=1) == _raw(rob_dir, "aa_square@Linf")[key][0]
    assert rob.accuracy(i, "cifar10", "fog", severity=5) == _raw(rob_dir, "fog")[key][4]
    assert rob.epsilons("apgd") == EPSILONS["aa_apgd-ce@Linf"]


def test_robustness_tables_and_isomorph_mapping(rob_dir: Path) -> None:
    rob = RobustnessDataset(rob_dir)
    n_keys = len(rob.keys)
    assert rob.table("cifar10", "clean").shape == (n_keys,)
    assert rob.table("cifar10", "pgd@Linf").shape == (n_keys, 2)
    assert rob.table("cifar10", "zoom_blur").shape == (n_keys, 5)
    # isomorphic architectures share one row; the classes are NAS-Bench-201's
    archs = rob.arch_strings
    rows = rob.rows(archs)
    for a, b in [(0, 1), (3, 30), (12, 60)]:
        same = SPACE.isomorphism_key(SPACE.parse(archs[a])) == SPACE.isomorphism_key(SPACE.parse(archs[b]))
        assert (rows[a] == rows[b]) == same
    assert len(set(rows.tolist())) == n_keys


def test_robustness_is_lazy(rob_dir: Path) -> None:
    rob = RobustnessDataset(rob_dir)
    rob.isomorph(3)
    assert rob._raw == {}
    rob.accuracy(3, "cifar10", "clean")
    assert list(rob._raw) == [("cifar10", "clean")]
    first = rob.raw("cifar10", "clean")
    (rob_dir / "cifar10" / "clean_accuracy.json").unlink()
    assert rob.raw("cifar10", "clean") is first  # cached, not re-read


def test_robustness_unknown_names(rob_dir: Path) -> None:
    rob = RobustnessDataset(rob_dir)
    with pytest.raises(UnknownName, match="epsilon"):
        rob.accuracy(0, "cifar10", "fgsm", eps=3)
    with pytest.raises(UnknownName, match="severity"):
        rob.accuracy(0, "cifar10", "fog", severity=6)
    with pytest.raises(UnknownName, match="no epsilons"):
        rob.epsilons("cw")
    with pytest.raises(InvalidArchitecture):
        rob.isomorph("|conv~0|+|")
    with pytest.raises(DataError, match="not listed"):
        rob.isomorph(SPACE.format(("nor_conv_3x3",) * 6))  # valid, but not in the small meta.json
    with pytest.raises(DataError, match="outside"):
        rob.isomorph(10_000)


def _expect_data_error(fn, *fragments: str) -> None:
    with pytest.raises(DataError) as info:
        fn()
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, message
    assert "\n" not in message


def test_robustness_error_paths(rob_dir: Path, tmp_path: Path) -> None:
    source = "steffen-jung/robustness-dataset"
    _expect_data_error(lambda: RobustnessDataset(tmp_path / "nowhere"), "nowhere", source)

    rob = RobustnessDataset(rob_dir)
    meta = rob_dir / "meta.json"
    text = meta.read_text()
    meta.write_text(text[: len(text) // 2])
    _expect_data_error(lambda: RobustnessDataset(rob_dir).meta, "meta.json", "truncated", source)
    meta.write_text(json.dumps({"epsilons": {}}))
    _expect_data_error(lambda: RobustnessDataset(rob_dir).meta, "meta.json", "'ids'", source)
    meta.write_text(json.dumps({"ids": {"0": {"isomorph": "0"}}, "epsilons": {}}))
    _expect_data_error(lambda: RobustnessDataset(rob_dir).meta, "nb201-string")
    meta.unlink()
    _expect_data_error(lambda: RobustnessDataset(rob_dir).meta, "meta.json", "not found", source)
    meta.write_text(text)

    folder = rob_dir / "cifar10"
    (folder / "fog_accuracy.json").unlink()
    _expect_data_error(lambda: rob.table("cifar10", "fog"), "fog_accuracy.json", "not found", source)
    clean = folder / "clean_accuracy.json"
    good = clean.read_text()
    clean.write_text(good[:100])
    _expect_data_error(lambda: RobustnessDataset(rob_dir).table("cifar10", "clean"), "truncated", source)
    clean.write_text(json.dumps({"cifar100": {"clean": {"accuracy": {}}}}))
    _expect_data_error(lambda: RobustnessDataset(rob_dir).table("cifar10", "clean"), "wrong keys", source)
    values = json.loads(good)
    first_key = next(iter(values["cifar10"]["clean"]["accuracy"]))
    del values["cifar10"]["clean"]["accuracy"][first_key]
    clean.write_text(json.dumps(values))
    _expect_data_error(lambda: RobustnessDataset(rob_dir).table("cifar10", "clean"), "missing", first_key)
    pgd = folder / "pgd@Linf_accuracy.json"
    values = json.loads(pgd.read_text())
    for k in values["cifar10"]["pgd@Linf"]["accuracy"]:
        values["cifar10"]["pgd@Linf"]["accuracy"][k] = [0.5, 0.4, 0.3]  # 3 values for 2 epsilons
    pgd.write_text(json.dumps(values))
    _expect_data_error(lambda: RobustnessDataset(rob_dir).table("cifar10", "pgd@Linf"), "list of 2")


def test_robustness_real_data(shared_data: Path) -> None:
    root = shared_data / "robustness"
    rob = RobustnessDataset(root)
    assert len(rob.arch_strings) == 15625 and len(rob.keys) == 6466
    raw = json.loads((root / "cifar10" / "fgsm@Linf_accuracy.json").read_text())
    key = rob.isomorph(11)
    eps = rob.epsilons("fgsm")
    assert (
        rob.accuracy(11, "cifar10", "fgsm", eps=8)
        == raw["cifar10"]["fgsm@Linf"]["accuracy"][key][eps.index(8.0)]
    )
    # meta.json's isomorphism classes are exactly the space's
    keys = [SPACE.isomorphism_key(SPACE.parse(s)) for s in rob.arch_strings]
    pairs = set(zip(keys, rob.isomorphs, strict=True))
    assert len(pairs) == len(set(keys)) == len(set(rob.isomorphs))


def test_robustness_targets_per_architecture(rob_dir: Path) -> None:
    """RobustnessDataset.target: one value per architecture from the raw files, for one or many."""
    rob = RobustnessDataset(rob_dir)
    meta = json.loads((rob_dir / "meta.json").read_text())
    i = 21
    key = meta["ids"][str(i)]["isomorph"]
    clean = _raw(rob_dir, "clean")[key]
    fgsm = _raw(rob_dir, "fgsm@Linf")[key][EPSILONS["fgsm@Linf"].index(8.0)]
    fog = _raw(rob_dir, "fog")[key]
    every = [v for c in benchmarks.CORRUPTIONS for v in _raw(rob_dir, c)[key]]
    weather = [v for c in ("snow", "fog", "frost") for v in _raw(rob_dir, c)[key]]
    expected = {
        "clean": clean,
        "fgsm@8": fgsm,
        "hrs_fgsm@8": 2 * clean * fgsm / (clean + fgsm),
        "fog@2": fog[1],
        "fog": np.mean(fog),
        "cc_weather": np.mean(weather),
        "cc_mean": np.mean(every),
    }
    for name, value in expected.items():
        assert rob.target(i, "cifar10", name) == pytest.approx(value, abs=1e-12)
        assert rob.target(meta["ids"][str(i)]["nb201-string"], "cifar10", name) == pytest.approx(value)
        many = rob.target([i, 0, i], "cifar10", name)
        assert many.shape == (3,) and many[0] == many[2] == pytest.approx(value)
    with pytest.raises(UnknownName, match="no epsilon 3"):
        rob.target(i, "cifar10", "fgsm@3")


def test_robustness_targets_real_data(shared_data: Path) -> None:
    root = shared_data / "robustness"
    rob = RobustnessDataset(root)
    key = rob.isomorph(11)
    accuracies = []
    for c in benchmarks.CORRUPTIONS:
        raw = json.loads((root / "cifar10" / f"{c}_accuracy.json").read_text())
        accuracies += raw["cifar10"][c]["accuracy"][key]
    assert len(accuracies) == 75
    assert rob.target(11, "cifar10", "cc_mean") == pytest.approx(np.mean(accuracies), abs=1e-12)


# ------------------------------------------------------------------------------- NB201 tables
def _write_csv(path: Path) -> Path:
    archs = [SPACE.format(a) for a in SPACE.all()[:4]]
    lines = ["nb201_index,arch_str,naslib_tuple,c10_test_acc_200ep,params_M"]
    for i in (2, 0, 3, 1):  # rows out of order: the index column decides
        lines.append(f'{i},{archs[i]},"(1, 2)",{90 + i},{0.1 * i}')
    path.write_text("\n".join(lines) + "\n")
    return path


def test_nb201_csv(tmp_path: Path) -> None:
    table = NB201Csv(_write_csv(tmp_path / "t.csv"))
    assert len(table) == 4
    assert np.allclose(table.accuracy("cifar10"), [90, 91, 92, 93])
    assert table.info(SPACE.format(SPACE.all()[2]), "cifar10") == {"test": 92.0, "params": pytest.approx(0.2)}
    assert "naslib_tuple" not in table.columns
    with pytest.raises(UnknownName, match="no column"):
        table.accuracy("cifar100")
    with pytest.raises(UnknownName, match="no split"):
        table.accuracy("cifar10", "valid")
    with pytest.raises(UnknownName, match="no numeric column"):
        table.column("naslib_tuple")


def test_nb201_csv_errors(tmp_path: Path) -> None:
    _expect_data_error(lambda: NB201Csv(tmp_path / "none.csv"), "none.csv", "not found", "NATS-Bench")
    bad = tmp_path / "bad.csv"
    bad.write_text("index,acc\n0,1\n")
    _expect_data_error(lambda: NB201Csv(bad), "arch_str")
    bad.write_text("nb201_index,arch_str\n0,a\n0,b\n")
    _expect_data_error(lambda: NB201Csv(bad), "permutation")


def _write_nats(folder: Path) -> Path:
    folder.mkdir(parents=True)
    archs = [SPACE.format(a) for a in SPACE.all()[:3]]
    with bz2.open(folder / "meta.pickle.pbz2", "wb") as fh:
        pickle.dump(
            {"meta_archs": archs, "total_archs": 3, "arch2infos": None, "evaluated_indexes": set()}, fh
        )
    for i in range(3):
        runs = {}
        for seed, acc in ((777, 80.0 + i), (888, 82.0 + i)):
            runs[("cifar10", seed)] = {
                "epochs": 200,
                "train_acc1es": {199: 99.0},
                "eval_acc1es": {"ori-test@199": acc},
                "params": np.float64(0.5),
                "flop": 10.0,
            }
        record = {"200": {"all_results": runs, "dataset_seed": {"cifar10": [777, 888]}}}
        with bz2.open(folder / f"{i:06d}.pickle.pbz2", "wb") as fh:
            pickle.dump(record, fh)
    return folder


def test_nats_reader_on_written_files(tmp_path: Path) -> None:
    nats = NATSTopology(_write_nats(tmp_path / "nats"))
    assert len(nats) == 3
    assert nats.info(1, "cifar10") == {"train": 99.0, "test": 82.0, "params": 0.5, "flops": 10.0}
    assert np.allclose(nats.accuracy("cifar10"), [81.0, 82.0, 83.0])
    with pytest.raises(UnknownName, match="no dataset"):
        nats.info(0, "cifar100")
    with pytest.raises(UnknownName, match="no hp"):
        nats.info(0, "cifar10", hp="12")


def test_nats_error_paths(tmp_path: Path) -> None:
    folder = _write_nats(tmp_path / "nats")
    _expect_data_error(lambda: NATSTopology(tmp_path / "missing"), "missing", "D-X-Y/NATS-Bench")
    record = folder / "000001.pickle.pbz2"
    data = record.read_bytes()
    record.write_bytes(data[: len(data) // 2])
    _expect_data_error(lambda: NATSTopology(folder).info(1), "000001.pickle.pbz2", "truncated", "NATS-Bench")
    record.write_bytes(b"not a bz2 stream at all")
    _expect_data_error(lambda: NATSTopology(folder).info(1), "malformed")
    with bz2.open(record, "wb") as fh:
        pickle.dump(print, fh)  # a global the reader refuses to load
    _expect_data_error(lambda: NATSTopology(folder).info(1), "unexpected object")
    with bz2.open(record, "wb") as fh:
        pickle.dump({"200": {"no": "results"}}, fh)
    _expect_data_error(lambda: NATSTopology(folder).info(1), "wrong keys")
    (folder / "000002.pickle.pbz2").unlink()
    _expect_data_error(lambda: NATSTopology(folder).info(2), "000002.pickle.pbz2", "not found")
    with bz2.open(folder / "meta.pickle.pbz2", "wb") as fh:
        pickle.dump({"archs": []}, fh)
    _expect_data_error(lambda: NATSTopology(folder).arch_strings, "meta.pickle.pbz2", "meta_archs")


def test_nats_official_sample_agrees_with_csv(shared_data: Path) -> None:
    folder = shared_data / "nb201" / "nats_official_sample" / "NATS-tss-v1_0-3ffb9-simple"
    nats = open_nb201(folder)
    table = open_nb201(shared_data / "nb201" / "nb201_merged_by_index.csv")
    assert len(nats) == len(table) == 15625
    assert nats.arch_strings == table.arch_strings
    for i in (0, 11, 284):
        for dataset, column in (
            ("cifar10", "c10_test_acc_200ep"),
            ("cifar100", "c100_test_acc_200ep"),
            ("ImageNet16-120", "im16_test_acc_200ep"),
        ):
            assert nats.info(i, dataset)["test"] == pytest.approx(table.column(column)[i], abs=1e-6)
        assert nats.info(i, "cifar10-valid", hp="12")["valid"] == pytest.approx(
            table.column("c10valid_valid_acc_12ep__robot")[i], abs=1e-6
        )
    with pytest.raises(DataError, match="000001.pickle.pbz2"):
        nats.info(1)  # the sample holds only three records


def test_nats_copy_of_sample_detects_corruption(shared_data: Path, tmp_path: Path) -> None:
    folder = shared_data / "nb201" / "nats_official_sample" / "NATS-tss-v1_0-3ffb9-simple"
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    target = copy / "000011.pickle.pbz2"
    target.chmod(0o644)
    target.write_bytes(target.read_bytes()[:-200])
    _expect_data_error(lambda: NATSTopology(copy).info(11), "000011.pickle.pbz2", "truncated")


def test_pth_reader_needs_optional_package(tmp_path: Path) -> None:
    _expect_data_error(lambda: NB201Pth(tmp_path / "NAS-Bench-201-v1_1-096897.pth"), "not found")
    fake = tmp_path / "NAS-Bench-201-v1_1-096897.pth"
    fake.write_bytes(b"not a torch file")
    try:
        import nas_201_api  # noqa: F401
    except ImportError:
        with pytest.raises(ConfigError, match="pip install nas-bench-201"):
            NB201Pth(fake)
    else:  # pragma: no cover - only where the package is installed
        with pytest.raises(DataError, match="could not read"):
            NB201Pth(fake)


def test_registry(rob_dir: Path, tmp_path: Path) -> None:
    assert {"robustness", "nb201", "nats-tss", "nb201-csv", "nb201-pth"} <= set(benchmarks.names())
    assert isinstance(benchmarks.open("robustness", rob_dir), RobustnessDataset)
    assert isinstance(benchmarks.open("nb201", _write_csv(tmp_path / "x.csv")), NB201Csv)
    with pytest.raises(UnknownName, match="robustness"):
        benchmarks.open("robustnes", rob_dir)
    with pytest.raises(DataError, match="not a NAS-Bench-201 source"):
        open_nb201(tmp_path / "x.txt")
