import csv
import math

import numpy as np
import pytest
from typer.testing import CliRunner

import robnas
from robnas import scoring
from robnas.cli import app
from robnas.store import RunStore, ScoreRow

SPACE = robnas.spaces.get("nb201")
TINY = {"C": 4, "N": 1}


def _archs(n, seed=0):
    rng = np.random.default_rng(seed)
    return [SPACE.format(SPACE.sample(rng)) for _ in range(n)]


def test_store_roundtrip_nan_and_resume(tmp_path):
    with RunStore(tmp_path / "run.sqlite") as store:
        store.add(ScoreRow("a", "p", 1.5, 0.1, 0, 8))
        store.add(ScoreRow("b", "p", math.nan, 0.1, 0, 8, error="boom"))
        assert store.done(0, 8) == {("a", "p"), ("b", "p")}
        assert store.done(1, 8) == set()
    with RunStore(tmp_path / "run.sqlite") as store:
        rows = {r.arch: r for r in store.rows()}
        assert rows["a"].value == 1.5 and math.isnan(rows["b"].value) and rows["b"].error == "boom"
        path = store.export_csv(tmp_path / "out.csv")
    header = next(csv.reader(open(path)))
    assert header == ["arch", "proxy", "value", "seconds", "seed", "batch_size", "error"]


def test_store_rejects_a_file_that_is_not_sqlite(tmp_path):
    bad = tmp_path / "bad.sqlite"
    bad.write_text("not a database")
    with pytest.raises(robnas.RobnasError, match="bad.sqlite"):
        RunStore(bad)


def test_values_do_not_depend_on_order_or_workers(tmp_path):
    data = robnas.data.synthetic(32)
    archs = _archs(6)
    values = []
    for i, (order, workers) in enumerate([(archs, 1), (archs[::-1], 1), (archs, 2)]):
        with RunStore(tmp_path / f"r{i}.sqlite") as store:
            scoring.score(
                "nb201",
                order,
                ["params", "grad_norm"],
                data,
                store,
                batch_size=8,
                seed=3,
                workers=workers,
                build_options=TINY,
            )
            values.append({(r.arch, r.proxy): r.value for r in store.rows()})
    assert values[0] == values[1] == values[2]
    assert len(values[0]) == 12


def test_rerun_skips_finished_pairs_and_records_invalid_archs(tmp_path):
    data = robnas.data.synthetic(32)
    archs = _archs(3) + ["|not_an_op~0|+|none~0|none~1|+|none~0|none~1|none~2|"]
    with RunStore(tmp_path / "r.sqlite") as store:
        first = scoring.score("nb201", archs[:2], ["params"], data, store, batch_size=8, build_options=TINY)
        assert first == 2
        # an interrupted run resumed with more archs only computes the missing ones
        second = scoring.score("nb201", archs, ["params"], data, store, batch_size=8, build_options=TINY)
        assert second == 2
        bad = [r for r in store.rows() if r.error]
        assert len(bad) == 1 and "not_an_op" in bad[0].error and math.isnan(bad[0].value)


def test_one_store_keeps_each_network_setting_apart(tmp_path):
    """The build options are part of a result's key: the same arch scored with C=4 and then C=8
    into one store is computed twice (not taken as done) and both values are kept."""
    data, arch = robnas.data.synthetic(32), _archs(1)[0]
    with RunStore(tmp_path / "r.sqlite") as store:
        for options in (TINY, {"C": 8, "N": 1}, TINY):
            scoring.score("nb201", [arch], ["params"], data, store, batch_size=8, build_options=options)
        rows = store.rows()
    assert len(rows) == 2 and {r.data.rpartition("|")[2] for r in rows} == {"C=4,N=1", "C=8,N=1"}
    small, large = sorted(r.value for r in rows)
    assert small < large


def test_cli_score_end_to_end(tmp_path):
    x = np.random.default_rng(0).integers(0, 256, (40, 32, 32, 3), dtype=np.uint8)
    np.savez(tmp_path / "d.npz", x_train=x, y_train=np.arange(40) % 10)
    arch_file = tmp_path / "archs.txt"
    arch_file.write_text("\n".join(_archs(3)) + "\n# a comment\n")
    args = [
        "score",
        "--space",
        "nb201",
        "--archs",
        str(arch_file),
        "--proxies",
        "params,synflow",
        "--data",
        str(tmp_path / "d.npz"),
        "--batch-size",
        "8",
        "--seed",
        "1",
        "--out",
        str(tmp_path / "run.sqlite"),
        "--csv",
        str(tmp_path / "out.csv"),
        "--arch-opt",
        "C=4",
        "--arch-opt",
        "N=1",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(open(tmp_path / "out.csv")))
    assert len(rows) == 6 and all(r["error"] == "" for r in rows)
    with RunStore(tmp_path / "run.sqlite") as store:  # built with --arch-opt: 4 channels, 1 cell per stage
        arch = next(r.arch for r in store.rows())
        assert {r.data.rpartition("|")[2] for r in store.rows()} == {"C=4,N=1"}
    built = sum(p.numel() for p in SPACE.build(SPACE.canonical(SPACE.parse(arch)), C=4, N=1).parameters()) / 1e6
    assert [float(r["value"]) for r in rows if r["arch"] == arch and r["proxy"] == "params"] == [built]
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0 and "0 new results" in again.output


def test_cli_errors_are_one_line(tmp_path):
    result = CliRunner().invoke(
        app, ["score", "--sample", "2", "--proxies", "nope", "--out", str(tmp_path / "r.sqlite")]
    )
    assert result.exit_code == 2
    assert "unknown proxy 'nope'" in result.output
    result = CliRunner().invoke(app, ["score", "--proxies", "params", "--out", str(tmp_path / "r.sqlite")])
    assert result.exit_code == 2 and "no architectures" in result.output


def test_cli_score_nb201_indices(tmp_path, shared_data):
    args = [
        "score",
        "--indices",
        "0-2",
        "--robustness",
        str(shared_data / "robustness"),
        "--proxies",
        "params",
        "--out",
        str(tmp_path / "r.sqlite"),
        "--csv",
        str(tmp_path / "s.csv"),
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(open(tmp_path / "s.csv")))
    assert rows[0]["arch"].startswith("|avg_pool_3x3~0|+|nor_conv_1x1~0|")  # NB201 index 0
    bad = CliRunner().invoke(app, [*args[:2], "99999", *args[3:]])
    assert bad.exit_code == 2 and "99999" in bad.output


def test_one_seeding_rule_for_score_and_search_objectives(tmp_path):
    """``robnas score`` and a proxy search objective take one path: the canonical form of the
    architecture, seeded from its canonical text, so an isomorphic spelling scores the same and
    the objective's value is the stored one."""
    from robnas import objectives

    rng = np.random.default_rng(1)
    arch = next(a for a in (SPACE.sample(rng) for _ in range(500)) if SPACE.format(a) != SPACE.canonical_string(a))
    text, canon = SPACE.format(arch), SPACE.canonical_string(arch)
    context = objectives.ObjectiveContext(data="synthetic:32", batch_size=8, seed=3, model=TINY)
    proxies = ["synflow", "croze"]
    with RunStore(tmp_path / "s.sqlite") as store:
        scoring.score("nb201", [text, canon], proxies, context.images(), store, batch_size=8, seed=3,
                      build_options=TINY)  # fmt: skip
        values = {(r.arch, r.proxy): r.value for r in store.rows()}
    for proxy in proxies:
        searched = objectives.make(proxy, SPACE, context).evaluate(text)
        assert (values[(text, proxy)], values[(canon, proxy)]) == (searched, searched), proxy
