"""Correlation of proxy scores with robustness targets, checked against independent scipy code."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from typer.testing import CliRunner

from robnas import correlate as corr
from robnas.benchmarks import CORRUPTIONS, RobustnessDataset
from robnas.cli import app
from robnas.errors import ConfigError, DataError, InvalidArchitecture, UnknownName
from robnas.store import RunStore, ScoreRow
from robustness_fixture import write_robustness


@pytest.fixture
def rob(tmp_path: Path) -> RobustnessDataset:
    return RobustnessDataset(write_robustness(tmp_path / "rob", n_archs=120))


def _scores(rob: RobustnessDataset, seed: int = 1) -> pd.DataFrame:
    """Two proxies over every architecture (duplicates of isomorphism classes included)."""
    rng = np.random.default_rng(seed)
    archs = rob.arch_strings
    clean = rob.table("cifar10", "clean")[rob.rows(archs)]
    good = clean + rng.normal(0, 0.1, len(archs))
    noise = rng.normal(size=len(archs))
    return pd.DataFrame(
        {
            "arch": archs * 2,
            "proxy": ["good"] * len(archs) + ["noise"] * len(archs),
            "value": np.r_[good, noise],
        }
    )


def _first_of_class(rob: RobustnessDataset, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Independent unique selection: first row of each isomorph id, in row order."""
    seen, values, rows = set(), [], []
    key_row = {k: i for i, k in enumerate(rob.keys)}
    for arch, value in zip(frame["arch"], frame["value"], strict=True):
        key = rob.isomorph(arch)
        if key in seen or not np.isfinite(value):
            continue
        seen.add(key)
        values.append(value)
        rows.append(key_row[key])
    return np.array(values), np.array(rows)


def test_target_names_and_eps_format(rob: RobustnessDataset) -> None:
    assert corr.format_eps(0.1) == "0.1" and corr.format_eps(8.0) == "8" and corr.format_eps(255.0) == "255"
    names = corr.target_names(rob)
    for expected in (
        "clean",
        "fgsm@0.1",
        "fgsm@8",
        "pgd@1",
        "apgd@8",
        "square@1",
        "hrs_fgsm@8",
        "hrs_square@1",
    ):
        assert expected in names
    assert set(CORRUPTIONS) <= set(names)
    assert {"cc_weather", "cc_noise", "cc_blur", "cc_digital", "cc_mean"} <= set(names)
    assert {"croze_weather", "croze_noise", "croze_blur", "croze_digital", "croze_mean15"} <= set(names)
    assert "fog@3" not in names and "fog@3" in corr.target_names(rob, severities=True)
    with pytest.raises(UnknownName, match="epsilon"):
        corr.build_targets(rob, "cifar10", ["fgsm@3"])
    with pytest.raises(UnknownName, match="did you mean"):
        corr.build_targets(rob, "cifar10", ["cc_wether"])
    with pytest.raises(UnknownName, match="severity"):
        corr.build_targets(rob, "cifar10", ["fog@7"])
    with pytest.raises(DataError, match="no such dataset"):
        corr.target_names(rob, "cifar100")
    with pytest.raises(ConfigError, match="repeat"):
        corr.build_targets(rob, "cifar10", ["clean", "clean"])


