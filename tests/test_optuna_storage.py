"""Optuna storage URLs without a database server: one-line errors, and the claims that keep
several processes on one study from evaluating an architecture twice (on SQLite)."""

from __future__ import annotations

import importlib.util
import socket
import time

import optuna
import pytest

from robnas import spaces
from robnas.errors import ConfigError
from robnas.search import run_search
from robnas.search.optuna_search import categorical_distributions, mask_url, open_storage

pytestmark = pytest.mark.filterwarnings("ignore:Heartbeat of storage")

X = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
Y = "|nor_conv_1x1~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_database_is_one_clear_line_within_seconds():
    url = f"postgresql://bob:s3cret@127.0.0.1:{_free_port()}/robnas"  # nothing listens there
    start = time.perf_counter()
    with pytest.raises(ConfigError) as err:
        open_storage(url)
    assert time.perf_counter() - start < 10
    text = str(err.value)
    assert "s3cret" not in text and mask_url(url) in text and "cannot connect" in text
    assert "\n" not in text and "bob:***@" in text
    with pytest.raises(ConfigError, match="not a database URL"):
        open_storage("postgres-at-home")


def test_missing_driver_names_the_package():
    if importlib.util.find_spec("pg8000") is not None:
        pytest.skip("pg8000 is installed here")
    with pytest.raises(ConfigError, match=r"bob:\*\*\*@db.example:5432/x: the postgresql driver \(pg8000\)"):
        open_storage("postgresql+pg8000://bob:s3cret@db.example:5432/x")


def _study(url: str) -> optuna.Study:
    return optuna.create_study(
        storage=open_storage(url), study_name="s", directions=["maximize"], load_if_exists=True
    )


def _claim(study: optuna.Study, arch: str, owner: str) -> optuna.Trial:
    """A trial that another process is evaluating: running, its arch claimed, heartbeat fresh."""
    trial = study.ask(categorical_distributions(spaces.get("nb201")))
    trial.set_user_attr("arch", arch)
    trial.set_user_attr("owner", owner)
    study._storage.record_heartbeat(trial._trial_id)
    return trial


def test_claims_of_other_processes_are_respected(tmp_path):
    nb201 = spaces.get("nb201")
    url = f"sqlite:///{tmp_path / 'study.db'}"
    options = {"storage": url, "study_name": "s"}
    study = _study(url)
    other = _claim(study, X, "another process")
    study.enqueue_trial(nb201.to_choices(nb201.parse(X)))  # proposed first: being evaluated elsewhere
    study.enqueue_trial(nb201.to_choices(nb201.parse(Y)))
    result = run_search("nb201", "optuna", "params", 1, seed=0, out=tmp_path / "a.db", options=options)
    assert [r.arch for r in result.history] == [Y]
    trials = _study(url).get_trials(deepcopy=False)
    assert trials[1].user_attrs["rejected"] == f"being evaluated by trial {other.number}"
    assert trials[1].state == optuna.trial.TrialState.FAIL

    study.tell(other, 0.5)  # the other process finishes: X is answered with its value, not evaluated
    study.enqueue_trial(nb201.to_choices(nb201.parse(X)))
    result = run_search("nb201", "optuna", "params", 3, seed=0, out=tmp_path / "a.db", options=options)
    assert X not in {r.arch for r in result.history} and len(result.history) == 2
    repeat = next(t for t in _study(url).get_trials(deepcopy=False) if "repeat_of" in t.user_attrs)
    assert repeat.user_attrs["repeat_of"] == other.number and repeat.values == [0.5]


def test_a_resumed_run_releases_the_claims_its_killed_session_left(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    options = {"storage": url, "study_name": "s"}
    out = tmp_path / "a.db"
    first = run_search("nb201", "optuna", "params", 1, seed=0, out=out, options=options)
    owner = f"{first.run}@{socket.gethostname()}:{out.resolve()}"
    stale = _claim(_study(url), X, owner)  # as if killed while evaluating X
    run_search("nb201", "optuna", "params", 2, seed=0, out=out, options=options)
    assert _study(url).trials[stale.number].state == optuna.trial.TrialState.FAIL


def test_cli_storage_errors_are_one_line(tmp_path):
    from typer.testing import CliRunner

    from robnas.cli import app

    url = f"postgresql://bob:s3cret@127.0.0.1:{_free_port()}/robnas"
    args = ["search", "--out", str(tmp_path / "s.sqlite"), "--objective", "params", "--budget", "2"]
    result = CliRunner().invoke(app, [*args, "--strategy", "optuna", "--storage", url, "--study-name", "s"])
    assert result.exit_code == 2
    (line,) = result.output.strip().splitlines()
    assert line.startswith("error: optuna storage postgresql://bob:***@127.0.0.1") and "s3cret" not in line
    result = CliRunner().invoke(app, [*args, "--strategy", "random", "--storage", url])
    assert result.exit_code == 2 and "--storage applies to --strategy optuna" in result.output


def test_a_result_outlives_its_trial_failed_as_stale_meanwhile(tmp_path, monkeypatch):
    from robnas.search.base import SearchContext

    url = f"sqlite:///{tmp_path / 'study.db'}"
    evaluate_all = SearchContext.evaluate_all

    def slow(self, arch, info=None):  # another process judges the trial stale while it runs
        values = evaluate_all(self, arch, info)
        study = _study(url)
        for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
            study.tell(t.number, state=optuna.trial.TrialState.FAIL)
        return values

    monkeypatch.setattr(SearchContext, "evaluate_all", slow)
    options = {"storage": url, "study_name": "s"}
    result = run_search("nb201", "optuna", "params", 2, seed=0, out=tmp_path / "a.db", options=options)
    complete = _study(url).get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert sorted(t.user_attrs["arch"] for t in complete) == sorted(r.arch for r in result.history)
    assert [t.values[0] for t in complete] == [r.value for r in result.history]
