"""Search strategies, objectives and resumable runs on NAS-Bench-201 with cheap objectives."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

import robnas
from robnas import objectives, search, spaces
from robnas.errors import ConfigError, DataError, InvalidArchitecture, UnknownName
from robnas.objectives import OBJECTIVES, Objective, ObjectiveContext
from robnas.search import run_search
from robnas.spaces.nb201 import OPERATIONS
from robnas.store import RunStore

DEMO_ROBUSTNESS = Path(robnas.__file__).parent / "assets" / "demo" / "robustness"
CALLS: dict[str, int] = {}


class Fake(Objective):
    """Deterministic: the weighted count of operations (conv3x3 best), plus a small edge term."""

    def __init__(self, name: str, space, weights: dict[str, float], fail_at: int | None = None) -> None:
        super().__init__(space, f"fake:{name}")
        self.weights = weights
        self.fail_at = fail_at

    def _compute(self, arch):
        CALLS[self.key] = CALLS.get(self.key, 0) + 1
        if self.fail_at is not None and CALLS[self.key] == self.fail_at:
            raise KeyboardInterrupt
        value = sum(self.weights[op] for op in arch) + 0.01 * sum(
            i * OPERATIONS.index(op) for i, op in enumerate(arch)
        )
        return value, math.nan


#: a tiny Wsr-NAS run with more search epochs than the contract's budget
WSR_TINY = {
    "warmup_epochs": 1, "memory_epochs": 1, "search_epochs": 20, "C": 4, "layers": 3, "batch_size": 8,
    "train_batches": 1, "valid_batches": 1, "noise_batches": 1, "predictor_warmup_passes": 1,
    "predictor_passes": 1, "pgd_steps": 1, "noise_memory": 64,
}  # fmt: skip
WEIGHTS = {"none": 0.0, "skip_connect": 1.0, "nor_conv_1x1": 2.0, "nor_conv_3x3": 3.0, "avg_pool_3x3": 0.5}
SMALL = {"none": 5.0, "skip_connect": 1.0, "nor_conv_1x1": 0.5, "nor_conv_3x3": 0.0, "avg_pool_3x3": 2.0}
if "fake" not in OBJECTIVES:
    OBJECTIVES.register("fake", lambda arg, space, ctx: Fake("fake", space, WEIGHTS))
    OBJECTIVES.register("fake_small", lambda arg, space, ctx: Fake("small", space, SMALL))
    OBJECTIVES.register(
        "fake_m", lambda arg, space, ctx: Fake("m", space, {k: 10 * v + 1 for k, v in WEIGHTS.items()})
    )
    OBJECTIVES.register("fake_k", lambda arg, space, ctx: Fake("k", space, SMALL))
    OBJECTIVES.register("fake_crash", lambda arg, space, ctx: Fake("crash", space, WEIGHTS, fail_at=4))


def _check_run(result: search.SearchResult, budget: int, space_name: str = "nb201") -> None:
    archs = [r.arch for r in result.history]
    assert len(archs) == budget == result.evaluated
    assert len(set(archs)) == budget  # no duplicate evaluation
    assert [r.step for r in result.history] == list(range(1, budget + 1))
    space = spaces.get(space_name)
    assert all(space.canonical_string(a) == a for a in archs)
    assert result.best(1)[0].value == max(r.value for r in result.history)


@pytest.mark.parametrize(
    "strategy, options",
    [
        ("random", {}),
        ("topk", {}),
        ("evolution", {"init_pool": 5, "sample_pool": 3}),
        ("regularized-evolution", {"population": 5, "sample_size": 2}),
        ("optuna", {"n_startup_trials": 4}),
        ("optuna", {"sampler": "nsga2", "population_size": 4}),
        ("hnas", {"metric": "fake_m", "condition": "fake_k", "pool_size": 40, "probes": 3}),
        ("wsr-nas", WSR_TINY),
        ("wsr-naive", WSR_TINY),
    ],
)
def test_every_strategy_spends_its_budget_on_distinct_archs(strategy, options, tmp_path):
    if strategy.startswith("wsr"):  # one-shot DARTS searches: a tiny supernet on 16x16 images
        import numpy as np

        from robnas import data as data_lib

        images = data_lib.synthetic(32, size=16, seed=0)
        np.savez(tmp_path / "d.npz", x_train=images.x, y_train=images.y)
        context = ObjectiveContext(data=str(tmp_path / "d.npz"), batch_size=8)
        options = {**options, "search_epochs": 9}  # still more epochs than the budget, half the time
        result = run_search("darts", strategy, "params", 6, seed=3, options=options, context=context)
        assert result.status == "done"
        _check_run(result, 6, "darts")
        return
    result = run_search("nb201", strategy, "fake", 14, seed=3, options=options)
    assert result.status == "done"
    _check_run(result, 14)
    assert result.total.wall > 0 and result.session.cpu >= 0


@pytest.mark.parametrize(
    "strategy, options",
    [
        ("random", {}),
        ("topk", {}),
        ("evolution", {"init_pool": 5, "sample_pool": 4}),  # the budget ends mid-round
        ("regularized-evolution", {"population": 5, "sample_size": 2}),
        ("hnas", {"metric": "fake_m", "condition": "fake_k", "pool_size": 20, "probes": 3}),
    ],
)
def test_batches_on_worker_processes_give_the_serial_history(strategy, options, tmp_path):
    serial = run_search("nb201", strategy, "fake", 11, seed=4, options=options)
    pooled = run_search(
        "nb201", strategy, "fake", 11, seed=4, options=options, out=tmp_path / "s.sqlite", workers=2
    )
    assert pooled.status == serial.status == "done"
    assert [(r.step, r.arch, r.value, r.info) for r in pooled.history] == [
        (r.step, r.arch, r.value, r.info) for r in serial.history
    ]


def test_search_beats_random_on_average_with_evolution():
    # a smooth objective: regularized evolution should do at least as well as random in mean over seeds
    def best(strategy, options):
        return (
            sum(
                run_search("nb201", strategy, "fake", 60, seed=s, options=options).best(1)[0].value
                for s in range(4)
            )
            / 4
        )

    assert best("regularized-evolution", {"population": 10, "sample_size": 3}) >= best("random", {})


def test_evolution_is_a_non_elitist_chain_of_single_mutations():
    result = run_search("nb201", "evolution", "fake", 25, seed=1, options={"init_pool": 10, "sample_pool": 5})
    space = spaces.get("nb201")
    rounds: dict[int, list] = {}
    for r in result.history:
        rounds.setdefault(r.info["round"], []).append(r)
    assert len(rounds[0]) == 10
    best0 = max(rounds[0], key=lambda r: r.value)
    for r in rounds[1]:
        assert space.canonical_string(r.info["parent"]) == best0.arch
    # next parent: argmax of round 1 only (not the overall best), the chain is not elitist
    if 2 in rounds:
        best1 = max(rounds[1], key=lambda r: r.value)
        assert all(space.canonical_string(r.info["parent"]) == best1.arch for r in rounds[2])
    for r in result.history:
        if r.info["round"] > 0:
            parent, child = space.parse(r.info["parent"]), space.parse(r.arch)
            # each child is one edit of the unchanged parent (up to isomorphism), never an accumulated chain
            assert any(
                space.canonical_string(tuple(parent[:i]) + (op,) + tuple(parent[i + 1 :])) == r.arch
                for i in range(6)
                for op in OPERATIONS
            ), (parent, child)


def test_hnas_probes_then_bo_and_records_the_criterion():
    result = run_search(
        "nb201",
        "hnas",
        "fake",
        8,
        seed=0,
        options={"metric": "fake_m", "condition": "fake_k", "pool_size": 50, "probes": 4},
    )
    ts = [r.info["t"] for r in result.history[:4]]
    assert ts == pytest.approx([0.0, 1 / 3, 2 / 3, 1.0])
    assert all(r.info["c"] == pytest.approx(-2.0) for r in result.history[:4])
    assert all(math.isfinite(r.info["S"]) for r in result.history)
    assert any("hnas pool" in k for k in result.setup)


def test_hnas_criterion_formula():
    import numpy as np

    from robnas.search.hnas import criterion

    s = criterion(np.array([2.0, 0.0, 3.0]), np.array([4.0, 1.0, 9.0]), t=0.5, c=-1.0, scale=2.0)
    assert s[0] == pytest.approx(0.1 * abs(4 - 1) + 2.0)
    assert s[1] == math.inf
    assert s[2] == pytest.approx(0.1 * abs(9 - 1) + 3.0)


def test_optuna_multi_objective_pareto_front(tmp_path):
    result = run_search(
        "nb201",
        "optuna",
        "fake,fake_small",
        16,
        seed=0,
        out=tmp_path / "mo.sqlite",
        options={"sampler": "nsga2", "population_size": 4},
    )
    front = result.pareto()
    assert front and all(len(r.all_values()) == 2 for r in front)
    for r in front:  # nothing in the history dominates a front member
        assert not any(
            o.value >= r.value and o.values[0] >= r.values[0] and o.all_values() != r.all_values()
            for o in result.history
        )
    assert result.leaders(1) == front  # several objectives: the whole front, whatever k
    assert [b["step"] for b in result.summary(1)["best"]] == [r.step for r in front]


def test_resume_continues_history_without_reevaluating(tmp_path):
    out = tmp_path / "run.sqlite"
    opts = {"init_pool": 4, "sample_pool": 3}
    first = run_search("nb201", "evolution", "fake", 6, seed=5, out=out, options=opts)
    CALLS.clear()
    second = run_search("nb201", "evolution", "fake", 15, seed=5, out=out, options=opts)
    assert CALLS["fake:fake"] == 9  # only the new architectures
    assert [r.arch for r in second.history[:6]] == [r.arch for r in first.history]
    _check_run(second, 15)
    straight = run_search("nb201", "evolution", "fake", 15, seed=5, options=opts)
    assert [r.arch for r in straight.history] == [r.arch for r in second.history]  # replay is exact
    CALLS.clear()  # options spelled as text (the command line's -o) are the same run
    texts = run_search(
        "nb201", "evolution", "fake", 15, seed=5, out=out, options={k: str(v) for k, v in opts.items()}
    )
    assert texts.run == second.run and CALLS.get("fake:fake", 0) == 0


def test_interrupted_run_keeps_finished_rows_and_resumes(tmp_path):
    out = tmp_path / "run.sqlite"
    CALLS.clear()
    with pytest.raises(KeyboardInterrupt):
        run_search("nb201", "random", "fake_crash", 8, seed=2, out=out)
    with search.HistoryStore(out) as store:
        (record,) = store.runs()
        assert record.status == "interrupted"
        assert len(store.history(record.run)) == 3
    CALLS.clear()
    CALLS["fake:crash"] = 10  # past the crash point
    result = run_search("nb201", "random", "fake_crash", 8, seed=2, out=out)
    assert CALLS["fake:crash"] == 10 + 5
    _check_run(result, 8)


def test_bad_configs_are_rejected_with_clear_errors(tmp_path):
    with pytest.raises(UnknownName, match="strategy"):
        run_search("nb201", "annealing", "fake", 5)
    with pytest.raises(UnknownName, match="proxy 'nope'"):
        run_search("nb201", "random", "nope", 5)
    with pytest.raises(ConfigError, match="budget"):
        run_search("nb201", "random", "fake", 0)
    with pytest.raises(ConfigError, match="no option"):
        run_search("nb201", "evolution", "fake", 5, options={"pool": 3})
    with pytest.raises(ConfigError, match="init_pool"):
        run_search("nb201", "evolution", "fake", 5, options={"init_pool": "0"})
    with pytest.raises(ConfigError, match="single-objective"):
        run_search("nb201", "random", "fake,fake_small", 5)
    with pytest.raises(ConfigError, match="--benchmark"):
        run_search("nb201", "random", "bench:fgsm@8", 5)
    with pytest.raises(DataError, match="meta.json"):
        run_search("nb201", "random", "bench:fgsm@8", 5, context=ObjectiveContext(benchmark=str(tmp_path)))
    with pytest.raises(UnknownName, match="unknown robustness target 'speed'.*valid forms"):
        run_search(
            "nb201", "random", "bench:speed", 5, context=ObjectiveContext(benchmark=str(DEMO_ROBUSTNESS))
        )
    with pytest.raises(DataError, match="not found"):
        run_search(
            "nb201", "random", "synflow", 5, context=ObjectiveContext(scores=str(tmp_path / "none.csv"))
        )


def _demo_archs() -> list[str]:
    import json

    meta = json.loads((DEMO_ROBUSTNESS / "meta.json").read_text())
    return [v["nb201-string"] for v in meta["ids"].values()]


def test_benchmark_objective_within_the_demo_fixture():
    ctx = ObjectiveContext(benchmark=str(DEMO_ROBUSTNESS))
    archs = _demo_archs()
    result = run_search(
        "nb201",
        "regularized-evolution",
        "bench:fgsm@8",
        20,
        seed=0,
        context=ctx,
        candidates=archs,
        options={"population": 5, "sample_size": 2},
    )
    _check_run(result, 20)
    assert all(0.0 <= r.value <= 1.0 and not r.error for r in result.history)
    rob = ctx.robustness()
    best = result.best(1)[0]
    assert best.value == pytest.approx(rob.accuracy(best.arch, "cifar10", "fgsm@Linf", eps=8.0))
    cc = objectives.make("bench:cc_mean", spaces.get("nb201"), ctx).evaluate(best.arch)
    assert 0.0 < cc < 1.0


def test_benchmark_objective_after_adversarial_training(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from nas_robbench_fixture import write_nas_robbench
    from robnas import benchmarks
    from robnas.cli import app

    root = write_nas_robbench(tmp_path / "nrb", n_archs=120)
    bench = benchmarks.open("nas-robbench-201", root)
    ctx = ObjectiveContext(benchmark=f"nas-robbench-201:{root}")
    result = run_search("nb201", "random", "bench:pgd@8", 10, seed=0, context=ctx, candidates=bench.arch_strings)
    _check_run(result, 10)
    for r in result.history:
        assert r.value == bench.target(r.arch, "cifar10", "pgd@8") and not r.error
    space = spaces.get("nb201")
    aa = objectives.make("bench:AA@8", space, ObjectiveContext(benchmark=f"nas-robbench-201:{root}", dataset="ImageNet16-120"))
    assert aa.key.startswith("bench:aa@8|ImageNet16-120|NASRobBench201")
    assert aa.evaluate(bench.arch_strings[7]) == bench.target(7, "imagenet16-120", "aa@8")
    with pytest.raises(UnknownName, match="aa@8"):
        objectives.make("bench:apgd@8", space, ctx)
    with pytest.raises(ConfigError, match="nb201 space"):
        objectives.make("bench:pgd@8", spaces.get("darts"), ctx)
    res = CliRunner().invoke(
        app,
        ["search", "--out", str(tmp_path / "s.sqlite"), "--strategy", "random", "--objective", "bench:pgd@8",
         "--benchmark", f"nas-robbench-201:{root}", "--budget", "3"],
    )
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(
        app,
        ["search", "--out", str(tmp_path / "t.sqlite"), "--strategy", "random", "--objective", "bench:pgd@8",
         "--benchmark", f"nas-robbench-201:{tmp_path / 'nowhere'}", "--budget", "3"],
    )
    assert res.exit_code == 2 and "nowhere" in res.output


def test_score_table_long_format_ensemble_and_seconds(tmp_path):
    space = spaces.get("nb201")
    archs = sorted({space.canonical_string(space.sample(i)) for i in range(30)})
    csv = tmp_path / "scores.csv"
    lines = ["arch,proxy,value,seconds,seed,batch_size,error"]
    for i, a in enumerate(archs):
        lines += [f"{a},pa,{i},0.5,0,8,", f"{a},pb,{-i},0.25,0,8,"]
    csv.write_text("\n".join(lines) + "\n")
    ctx = ObjectiveContext(scores=str(csv))
    pa = objectives.make("pa", space, ctx)
    ev = pa.measure(archs[3])
    assert ev.value == 3 and ev.cost.reported == 0.5
    ens = objectives.make("pa+pb", space, ctx)  # opposite ranks: every architecture is in the middle
    assert ens.evaluate(archs[0]) == pytest.approx(0.5)
    result = run_search("nb201", "random", "pa", 10, seed=0, context=ctx, candidates=archs)
    assert all(r.cost.reported == 0.5 for r in result.history)
    assert result.evaluation_cost.reported == pytest.approx(5.0)
    assert set(r.arch for r in result.history) <= set(archs)


def test_computed_proxy_objective_matches_robnas_score_seeding():
    space = spaces.get("nb201")
    ctx = ObjectiveContext(data="synthetic:16", batch_size=4, seed=0)
    arch = space.canonical_string(space.sample(7))
    params = objectives.make("params", space, ctx)
    minus = objectives.make("-params", space, ctx)
    assert params.evaluate(arch) > 0
    assert minus.evaluate(arch) == -params.evaluate(arch)
    assert params.measure(arch).cost.cpu >= 0


def test_cli_search_runs_resumes_and_rejects(tmp_path):
    from typer.testing import CliRunner

    from robnas.cli import app

    runner = CliRunner()
    out = tmp_path / "cli.sqlite"
    args = [
        "search",
        "--out",
        str(out),
        "--strategy",
        "random",
        "--objective",
        "bench:pgd@8",
        "--benchmark",
        str(DEMO_ROBUSTNESS),
        "--scores",  # the excerpt's architectures: every lookup finds its row
        str(DEMO_ROBUSTNESS.parent / "nb201_cifar10.csv"),
        "--within-scores",
        "--budget",
        "3",
        "--seed",
        "1",
    ]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "bench:pgd@8" in first.output and "search cost" in first.output
    again = runner.invoke(app, [*args[:-4], "--budget", "5", "--seed", "1"])
    assert again.exit_code == 0, again.output
    with search.HistoryStore(out) as store:
        (record,) = store.runs()
        assert len(store.history(record.run)) == 5
    with RunStore(out) as store:
        summary = store.get_meta(f"search/{record.run}")
    assert summary["evaluated"] == 5 and summary["status"] == "done" and summary["objectives"] == [record.objective]
    best = sorted(store_history(out, record.run), key=lambda r: (-r.value, r.step))
    assert [(b["step"], b["arch"], b["values"]) for b in summary["best"]] == [(r.step, r.arch, [r.value]) for r in best]
    assert set(summary["cost"]) == {"evaluations", "setup", "sessions"}
    bad = runner.invoke(app, ["search", "--out", str(out), "--strategy", "nope", "--objective", "params"])
    assert bad.exit_code == 2 and "unknown search strategy" in bad.output


def test_short_training_objective_gives_a_validation_accuracy():
    space = spaces.get("nb201")
    ctx = ObjectiveContext(
        data="synthetic:40", seed=0, train={"epochs": 1, "batch_size": 20, "val_fraction": 0.25}
    )
    objective = objectives.make("train:standard", space, ctx)
    ev = objective.measure("|nor_conv_1x1~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|")
    assert 0.0 <= ev.value <= 1.0 and not ev.error and ev.cost.wall > 0
    with pytest.raises(ConfigError, match="not adversarial"):
        objectives.make("train:standard", space, ObjectiveContext(train={"metric": "robust"}))


def test_score_table_wide_format_with_seconds_columns(tmp_path):
    space = spaces.get("nb201")
    archs = sorted({space.canonical_string(space.sample(i)) for i in range(5)})
    csv = tmp_path / "wide.csv"
    csv.write_text(
        "net_str,name,pa,pa_s,pb\n" + "".join(f"{a},x{i},{i},0.1,{2 * i}\n" for i, a in enumerate(archs))
    )
    table = objectives.ScoreTable(csv, space)
    assert table.proxies == ["pa", "pb"] and table.has_seconds
    assert table.lookup(archs[2], "pa") == (2.0, 0.1)
    assert math.isnan(table.lookup(archs[2], "pb")[1])


@pytest.mark.parametrize(
    "strategy, options",
    [
        ("hnas", {"metric": "fake_m", "condition": "fake_k", "pool_size": 40, "probes": 3}),
        ("optuna", {"n_startup_trials": 3}),
    ],
)
def test_bo_strategies_resume_with_a_larger_budget(strategy, options, tmp_path):
    out = tmp_path / "bo.sqlite"
    first = run_search("nb201", strategy, "fake", 5, seed=2, out=out, options=options)
    CALLS.clear()
    second = run_search("nb201", strategy, "fake", 9, seed=2, out=out, options=options)
    assert CALLS["fake:fake"] == 4
    assert [r.arch for r in second.history[:5]] == [r.arch for r in first.history]
    _check_run(second, 9)


def test_computed_rank_ensemble_uses_a_fixed_reference_pool(tmp_path):
    space = spaces.get("nb201")
    ctx = ObjectiveContext(data="synthetic:8", batch_size=4, seed=0, reference_size=6)
    result = run_search(
        "nb201", "random", "params+l2_norm", 3, seed=0, out=tmp_path / "e.sqlite", context=ctx
    )
    assert all(0.0 <= r.value <= 1.0 for r in result.history)
    assert any("objective setup" in k and c.wall > 0 for k, c in result.setup.items())
    again = objectives.make("params+l2_norm", space, ctx)  # same key, fresh instance: same values
    assert again.evaluate(result.history[0].arch) == pytest.approx(result.history[0].value)


def test_cli_search_killed_with_sigterm_records_its_session(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "killed.sqlite"
    cmd = [sys.executable, "-m", "robnas", "search", "--space", "nb201", "--strategy", "random"]
    cmd += ["--objective", "croze", "--data", "synthetic:16", "--batch-size", "4", "--budget", "100000"]
    cmd += ["--arch-opt", "C=4", "--arch-opt", "N=1", "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            time.sleep(0.5)
            if out.exists():
                with search.HistoryStore(out) as store:
                    runs = store.runs()
                    if runs and len(store.history(runs[0].run)) >= 2:
                        break
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 128 + signal.SIGTERM, proc.stderr.read()
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
    with search.HistoryStore(out) as store:
        (record,) = store.runs()
        assert record.status == "interrupted"
        assert record.session.wall > 0 and len(store.history(record.run)) >= 2


def test_darts_croze_search_keeps_crozes_parameter_cap_by_default(tmp_path):
    """croze.md 4.2-4.3: sampled and mutated candidates over 6 M parameters (C=36, 20 cells) are redrawn."""
    space = spaces.get("darts-croze")
    assert space.max_params_m == 6.0 and spaces.get("darts").max_params_m is None
    result = run_search(
        "darts-croze",
        "evolution",
        "params",
        budget=6,
        seed=3,
        out=tmp_path / "s.sqlite",
        options={"init_pool": 3, "sample_pool": 3},
        context=ObjectiveContext(model={"C": 4, "layers": 5}),
    )
    sizes = [space.parameters_m(space.parse(r.arch)) for r in result.history]
    assert len(sizes) == 6 and max(sizes) <= 6.0
    lifted = run_search(
        "darts-croze",
        "random",
        "params",
        budget=30,
        seed=0,
        out=tmp_path / "s.sqlite",
        context=ObjectiveContext(model={"C": 4, "layers": 5}),
        space_options={"max_params_m": None},
    )
    assert lifted.run != result.run
    assert max(space.parameters_m(space.parse(r.arch)) for r in lifted.history) > 6.0
    with pytest.raises(ConfigError, match="takes no option"):
        spaces.get("nb201", max_params_m=6)


TINY_CELL_NETWORK = ObjectiveContext(model={"C": 4, "layers": 5})


@pytest.mark.parametrize(
    "space, space_options, context",
    [
        ("darts", None, TINY_CELL_NETWORK),
        ("darts-croze", None, TINY_CELL_NETWORK),  # CRoZe's 6 M cap on
        ("robnet", None, TINY_CELL_NETWORK),
        ("robnet-free", None, ObjectiveContext(model={"C": 2, "layers": 20})),
    ],
)
def test_optuna_searches_the_cell_spaces_through_their_categorical_choices(space, space_options, context):
    result = run_search(
        space,
        "optuna",
        "params",
        4,
        seed=1,
        options={"n_startup_trials": 2},
        context=context,
        space_options=space_options,
    )
    assert result.status == "done" and len({r.arch for r in result.history}) == 4
    s = spaces.get(space, **(space_options or {}))
    for row in result.history:  # every proposal decodes to a member of the space, within its cap
        arch = s.parse(row.arch)
        assert s.from_choices(s.to_choices(arch)) == arch and row.value > 0 and s.within_cap(arch)


def test_optuna_nsga2_multi_objective_on_the_darts_space(tmp_path):
    result = run_search(
        "darts",
        "optuna",
        "params,-l2_norm",
        6,
        seed=0,
        out=tmp_path / "mo.sqlite",
        options={"sampler": "nsga2", "population_size": 4},
        context=TINY_CELL_NETWORK,
    )
    assert result.status == "done" and result.evaluated == 6
    front = result.pareto()
    assert front and all(len(r.all_values()) == 2 for r in front)
    for r in front:
        assert not any(
            o.value >= r.value and o.values[0] >= r.values[0] and o.all_values() != r.all_values()
            for o in result.history
        )


def test_cli_optuna_search_on_the_robnet_space(tmp_path):
    from typer.testing import CliRunner

    from robnas.cli import app

    args = ["search", "--out", str(tmp_path / "cli.sqlite"), "--space", "robnet", "--strategy", "optuna"]
    args += ["--objective", "params", "--budget", "3", "--arch-opt", "C=4", "--arch-opt", "layers=5"]
    result = CliRunner().invoke(app, [*args, "-o", "sampler=nsga2", "-o", "population_size=2"])
    assert result.exit_code == 0, result.output
    with search.HistoryStore(tmp_path / "cli.sqlite") as store:
        (record,) = store.runs()
        assert record.space == "robnet" and len(store.history(record.run)) == 3


def test_optuna_tells_over_cap_proposals_as_failed_without_spending_budget(tmp_path):
    import optuna

    out = tmp_path / "cap.sqlite"
    result = run_search(
        "robnet",
        "optuna",
        "params",
        4,
        seed=0,
        out=out,
        options={"n_startup_trials": 2},
        context=TINY_CELL_NETWORK,
        space_options={"max_params_m": 4.5},
    )
    space = spaces.get("robnet")
    assert result.status == "done" and result.evaluated == 4
    assert all(space.parameters_m(space.parse(r.arch)) <= 4.5 for r in result.history)
    study = optuna.load_study(study_name=result.run, storage=f"sqlite:///{out}")
    failed = [t for t in study.trials if t.state == optuna.trial.TrialState.FAIL]
    assert failed and all("over the 4.5 M parameter cap" in t.user_attrs["rejected"] for t in failed)
    assert len(study.trials) == 4 + len(failed)
    # nothing fits: the search stops after max_rejected proposals in a row
    hopeless = run_search(
        "robnet",
        "optuna",
        "params",
        4,
        seed=0,
        options={"max_rejected": 3},
        context=TINY_CELL_NETWORK,
        space_options={"max_params_m": 0.01},
    )
    assert hopeless.status == "exhausted" and hopeless.evaluated == 0


def test_optuna_within_a_restricted_space_evaluates_members_only():
    from robnas.search.subset import SubsetSpace

    nb201 = spaces.get("nb201")
    candidates = [nb201.format(a) for a in nb201.all() if a[0] == "nor_conv_3x3"]
    members = set(SubsetSpace(nb201, candidates).members)
    result = run_search("nb201", "optuna", "fake", 6, seed=2, candidates=candidates)
    assert result.status == "done" and {r.arch for r in result.history} <= members
    chain = ("avg_pool_3x3", "none", "avg_pool_3x3", "none", "none", "nor_conv_1x1")  # needs edge0 = pool
    with pytest.raises(InvalidArchitecture, match="not among the"):
        SubsetSpace(nb201, candidates).from_choices(nb201.to_choices(chain))


# ---------------------------------------------------------------- nb201: table objectives and HNAS


def _nb201_csv(path: Path, archs: list[str]) -> Path:
    """A NAS-Bench-201 table in the layout of nb201_merged_by_index.csv: 12-epoch valid = fake, 200-epoch test."""
    import csv

    space = spaces.get("nb201")
    fake = Fake("table", space, WEIGHTS)
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["nb201_index", "arch_str", "c10valid_valid_acc_12ep__robot", "c10_test_acc_200ep"])
        for i, arch in enumerate(archs):
            value = fake.evaluate(arch)
            writer.writerow([i, arch, 50 + value, 80 + value / 2])
    return path


def test_nb201_objectives_read_the_12_and_200_epoch_tables(tmp_path):
    space = spaces.get("nb201")
    archs = [space.canonical_string(a) for a in space.all()[:40]]
    archs = list(dict.fromkeys(archs))
    ctx = ObjectiveContext(nb201=str(_nb201_csv(tmp_path / "nb201.csv", archs)))
    fake = Fake("check", space, WEIGHTS)
    val12 = objectives.make("nb201:valid@12", space, ctx)
    test200 = objectives.make("nb201:test@200", space, ctx)
    assert val12.key.startswith("nb201:cifar10-valid/valid@12|")
    assert objectives.make("nb201:cifar10-valid/valid@12", space, ctx).key == val12.key
    assert test200.key.startswith("nb201:cifar10/test@200|")
    for arch in archs[:10]:
        assert val12.evaluate(arch) == pytest.approx(50 + fake.evaluate(arch))
        assert test200.evaluate(arch) == pytest.approx(80 + fake.evaluate(arch) / 2)
    with pytest.raises(UnknownName, match="nb201:SPLIT@EPOCHS"):
        objectives.make("nb201:valid@13", space, ctx)
    with pytest.raises(UnknownName, match="no cifar10/valid"):
        objectives.make("nb201:cifar10/valid@12", space, ctx)
    with pytest.raises(UnknownName, match="no column for cifar100/test"):
        objectives.make("nb201:cifar100/test@200", space, ctx)
    with pytest.raises(ConfigError, match="NAS-Bench-201 table"):
        objectives.make("nb201:valid@12", space, ObjectiveContext())


def test_nb201_objective_on_the_real_table(shared_data):
    import csv

    path = shared_data / "nb201" / "nb201_merged_by_index.csv"
    with path.open(newline="") as fh:
        row = next(r for r in csv.DictReader(fh) if r["nb201_index"] == "1")
    space = spaces.get("nb201")
    ctx = ObjectiveContext(nb201=str(path))
    arch = row["arch_str"]
    assert space.canonical_string(arch) == arch
    assert objectives.make("nb201:valid@12", space, ctx).evaluate(arch) == pytest.approx(
        float(row["c10valid_valid_acc_12ep__robot"])
    )
    assert objectives.make("nb201:test@200", space, ctx).evaluate(arch) == pytest.approx(
        float(row["c10_test_acc_200ep"])
    )
    assert objectives.make("nb201:ImageNet16-120/test@200", space, ctx).evaluate(arch) == pytest.approx(
        float(row["im16_test_acc_200ep"])
    )


def test_hnas_with_its_own_objective_picks_the_criterion_argmin_and_bo_moves(tmp_path):
    """hnas_and_proxies.md 1.3: each query takes argmin S over the unselected pool; BO tunes (t, c)."""
    import numpy as np

    from robnas.search.hnas import criterion

    space = spaces.get("nb201")
    pool = sorted({space.canonical_string(space.sample(np.random.default_rng([7, i]))) for i in range(300)})[
        :80
    ]
    ctx = ObjectiveContext(nb201=str(_nb201_csv(tmp_path / "nb201.csv", pool)))
    options = {"metric": "fake_m", "condition": "fake_k", "pool_size": 1000, "probes": 4}
    result = run_search(
        "nb201", "hnas", "nb201:valid@12", 14, seed=1, context=ctx, candidates=pool, options=options
    )
    _check_run(result, 14)
    m_obj, k_obj = OBJECTIVES.get("fake_m")("", space, ctx), OBJECTIVES.get("fake_k")("", space, ctx)
    m = np.array([m_obj.evaluate(a) for a in pool])
    kappa = np.array([k_obj.evaluate(a) for a in pool])
    index = {a: i for i, a in enumerate(pool)}
    selected = np.zeros(len(pool), dtype=bool)
    scale = search.hnas.HNASSearch().scale
    for row in result.history:
        s = criterion(m, kappa, row.info["t"], row.info["c"], scale)
        s[selected] = np.inf
        pick = index[row.arch]
        assert not selected[pick] and s[pick] == s.min() == pytest.approx(row.info["S"])
        selected[pick] = True
    # the probes, then BO proposals that leave the probe grid (t = linspace, c = mid of [c_low, c_high])
    probes = [(r.info["t"], r.info["c"]) for r in result.history[:4]]
    assert probes == [pytest.approx((t, -2.0)) for t in (0.0, 1 / 3, 2 / 3, 1.0)]
    later = [(r.info["t"], r.info["c"]) for r in result.history[4:]]
    assert any(abs(c + 2.0) > 1e-6 for _, c in later)
    assert all(min(abs(t - pt) for pt, _ in probes) > 1e-6 or abs(c + 2.0) > 1e-6 for t, c in later)
    # the result is the queried architecture with the best 12-epoch validation accuracy
    val12 = objectives.make("nb201:valid@12", space, ctx)
    best = result.best(1)[0]
    assert best.value == max(val12.evaluate(r.arch) for r in result.history) == val12.evaluate(best.arch)


def test_cli_search_reads_an_nb201_table(tmp_path):
    from typer.testing import CliRunner

    from robnas.cli import app

    space = spaces.get("nb201")
    pool = sorted({space.canonical_string(space.sample(i)) for i in range(40)})
    table = _nb201_csv(tmp_path / "nb201.csv", pool)
    out = tmp_path / "s.sqlite"
    args = ["search", "--objective", "nb201:valid@12", "--strategy", "random", "--budget", "5"]
    result = CliRunner().invoke(app, [*args, "--nb201", str(table), "--out", str(out)])
    assert result.exit_code == 0, result.output
    missing = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "t.sqlite")])
    assert missing.exit_code == 2 and "NAS-Bench-201 table" in missing.output


def store_history(out: Path, run: str) -> list[search.HistoryRow]:
    with search.HistoryStore(out) as store:
        return store.history(run)


def test_what_a_search_needs_images_for():
    from robnas.search.config import SearchConfig, needs_data

    assert needs_data("random", None) == ["croze"]  # the default objective
    assert needs_data("random", "-params,bench:clean") == []
    assert needs_data("wsr-nas", "-params") == ["strategy wsr-nas"]
    assert SearchConfig(strategy="wsr-nas", scores="s.csv").needs_data() == ["strategy wsr-nas"]
    with pytest.raises(UnknownName, match="unknown search strategy 'nope'"):
        needs_data("nope", None)