def test_statistics_match_independent_scipy(rob: RobustnessDataset) -> None:
    frame = _scores(rob)
    targets = ["clean", "fgsm@8", "hrs_pgd@1", "fog", "fog@2", "croze_weather", "croze_mean15", "cc_mean"]
    result = corr.correlate(frame, rob, targets=targets, bootstrap=0)
    assert list(result.columns) == list(corr.COLUMNS)
    t = {c: rob.table("cifar10", c) for c in ["clean", "fgsm@Linf", "pgd@Linf", *CORRUPTIONS]}
    for proxy in ("good", "noise"):
        x, rows = _first_of_class(rob, frame[frame["proxy"] == proxy])
        clean = t["clean"][rows]
        pgd1 = t["pgd@Linf"][rows, 0]
        expected_targets = {
            "clean": clean,
            "fgsm@8": t["fgsm@Linf"][rows, 2],
            "hrs_pgd@1": 2 * clean * pgd1 / (clean + pgd1),
            "fog": t["fog"][rows].mean(axis=1),
            "fog@2": t["fog"][rows, 1],
            "cc_mean": np.mean([t[c][rows].mean(axis=1) for c in CORRUPTIONS], axis=0),
        }
        got = result[result["proxy"] == proxy].set_index("target")
        assert (got["n"] == len(x)).all()
        for name, y in expected_targets.items():
            assert got.at[name, "spearman"] == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)
            assert got.at[name, "kendall"] == pytest.approx(stats.kendalltau(x, y).statistic, abs=1e-12)
            top_x = stats.rankdata(x) > 0.9 * len(x)
            top_y = stats.rankdata(y) > 0.9 * len(x)
            assert got.at[name, "top10_precision"] == pytest.approx((top_x & top_y).sum() / top_x.sum())
        # CRoZe's group: per-severity rho, mean over severities, then over the group's corruptions
        weather = np.mean(
            [
                np.mean([stats.spearmanr(x, t[c][rows, s]).statistic for s in range(5)])
                for c in ("snow", "fog", "frost")
            ]
        )
        assert got.at["croze_weather", "spearman"] == pytest.approx(weather, abs=1e-12)
        mean15 = np.mean([stats.spearmanr(x, t[c][rows].mean(axis=1)).statistic for c in CORRUPTIONS])
        assert got.at["croze_mean15", "spearman"] == pytest.approx(mean15, abs=1e-12)


def test_unique_versus_all_and_nan(rob: RobustnessDataset) -> None:
    frame = _scores(rob)
    frame.loc[3, "value"] = np.nan
    frame.loc[5, "value"] = np.inf
    unique = corr.correlate(frame, rob, targets=["clean"], bootstrap=0)
    every = corr.correlate(frame, rob, targets=["clean"], unique=False, bootstrap=0)
    good_all = frame[(frame["proxy"] == "good") & np.isfinite(frame["value"])]
    assert every.set_index("proxy").at["good", "n"] == len(good_all) == len(rob.arch_strings) - 2
    rows = rob.rows(list(good_all["arch"]))
    expected = stats.spearmanr(good_all["value"], rob.table("cifar10", "clean")[rows]).statistic
    assert every.set_index("proxy").at["good", "spearman"] == pytest.approx(expected, abs=1e-12)
    x, _ = _first_of_class(rob, frame[frame["proxy"] == "good"])
    assert unique.set_index("proxy").at["good", "n"] == len(x) < len(good_all)
    assert unique.attrs["dropped"] == {"good": 2, "noise": 0}


def test_inverse_proxy_is_not_flipped(rob: RobustnessDataset) -> None:
    frame = _scores(rob)
    frame = frame[frame["proxy"] == "good"].assign(proxy="minus", value=lambda f: -f["value"])
    plus = corr.correlate(_scores(rob), rob, targets=["clean"], bootstrap=0).set_index("proxy")
    minus = corr.correlate(frame, rob, targets=["clean"], bootstrap=0).set_index("proxy")
    assert minus.at["minus", "spearman"] == pytest.approx(-plus.at["good", "spearman"])
    assert minus.at["minus", "spearman"] < 0


def test_ensembles(rob: RobustnessDataset) -> None:
    frame = _scores(rob)
    frame.loc[0, "value"] = np.nan  # excluded from the ensemble
    result = corr.correlate(frame, rob, targets=["clean"], ensembles=["good+noise"], bootstrap=0)
    assert list(dict.fromkeys(result["proxy"])) == ["good", "noise", "good+noise"]
    wide = frame.pivot(index="arch", columns="proxy", values="value").reindex(rob.arch_strings).dropna()
    mean_rank = (stats.rankdata(wide["good"]) + stats.rankdata(wide["noise"])) / 2
    combined = pd.DataFrame({"arch": wide.index, "proxy": "e", "value": mean_rank})
    x, rows = _first_of_class(rob, combined)
    expected = stats.spearmanr(x, rob.table("cifar10", "clean")[rows]).statistic
    assert result.set_index("proxy").at["good+noise", "spearman"] == pytest.approx(expected, abs=1e-12)
    with pytest.raises(UnknownName, match="no proxy 'snip'"):
        corr.correlate(frame, rob, targets=["clean"], ensembles=["good+snip"], bootstrap=0)
    with pytest.raises(ConfigError, match="two or more"):
        corr.add_ensembles(frame, ["good"])


