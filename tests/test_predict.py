"""The few-shot robustness predictor: fit, save/load, the predict CLI and the predict: objective."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from typer.testing import CliRunner

from robnas import objectives, predict, spaces
from robnas.cli import app
from robnas.errors import DataError
from robnas.search import SubsetSpace, run_search
from robustness_fixture import write_robustness

SPACE = spaces.get("nb201")


def _lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.strip()]


def _archs(n: int, seed: int = 0) -> list[str]:
    everything = sorted({SPACE.canonical_string(a) for a in SPACE.all()})
    pick = np.random.default_rng(seed).choice(len(everything), size=n, replace=False)
    return [everything[int(i)] for i in pick]


def _scores(archs: list[str], seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Two proxies and a synthetic target: a monotone function of 'signal' plus an op effect."""
    rng = np.random.default_rng(seed)
    signal = rng.uniform(0, 10, size=len(archs))
    convs = np.array([SPACE.format(SPACE.parse(a)).count("nor_conv_3x3") for a in archs])
    target = np.exp(signal / 3) + 2.0 * convs
    rows = [(a, "signal", s) for a, s in zip(archs, signal, strict=True)]
    rows += [(a, "noise", v) for a, v in zip(archs, rng.normal(size=len(archs)), strict=True)]
    return pd.DataFrame(rows, columns=["arch", "proxy", "value"]), target


def test_predictor_recovers_a_synthetic_monotone_target() -> None:
    archs = _archs(300)
    scores, target = _scores(archs)
    table = predict.proxy_table(scores, SPACE)
    train, held = archs[:100], archs[100:]
    index = {a: i for i, a in enumerate(archs)}
    model = predict.fit(
        SPACE, train, target[:100], table.loc[train].to_numpy(), list(table.columns), "synthetic"
    )
    prediction = model.predict(SPACE, held, table.loc[held].to_numpy())
    truth = target[[index[a] for a in held]]
    assert stats.spearmanr(prediction, truth).statistic > 0.9
    assert model.features[:2] == ["proxy:signal", "proxy:noise"]
    assert "edge3=nor_conv_3x3" in model.features and "count:nor_conv_3x3" in model.features


def test_save_load_round_trip_and_corrupt_files(tmp_path: Path) -> None:
    archs = _archs(40)
    scores, target = _scores(archs)
    table = predict.proxy_table(scores, SPACE)
    model = predict.fit(SPACE, archs, target, table.to_numpy(), list(table.columns), "synthetic")
    path = predict.save(model, tmp_path / "m.json")
    again = predict.load(path)
    assert (again.target, again.proxies, again.n_train) == ("synthetic", ["signal", "noise"], 40)
    assert again.predict(SPACE, archs, table.to_numpy()) == pytest.approx(model.predict(SPACE, archs, table.to_numpy()))
    broken = tmp_path / "broken.json"
    broken.write_text(path.read_text()[:500])
    with pytest.raises(DataError, match="broken.json is corrupt"):
        predict.load(broken)
    body = path.read_text().replace("Tree=0", "Tree=zero")
    (tmp_path / "model.json").write_text(body)
    with pytest.raises(DataError, match="do not match its sha256"):
        predict.load(tmp_path / "model.json")
    with pytest.raises(DataError, match="does not exist"):
        predict.load(tmp_path / "absent.json")


def test_cli_fit_apply_and_one_line_errors(tmp_path: Path) -> None:
    rob = write_robustness(tmp_path / "rob", n_archs=400)
    listed = sorted({SPACE.canonical_string(s) for s in SPACE.all()[:400]})
    scores, _ = _scores(listed)
    scores.to_csv(tmp_path / "s.csv", index=False)
    model = tmp_path / "m.json"
    runner = CliRunner()
    fit = ["predict", "fit", "--scores", str(tmp_path / "s.csv"), "--target", "fgsm@8", "--out", str(model)]
    result = runner.invoke(app, [*fit, "--labels", str(rob), "--n", "20"])
    assert result.exit_code == 0, result.output
    assert predict.load(model).n_train == 20 and predict.load(model).labels.endswith("cifar10:fgsm@8")
    result = runner.invoke(
        app, ["predict", "apply", "--model", str(model), "--scores", str(tmp_path / "s.csv"), "--out", str(tmp_path / "p.csv")]
    )
    assert result.exit_code == 0, result.output
    assert len(pd.read_csv(tmp_path / "p.csv")) == len(listed)
    # labels (a CSV) for architectures without scores: refused with one line
    unscored = next(a for a in _archs(50, seed=3) if a not in set(listed))
    pd.DataFrame({"arch": [*listed[:10], unscored], "value": np.arange(11.0)}).to_csv(tmp_path / "l.csv", index=False)
    result = runner.invoke(app, [*fit, "--labels", str(tmp_path / "l.csv")])
    assert result.exit_code == 2, result.output
    (line,) = _lines(result.output)
    assert line.startswith("error: 1 of the 11 labelled architectures in") and "have no scores in s.csv" in line
    # a corrupt model file: one line
    (tmp_path / "bad.json").write_text("{not json")
    result = runner.invoke(
        app, ["predict", "apply", "--model", str(tmp_path / "bad.json"), "--scores", str(tmp_path / "s.csv"), "--out", str(tmp_path / "q.csv")]
    )
    assert result.exit_code == 2, result.output
    (line,) = _lines(result.output)
    assert line.startswith(f"error: predictor file {tmp_path / 'bad.json'} is corrupt")


