"""The development / test split and the held-out statistics of robnas.holdout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from robnas import holdout
from robnas.benchmarks import RobustnessDataset
from robnas.errors import DataError
from robustness_fixture import write_robustness

ROOT = Path(__file__).resolve().parents[1]


def test_split_is_deterministic_disjoint_and_complete() -> None:
    ids = [str(i) for i in range(101)]
    a = holdout.make_split(ids, seed=0)
    assert a == holdout.make_split(list(reversed(ids)), seed=0)  # order of ids does not matter
    assert a != holdout.make_split(ids, seed=1)
    assert a.dev.isdisjoint(a.test) and a.dev | a.test == set(ids)
    assert (len(a.dev), len(a.test)) == (51, 50)
    assert a.mask(["0", "1", "2"], "dev").tolist() == [k in a.dev for k in ("0", "1", "2")]


def test_split_file_round_trips_and_refuses_bad_files(tmp_path: Path) -> None:
    split = holdout.make_split([str(i) for i in range(20)], seed=3)
    assert holdout.load_split(holdout.save_split(split, tmp_path / "s.json")) == split
    (tmp_path / "bad.json").write_text('{"seed": 0, "dev": ["1"]')
    with pytest.raises(DataError, match="bad.json is not a split"):
        holdout.load_split(tmp_path / "bad.json")
    (tmp_path / "overlap.json").write_text('{"seed": 0, "dev": ["1", "2"], "test": ["2"]}')
    with pytest.raises(DataError, match="share 1 classes"):
        holdout.load_split(tmp_path / "overlap.json")


def test_committed_split_equals_the_regenerated_one(shared_data: Path) -> None:
    rob = RobustnessDataset(shared_data / "robustness")
    committed = holdout.load_split(ROOT / "benchmarks" / "results" / "nb201_split.json")
    assert committed == holdout.nb201_split(rob, seed=0)
    assert len(committed.dev) + len(committed.test) == len(rob.keys) == 6466


def test_weighted_statistics_equal_the_expanded_sample() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=60).round(1)  # ties
    y = x + rng.normal(size=60)
    z = x + rng.normal(size=60)
    w = rng.integers(1, 5, size=60)
    assert holdout.weighted_ranks(x) == pytest.approx(stats.rankdata(x))
    assert holdout.weighted_spearman(x, y) == pytest.approx(stats.spearmanr(x, y).statistic)
    xe, ye, ze = (np.repeat(a, w) for a in (x, y, z))
    assert holdout.weighted_spearman(x, y, w) == pytest.approx(stats.spearmanr(xe, ye).statistic)
    # partial Spearman = correlation of rank residuals after a linear regression on rank(z)
    rx, ry, rz = (stats.rankdata(a) for a in (xe, ye, ze))
    design = np.column_stack([np.ones_like(rz), rz])
    ex, ey = (r - design @ np.linalg.lstsq(design, r, rcond=None)[0] for r in (rx, ry))
    assert holdout.partial_spearman(x, y, z, w) == pytest.approx(np.corrcoef(ex, ey)[0, 1])


def test_evaluate_reports_both_halves_and_populations(tmp_path: Path) -> None:
    rob = RobustnessDataset(write_robustness(tmp_path / "rob", n_archs=200))
    split = holdout.nb201_split(rob, seed=0)
    rows = rob.rows(rob.arch_strings)
    clean = rob.table("cifar10", "clean")[rows]
    rng = np.random.default_rng(1)
    scores = pd.DataFrame(
        {
            "arch": rob.arch_strings * 2,
            "proxy": ["good"] * len(rows) + ["params"] * len(rows),
            "value": np.r_[clean + 0.05 * rng.normal(size=len(rows)), rng.normal(size=len(rows))],
        }
    )
    table = holdout.evaluate(scores, rob, split, ["clean", "fgsm@8"], bootstrap=200, seed=0)
    assert list(table.columns) == list(holdout.EVAL_COLUMNS)
    assert len(table) == 2 * 2 * 2 * 2  # proxies x targets x populations x halves
    good = table[(table.proxy == "good") & (table.target == "clean")].set_index(["population", "half"])
    keys = np.asarray(rob.keys)
    for half in holdout.HALVES:
        n = int(split.mask(list(keys), half).sum())
        assert good.loc[("classes", half), "n"] == n
        assert good.loc[("classes", half), "spearman"] > 0.8
        assert good.loc[("classes", half), "spearman_lo"] <= good.loc[("classes", half), "spearman"]
        assert good.loc[("classes", half), "spearman"] <= good.loc[("classes", half), "spearman_hi"]
    # the test half's classes statistic is the plain Spearman of those classes (first row of each)
    first = scores[scores.proxy == "good"].assign(key=[rob.isomorph(a) for a in rob.arch_strings])
    first = first.drop_duplicates("key")
    test = first[first.key.isin(split.test)]
    expected = stats.spearmanr(test.value, rob.target(list(test.arch), "cifar10", "clean")).statistic
    assert good.loc[("classes", "test"), "spearman"] == pytest.approx(expected)
    assert table[table.proxy == "params"].partial.isna().all()  # the control itself has no partial


def test_repeated_folds_partition_every_index_once_per_repeat():
    parts = holdout.repeated_folds(23, 5, 3, seed=1)
    assert len(parts) == 15
    for r in range(3):
        tests = [test for _, test in parts[5 * r : 5 * r + 5]]
        assert sorted(np.concatenate(tests).tolist()) == list(range(23))
        for train, test in parts[5 * r : 5 * r + 5]:
            assert not set(train) & set(test) and len(train) + len(test) == 23
    again = holdout.repeated_folds(23, 5, 3, seed=1)
    assert all((a == c).all() and (b == d).all() for (a, b), (c, d) in zip(parts, again, strict=True))