def test_bootstrap_seeded_and_rerank_matches_a_loop(rob: RobustnessDataset) -> None:
    frame = _scores(rob)
    a = corr.correlate(frame, rob, targets=["clean", "croze_weather"], bootstrap=200, seed=3)
    b = corr.correlate(frame, rob, targets=["clean", "croze_weather"], bootstrap=200, seed=3)
    pd.testing.assert_frame_equal(a, b)
    assert (a["spearman_lo"] <= a["spearman"]).all() and (a["spearman"] <= a["spearman_hi"]).all()
    none = corr.correlate(frame, rob, targets=["clean"], bootstrap=0)
    assert none["spearman_lo"].isna().all()
    # rerank: the textbook bootstrap, checked against a plain loop over the same resamples
    rerank = corr.correlate(frame, rob, targets=["clean"], bootstrap=50, seed=4, bootstrap_method="rerank")
    x, rows = _first_of_class(rob, frame[frame["proxy"] == "good"])
    y = rob.table("cifar10", "clean")[rows]
    rng = np.random.default_rng(4)
    rhos = []
    for _ in range(50):
        counts = np.bincount(rng.integers(0, len(x), size=len(x)), minlength=len(x))
        draw = np.repeat(np.arange(len(x)), counts)
        rhos.append(stats.spearmanr(x[draw], y[draw]).statistic)
    got = rerank.set_index("proxy").loc["good"]
    assert got["spearman_lo"] == pytest.approx(np.percentile(rhos, 2.5), abs=1e-9)
    assert got["spearman_hi"] == pytest.approx(np.percentile(rhos, 97.5), abs=1e-9)
    with pytest.raises(ConfigError):
        corr.correlate(frame, rob, targets=["clean"], bootstrap_method="jackknife")