def test_predict_objective_in_a_tiny_search(tmp_path: Path) -> None:
    archs = _archs(120, seed=5)
    scores, target = _scores(archs, seed=5)
    scores.to_csv(tmp_path / "s.csv", index=False)
    table = predict.proxy_table(scores, SPACE)
    pool = list(table.index)
    model = predict.fit(SPACE, pool[:60], target[[archs.index(a) for a in pool[:60]]],
                        table.loc[pool[:60]].to_numpy(), list(table.columns), "synthetic")
    path = predict.save(model, tmp_path / "m.json")
    context = objectives.ObjectiveContext(scores=str(tmp_path / "s.csv"))
    objective = objectives.make(f"predict:{path}", SPACE, context)
    expected = model.predict(SPACE, pool[60:], table.loc[pool[60:]].to_numpy())
    assert [objective.evaluate(a) for a in pool[60:]] == pytest.approx(expected)
    result = run_search(SubsetSpace(SPACE, pool[60:]), "evolution", f"predict:{path}", 20, seed=0,
                        context=context, options={"init_pool": 8, "sample_pool": 4})
    best = result.best(1)[0]
    assert best.value == pytest.approx(max(r.value for r in result.history))
    assert best.value == pytest.approx(expected[pool[60:].index(best.arch)])


def test_search_cli_knows_what_a_predictor_needs_and_refuses_a_bad_one(tmp_path: Path) -> None:
    from robnas.objectives import needs_data

    archs = _archs(30)
    rng = np.random.default_rng(0)
    model = predict.fit(SPACE, archs, rng.normal(size=30), rng.normal(size=(30, 2)), ["croze", "params"], "x")
    path = predict.save(model, tmp_path / "m.json")
    assert needs_data(f"predict:{path}") == ["croze"]
    assert needs_data(f"predict:{path}", has_scores=True) == []
    (tmp_path / "bad.json").write_text("[]")
    result = CliRunner().invoke(
        app, ["search", "--objective", f"predict:{tmp_path / 'bad.json'}", "--budget", "2", "--out", str(tmp_path / "s.db")]
    )
    assert result.exit_code == 2, result.output
    (line,) = _lines(result.output)
    assert line == f"error: predictor file {tmp_path / 'bad.json'} is not a robnas predictor; expected a predictor written by `robnas predict fit`"


def test_csv_labels_in_another_space(tmp_path: Path) -> None:
    darts = spaces.get("darts")
    rng = np.random.default_rng(0)
    archs = [darts.format(darts.sample(rng)) for _ in range(24)]
    signal = rng.uniform(size=24)
    pd.DataFrame({"arch": archs, "proxy": "signal", "value": signal}).to_csv(tmp_path / "s.csv", index=False)
    pd.DataFrame({"arch": archs[:16], "value": 2 * signal[:16]}).to_csv(tmp_path / "l.csv", index=False)
    model = predict.fit_files([tmp_path / "s.csv"], tmp_path / "l.csv", "train:pgd-at", darts)
    assert (model.space, model.n_train, model.labels) == ("darts", 16, "l.csv:train:pgd-at")
    ranked = predict.predict_table(model, [tmp_path / "s.csv"], darts)
    assert len(ranked) == 24 and ranked["value"].is_monotonic_decreasing


def _tiny_robustbench(folder: Path, archs: list[str], adv: np.ndarray) -> Path:
    """A Tiny-RobustBench file (its JSON format) of ``archs`` with adversarial accuracies ``adv`` (percent)."""
    import json

    darts = spaces.get("darts")
    entries = []
    for i, (text, a) in enumerate(zip(archs, adv, strict=True)):
        g = darts.parse(text)
        genes = {
            "normal": [list(e) for e in g.normal],
            "normal_concat": list(g.normal_concat),
            "reduce": [list(e) for e in g.reduce],
            "reduce_concate": list(g.reduce_concat),
        }
        entries.append({
            "seed": i,
            "net": {"genotype": genes, "depth": 5, "width": 4, "aux": False, "drop_prob": 0.0},
            "adversarial_param": {"adv_loss": "pgd", "epsilon": 8 / 255, "num_steps": 7, "step_size": 0.01},
            "max_test_top1_original": 70.0 + float(a) / 4,
            "max_test_top1_adv": float(a),
        })
    folder.mkdir()
    (folder / "robust_bench_seed_0_1000.json").write_text(json.dumps(entries))
    return folder