def test_load_scores_formats_and_errors(rob: RobustnessDataset, tmp_path: Path) -> None:
    frame = _scores(rob)
    long_csv = tmp_path / "long.csv"
    frame.to_csv(long_csv, index=False)
    wide_csv = tmp_path / "wide.csv"
    wide = frame.pivot(index="arch", columns="proxy", values="value").reindex(rob.arch_strings).reset_index()
    wide.rename(columns={"arch": "net_str"}).assign(net="(0, 1)").to_csv(wide_csv, index=False)
    store = tmp_path / "run.sqlite"
    with sqlite3.connect(store) as db:
        db.execute("CREATE TABLE results (arch TEXT, proxy TEXT, value REAL, seconds REAL, error TEXT)")
        db.executemany("INSERT INTO results VALUES (?, ?, ?, 0.1, '')", frame.itertuples(index=False))
    a = corr.load_scores(long_csv)
    b = corr.load_scores(store)
    c = corr.load_scores(wide_csv)
    assert len(a) == len(b) == len(c) == len(frame)
    assert set(c["proxy"]) == {"good", "noise"}
    for loaded in (a, b, c):
        r = corr.correlate(loaded, rob, targets=["clean"], bootstrap=0).set_index("proxy")
        assert r.at["good", "spearman"] == pytest.approx(
            corr.correlate(frame, rob, targets=["clean"], bootstrap=0)
            .set_index("proxy")
            .at["good", "spearman"]
        )

    with pytest.raises(DataError, match="not found"):
        corr.load_scores(tmp_path / "none.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(DataError, match="arch,proxy,value"):
        corr.load_scores(bad)
    bad.write_text("arch,proxy,value\n|none~0|+|none~0|none~1|+|none~0|none~1|none~2|,p,abc\n")
    with pytest.raises(DataError, match="'abc' of row 1 is not a number"):
        corr.load_scores(bad)
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE t (x)")
    with pytest.raises(DataError, match="results"):
        corr.load_scores(other)
    with pytest.raises(InvalidArchitecture):
        corr.correlate([("|conv~0|", "p", 1.0)], rob, targets=["clean"], bootstrap=0)
    with pytest.raises(DataError, match="lack the columns"):
        corr.correlate(pd.DataFrame({"arch": ["x"]}), rob)


def test_a_run_store_holding_one_value_under_two_settings_is_refused(tmp_path: Path) -> None:
    """Rerunning ``robnas score`` with another seed into the same store keeps both values; reading
    that store as scores names the clash instead of picking one."""
    arch = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
    with RunStore(tmp_path / "run.sqlite") as store:
        other = "|skip_connect~0|+|none~0|none~1|+|none~0|none~1|none~2|"
        store.add_many([ScoreRow(arch, "p", 1.0, 0.1, 0, 8), ScoreRow(other, "p", 2.0, 0.1, 0, 8)])
        assert len(corr.load_scores(tmp_path / "run.sqlite")) == 2
        store.add(ScoreRow(arch, "p", 3.0, 0.1, 1, 8))
    with pytest.raises(DataError, match=r"p of \|none~0.* under 2 settings \(seed 0, batch_size 8, data -; seed 1"):
        corr.load_scores(tmp_path / "run.sqlite")
    with RunStore(tmp_path / "run.sqlite") as store:  # its CSV export too
        store.export_csv(tmp_path / "run.csv")
    with pytest.raises(DataError, match=r"under 2 settings \(seed 0, batch_size 8; seed 1, batch_size 8\)"):
        corr.load_scores(tmp_path / "run.csv")


def test_markdown_and_csv(rob: RobustnessDataset, tmp_path: Path) -> None:
    result = corr.correlate(_scores(rob), rob, targets=["clean", "fgsm@8"], bootstrap=0)
    table = corr.markdown_table(result)
    lines = table.splitlines()
    assert lines[0] == "| proxy | clean | fgsm@8 |"
    assert lines[2].startswith("| good | ") and len(lines) == 4
    path = corr.write_csv(result, tmp_path / "out" / "correlations.csv")
    assert path.read_text().splitlines()[0] == ",".join(corr.COLUMNS)
    with pytest.raises(UnknownName):
        corr.markdown_table(result, ["pgd@8"])


def test_cli_end_to_end(rob: RobustnessDataset, tmp_path: Path) -> None:
    scores = tmp_path / "scores.csv"
    _scores(rob).to_csv(scores, index=False)
    out = tmp_path / "out"
    runner = CliRunner()
    base = ["correlate", "--scores", str(scores), "--robustness", str(rob.root), "--dataset", "cifar10"]
    res = runner.invoke(app, [*base, "--out", str(out), "--ensemble", "good+noise", "--bootstrap", "100"])
    assert res.exit_code == 0, res.output
    assert "| proxy | clean | fgsm@1 | fgsm@8 |" in res.stdout
    assert "| good+noise |" in res.stdout
    csv = pd.read_csv(out / "correlations.csv")
    assert list(csv.columns) == list(corr.COLUMNS)
    assert set(csv["target"]) == set(corr.target_names(rob))
    assert (out / "heatmap_spearman.png").stat().st_size > 1000
    assert (out / "scatter_fgsm@8.png").stat().st_size > 1000

    res = runner.invoke(
        app,
        [
            *base,
            "--out",
            str(tmp_path / "o2"),
            "--all",
            "--targets",
            "clean,croze_weather",
            "--no-figures",
            "--bootstrap",
            "0",
        ],
    )
    assert res.exit_code == 0, res.output
    csv = pd.read_csv(tmp_path / "o2" / "correlations.csv")
    assert set(csv["target"]) == {"clean", "croze_weather"}
    assert csv["n"].max() == len(rob.arch_strings)
    assert not (tmp_path / "o2" / "heatmap_spearman.png").exists()

    res = runner.invoke(app, [*base, "--out", str(tmp_path / "o3"), "--targets", "fgsm@3"])
    assert res.exit_code == 2
    assert "error:" in res.output and "epsilon" in res.output
    res = runner.invoke(
        app,
        [
            "correlate",
            "--scores",
            str(tmp_path / "nope.csv"),
            "--robustness",
            str(rob.root),
            "--out",
            str(tmp_path / "o4"),
        ],
    )
    assert res.exit_code == 2 and "not found" in res.output


def test_reproduces_independent_scipy_on_published_proxies(shared_data: Path) -> None:
    """NAS-Bench-Suite-Zero values vs the CIFAR-10 robustness data, unique architectures."""
    wide = pd.read_csv(shared_data / "zc_reference" / "nb201_zc_proxies_cifar10.csv")
    rob = RobustnessDataset(shared_data / "robustness")
    proxies = ["params", "synflow", "jacov", "plain"]
    long = wide.melt(id_vars="net_str", value_vars=proxies, var_name="proxy", value_name="value")
    long = long.rename(columns={"net_str": "arch"})
    targets = ["clean", "fgsm@8", "pgd@1", "apgd@8", "hrs_fgsm@8", "croze_weather", "croze_mean15"]
    result = corr.correlate(long, rob, targets=targets, bootstrap=0).set_index(["proxy", "target"])
    # independent: first architecture of each isomorph class in file order, plain scipy
    first = wide.assign(key=[rob.isomorph(s) for s in wide["net_str"]]).drop_duplicates("key")
    assert len(first) == 6285
    load = {
        c: rob.table("cifar10", c)
        for c in ["clean", "fgsm@Linf", "pgd@Linf", "aa_apgd-ce@Linf", *CORRUPTIONS]
    }
    key_row = {k: i for i, k in enumerate(rob.keys)}
    rows = np.array([key_row[k] for k in first["key"]])
    eps = {a: rob.epsilons(a) for a in ("fgsm", "pgd", "apgd")}
    clean = load["clean"][rows]
    fgsm8 = load["fgsm@Linf"][rows, eps["fgsm"].index(8.0)]
    ys = {
        "clean": clean,
        "fgsm@8": fgsm8,
        "pgd@1": load["pgd@Linf"][rows, eps["pgd"].index(1.0)],
        "apgd@8": load["aa_apgd-ce@Linf"][rows, eps["apgd"].index(8.0)],
        "hrs_fgsm@8": 2 * clean * fgsm8 / (clean + fgsm8),
    }
    for proxy in proxies:
        x = first[proxy].to_numpy()
        for name, y in ys.items():
            assert round(result.loc[(proxy, name), "spearman"], 3) == round(
                stats.spearmanr(x, y).statistic, 3
            )
        weather = np.mean(
            [
                np.mean([stats.spearmanr(x, load[c][rows, s]).statistic for s in range(5)])
                for c in ("snow", "fog", "frost")
            ]
        )
        assert round(result.loc[(proxy, "croze_weather"), "spearman"], 3) == round(weather, 3)
        mean15 = np.mean([stats.spearmanr(x, load[c][rows].mean(axis=1)).statistic for c in CORRUPTIONS])
        assert round(result.loc[(proxy, "croze_mean15"), "spearman"], 3) == round(mean15, 3)
    # anchors of TARGETS.md's first table
    assert round(result.loc[("params", "clean"), "spearman"], 3) == 0.780
    assert round(result.loc[("params", "fgsm@8"), "spearman"], 3) == 0.798
    # TARGETS.md's cc_weather and cc_mean15 columns are croze_weather and croze_mean15
    assert round(result.loc[("params", "croze_weather"), "spearman"], 3) == 0.699
    assert round(result.loc[("params", "croze_mean15"), "spearman"], 3) == 0.463


# ------------------------------------------------------------------ one grammar for targets
SAME_NAMES = ["clean", "fgsm@8", "hrs_pgd@1", "fog@3", "fog", "cc_weather", "cc_noise", "cc_mean"]


def test_target_grammar_round_trips_and_reads_old_spellings(rob: RobustnessDataset) -> None:
    from robnas.benchmarks import parse_target

    names = rob.target_names("cifar10", severities=True)
    assert len(names) == len(set(names))
    for name in names:
        target = parse_target(name)
        assert target.name == name == str(target)
        assert parse_target(target.name) == target
    old = {
        "cc_fog@3": "fog@3",
        "cc_fog": "fog",
        "cc_avg_acc": "cc_mean",
        "fgsm@8.0": "fgsm@8",
        " clean ": "clean",
    }
    for spelling, new in old.items():
        assert parse_target(spelling).name == new
        assert corr.canonical_name(spelling) == new
    assert corr.canonical_name("cc_mean15") == "croze_mean15"
    # results carry canonical names; two spellings of one target are one name
    result = corr.correlate(_scores(rob), rob, targets=["cc_fog@3", "cc_avg_acc"], bootstrap=0)
    assert set(result["target"]) == {"fog@3", "cc_mean"}
    with pytest.raises(ConfigError, match="repeat"):
        corr.build_targets(rob, "cifar10", ["fog@3", "cc_fog@3"])


def test_a_target_name_gives_the_same_values_in_objectives_and_correlate(rob: RobustnessDataset) -> None:
    from robnas import objectives, spaces

    space = spaces.get("nb201")
    ctx = objectives.ObjectiveContext(benchmark=str(rob.root))
    frame = _scores(rob)
    result = corr.correlate(frame, rob, targets=SAME_NAMES, bootstrap=0)
    tables = {c: rob.table("cifar10", c) for c in CORRUPTIONS}
    for name in SAME_NAMES:
        objective = objectives.make(f"bench:{name}", space, ctx)
        via_objective = np.array([objective.evaluate(a) for a in rob.arch_strings])
        via_reader = rob.target(rob.arch_strings, "cifar10", name)
        np.testing.assert_allclose(via_objective, via_reader, rtol=0, atol=1e-12)
        rows = rob.rows(rob.arch_strings)
        np.testing.assert_allclose(
            corr.build_targets(rob, "cifar10", [name]).accuracy(name)[rows], via_reader
        )
        for proxy in ("good", "noise"):
            x, key_rows = _first_of_class(rob, frame[frame["proxy"] == proxy])
            # correlate's statistic is against the very values the objective returns
            y = rob.target_values("cifar10", name)[key_rows]
            got = result[(result["proxy"] == proxy) & (result["target"] == name)]["spearman"].item()
            assert got == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)
    # cc_mean: mean over the 75 accuracies of each architecture, cc_weather over its 15
    arch = rob.arch_strings[7]
    row = rob.rows([arch])[0]
    assert objectives.make("bench:cc_mean", space, ctx).evaluate(arch) == pytest.approx(
        np.mean([tables[c][row] for c in CORRUPTIONS])
    )
    assert objectives.make("bench:cc_weather", space, ctx).evaluate(arch) == pytest.approx(
        np.mean([tables[c][row] for c in ("snow", "fog", "frost")])
    )


def test_bad_target_names_give_one_clear_error_listing_the_forms(rob: RobustnessDataset) -> None:
    from robnas import objectives, spaces
    from robnas.benchmarks import parse_target
    from robnas.errors import RobnasError

    space = spaces.get("nb201")
    ctx = objectives.ObjectiveContext(benchmark=str(rob.root))
    for bad in ("fgsm@x", "weather", "cc_fog@9", "fgsm", "", "clean@1"):
        with pytest.raises(UnknownName) as caught:
            parse_target(bad)
        assert isinstance(caught.value, RobnasError) and "\n" not in str(caught.value)
    with pytest.raises(UnknownName, match="valid forms: clean; ATTACK@EPS"):
        objectives.make("bench:weather", space, ctx)
    with pytest.raises(UnknownName, match="valid forms: clean; ATTACK@EPS.*croze_weather"):
        corr.build_targets(rob, "cifar10", ["weather"])
    # averaged statistics are not per-architecture values: the objective says what to use instead
    refusals = {
        "bench:croze_weather": "statistic.*cc_mean or cc_GROUP",
        "bench:cc_mean15": "croze_mean15",
        "bench:fgsm@3": "epsilon",
    }
    for spec, message in refusals.items():
        with pytest.raises(UnknownName, match=message):
            objectives.make(spec, space, ctx)
    with pytest.raises(UnknownName, match="known: croze_weather"):
        corr.build_targets(rob, "cifar10", ["croze_wether"])