def test_fit_on_tiny_robustbench_and_apply_to_a_list_of_genotypes(tmp_path: Path) -> None:
    from robnas import scoring
    from robnas.data import load
    from robnas.store import RunStore

    darts = spaces.get("darts")
    rng = np.random.default_rng(0)
    archs = [darts.format(darts.sample(rng)) for _ in range(10)]
    npz = tmp_path / "d.npz"
    np.savez(npz, x_train=rng.integers(0, 256, size=(16, 32, 32, 3), dtype=np.uint8), y_train=rng.integers(0, 10, 16))
    build = {"C": 4, "layers": 5}
    with RunStore(tmp_path / "s.sqlite") as store:
        scoring.score("darts", archs[:8], ["params", "robust_zc"], load(str(npz), "train"), store,
                      batch_size=8, seed=0, build_options=build)
    params = predict.proxy_table([tmp_path / "s.sqlite"], darts)["params"]
    adv = 30.0 + 10.0 * params.loc[[darts.canonical_string(a) for a in archs[:8]]].rank().to_numpy() / 8
    bench = _tiny_robustbench(tmp_path / "trb", archs[:8], adv)
    model = tmp_path / "m.json"
    runner = CliRunner()
    result = runner.invoke(app, [
        "predict", "fit", "--scores", str(tmp_path / "s.sqlite"), "--benchmark", f"tiny-robustbench:{bench}",
        "--target", "pgd@8", "--arch-opt", "C=4", "--arch-opt", "layers=5", "--out", str(model),
    ])
    assert result.exit_code == 0, result.output
    fitted = predict.load(model)
    assert (fitted.space, fitted.target, fitted.n_train, fitted.labels) == ("darts", "pgd@8", 8, "trb:cifar10:pgd@8")
    assert fitted.scoring == {"batch_size": 8, "seed": 0, "build_options": build}
    (tmp_path / "cands.txt").write_text("\n".join(archs[4:]) + "\n")
    result = runner.invoke(app, [
        "predict", "apply", "--model", str(model), "--space", "darts", "--archs", str(tmp_path / "cands.txt"),
        "--data", str(npz), "--out", str(tmp_path / "ranked.csv"),
    ])
    assert result.exit_code == 0, result.output
    ranked = pd.read_csv(tmp_path / "ranked.csv")
    assert list(ranked.columns) == ["arch", "value"] and len(ranked) == 6
    assert ranked["value"].is_monotonic_decreasing
    # the proxies computed for the candidates are those of the scoring run (same batch, seed, settings)
    scored = predict.predict_table(fitted, [tmp_path / "s.sqlite"], darts).set_index("arch")["value"]
    again = ranked.set_index("arch")["value"]
    common = [a for a in again.index if a in scored.index]
    assert len(common) == 4 and again[common].to_numpy() == pytest.approx(scored[common].to_numpy(), rel=1e-5)
    # a --store that already holds the candidates under other settings: those rows are not mixed in
    with RunStore(tmp_path / "mixed.sqlite") as store:
        scoring.score("darts", archs[4:], ["params", "robust_zc"], load(str(npz), "train"), store,
                      batch_size=8, seed=0, build_options={"C": 8, "layers": 5})
    result = runner.invoke(app, [
        "predict", "apply", "--model", str(model), "--space", "darts", "--archs", str(tmp_path / "cands.txt"),
        "--data", str(npz), "--store", str(tmp_path / "mixed.sqlite"), "--out", str(tmp_path / "ranked2.csv"),
    ])
    assert result.exit_code == 0, result.output
    assert pd.read_csv(tmp_path / "ranked2.csv").equals(ranked)
    # no labels source, or both: one line
    result = runner.invoke(app, ["predict", "fit", "--scores", str(tmp_path / "s.sqlite"), "--target", "pgd@8",
                                 "--out", str(model)])
    assert result.exit_code == 2 and _lines(result.output)[0].startswith("error: give the labels")
    result = runner.invoke(app, ["predict", "apply", "--model", str(model), "--space", "darts",
                                 "--out", str(tmp_path / "r.csv")])
    assert result.exit_code == 2 and _lines(result.output)[0].startswith("error: give the candidates")


def test_committed_predictor_files_load():
    """Every model file under benchmarks/results/predictors loads with this robnas (format, digest)."""
    files = sorted((Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "predictors").glob("*.json"))
    assert files, "no committed predictor file"
    for path in files:
        model = predict.load(path)
        assert model.target and model.proxies, path