# ------------------------------------------------------------------ other benchmarks, populations
def _nrb_scores(bench) -> pd.DataFrame:
    rng = np.random.default_rng(2)
    archs = bench.arch_strings
    pgd = bench.target(archs, "cifar10", "pgd@8")
    return pd.DataFrame(
        {
            "arch": archs * 2,
            "proxy": ["good"] * len(archs) + ["noise"] * len(archs),
            "value": np.r_[pgd + rng.normal(0, 0.05, len(archs)), rng.normal(size=len(archs))],
        }
    )


def test_nas_robbench_classes_and_strings_populations(tmp_path: Path) -> None:
    from nas_robbench_fixture import write_nas_robbench
    from robnas import benchmarks

    root = write_nas_robbench(tmp_path / "nrb", n_archs=120)
    bench = benchmarks.open("nas-robbench-201", root)
    frame = _nrb_scores(bench)
    result = corr.correlate(
        frame, f"nas-robbench-201:{root}", targets=["clean", "PGD@8.0", "aa@8"], population="classes,strings",
        bootstrap=200,
    )
    assert list(result["target"].unique()) == ["clean", "pgd@8", "aa@8"]
    assert set(result["population"]) == {"classes", "strings"}
    got = result.set_index(["proxy", "target", "population"])
    for proxy in ("good", "noise"):
        part = frame[frame["proxy"] == proxy].drop_duplicates(subset=None)
        first = part.assign(cls=[bench.isomorph(a) for a in part["arch"]]).drop_duplicates("cls")
        rows = bench.rows(list(first["arch"]))
        x = first["value"].to_numpy()
        w = bench.weights()[rows].astype(int)
        for target in ("clean", "pgd@8", "aa@8"):
            y = bench.target_values("cifar10", target)[rows]
            classes = got.loc[(proxy, target, "classes")]
            assert classes["n"] == len(x) == len(bench.keys)
            assert classes["spearman"] == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)
            assert classes["kendall"] == pytest.approx(stats.kendalltau(x, y).statistic, abs=1e-12)
            # strings: the statistics of the sample with each class repeated by its number of strings
            xe, ye = np.repeat(x, w), np.repeat(y, w)
            strings = got.loc[(proxy, target, "strings")]
            assert strings["n"] == len(x)
            assert strings["spearman"] == pytest.approx(stats.spearmanr(xe, ye).statistic, abs=1e-12)
            assert strings["kendall"] == pytest.approx(stats.kendalltau(xe, ye).statistic, abs=1e-12)
            top_x, top_y = stats.rankdata(xe) > 0.9 * len(xe), stats.rankdata(ye) > 0.9 * len(xe)
            assert strings["top10_precision"] == pytest.approx((top_x & top_y).sum() / top_x.sum())
            assert strings["spearman_lo"] <= strings["spearman"] <= strings["spearman_hi"]
    assert got.loc[("good", "pgd@8", "strings"), "spearman"] > 0.8
    with pytest.raises(UnknownName, match="aa@8"):
        corr.correlate(frame, bench, targets=["apgd@8"], bootstrap=0)
    with pytest.raises(ConfigError, match="population"):
        corr.correlate(frame, bench, targets=["clean"], population="everything", bootstrap=0)


def test_cli_benchmark_spec_and_robustness_spelling(rob: RobustnessDataset, tmp_path: Path) -> None:
    from nas_robbench_fixture import write_nas_robbench
    from robnas import benchmarks

    root = write_nas_robbench(tmp_path / "nrb", n_archs=120)
    scores = tmp_path / "s.csv"
    _nrb_scores(benchmarks.open("nas-robbench-201", root)).to_csv(scores, index=False)
    runner = CliRunner()
    out = tmp_path / "o"
    res = runner.invoke(
        app,
        ["correlate", "--scores", str(scores), "--benchmark", f"nas-robbench-201:{root}", "--dataset", "cifar10",
         "--targets", "clean,pgd@8,aa@8", "--out", str(out), "--bootstrap", "50"],
    )
    assert res.exit_code == 0, res.output
    csv = pd.read_csv(out / "correlations.csv")
    assert {"proxy", "target", "spearman", "kendall", "n", "population", "top1_precision"} <= set(csv.columns)
    assert set(csv["target"]) == {"clean", "pgd@8", "aa@8"} and set(csv["population"]) == {"classes", "strings"}
    assert "population strings" in res.stdout
    assert (out / "heatmap_spearman.png").is_file() and (out / "scatter_clean.png").is_file()
    # --robustness DIR is the spelling of --benchmark robustness:DIR
    rob_scores = tmp_path / "r.csv"
    _scores(rob).to_csv(rob_scores, index=False)
    args = ["--targets", "clean,fgsm@8", "--no-figures", "--bootstrap", "0", "--population", "classes"]
    a = runner.invoke(app, ["correlate", "--scores", str(rob_scores), "--robustness", str(rob.root),
                            "--out", str(tmp_path / "a"), *args])
    b = runner.invoke(app, ["correlate", "--scores", str(rob_scores), "--benchmark", f"robustness:{rob.root}",
                            "--out", str(tmp_path / "b"), *args])
    assert a.exit_code == b.exit_code == 0, a.output + b.output
    assert (tmp_path / "a" / "correlations.csv").read_text() == (tmp_path / "b" / "correlations.csv").read_text()
    bad = runner.invoke(app, ["correlate", "--scores", str(rob_scores), "--benchmark", f"nas-robench-201:{root}",
                              "--out", str(tmp_path / "c")])
    assert bad.exit_code == 2 and "nas-robbench-201" in bad.output
    none = runner.invoke(app, ["correlate", "--scores", str(rob_scores), "--out", str(tmp_path / "d")])
    assert none.exit_code == 2 and "--benchmark" in none.output


def test_cli_contract_on_tiny_robustbench(shared_data: Path, tmp_path: Path) -> None:
    from robnas import benchmarks

    folder = shared_data / "tiny_robustbench"
    if not folder.is_dir():
        pytest.skip(f"Tiny-RobustBench files absent ({folder})")
    bench = benchmarks.open("tiny-robustbench", folder)
    y = bench.target_values("cifar10", "pgd@8")
    noise = np.random.default_rng(0).normal(size=len(y))
    scores = tmp_path / "s.csv"
    pd.DataFrame({"arch": bench.keys * 2, "proxy": ["truthy"] * len(y) + ["noise"] * len(y),
                  "value": np.r_[y, noise]}).to_csv(scores, index=False)
    res = CliRunner().invoke(app, ["correlate", "--scores", str(scores), "--benchmark", f"tiny-robustbench:{folder}",
                                   "--targets", "clean,pgd@8", "--out", str(tmp_path / "o"), "--no-figures"])
    assert res.exit_code == 0, res.output
    csv = pd.read_csv(tmp_path / "o" / "correlations.csv").set_index(["proxy", "target"])
    assert (csv["n"] == len(y)).all() and set(csv["population"]) == {"classes"}
    assert csv.loc[("truthy", "pgd@8"), "kendall"] == pytest.approx(1.0)
    assert csv.loc[("noise", "pgd@8"), "kendall"] == pytest.approx(stats.kendalltau(noise, y).statistic)
