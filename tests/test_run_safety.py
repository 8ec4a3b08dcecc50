"""Nothing lost, nothing mixed: outputs never replace inputs, runs keep their identity, stops stop."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import robnas
import robnas.store
from robnas.cli import app
from robustness_fixture import demo_search_section

SPACE = robnas.spaces.get("nb201")


def _lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.strip()]


def _archs(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [SPACE.format(SPACE.sample(rng)) for _ in range(n)]


@pytest.fixture(autouse=True)
def _wide_console(monkeypatch):
    """One message, one line: the CLI's console does not wrap long paths in these tests."""
    from robnas.cli.app import console

    monkeypatch.setattr(console, "width", 1000)


def _invoke(args: list[str]):
    return CliRunner().invoke(app, [str(a) for a in args])


# ---- outputs that name an input


def _same_path_commands(tmp: Path) -> list[tuple[list[str], Path]]:
    archs = tmp / "archs.txt"
    archs.write_text("\n".join(_archs(2)) + "\n")
    store = tmp / "s.sqlite"
    scores = tmp / "s.csv"
    model = tmp / "p.json"
    data = tmp / "d.npz"
    robnas.store.RunStore(store).close()
    for f, text in ((scores, "arch,proxy,value\n"), (model, "{}"), (data, "not data")):
        f.write_text(text)
    score = ["score", "--proxies", "params"]
    return [
        (score + ["--archs", archs, "--out", store, "--csv", store], store),
        (score + ["--archs", archs, "--out", tmp / "t.sqlite", "--csv", archs], archs),
        (score + ["--archs", archs, "--out", archs], archs),
        (
            ["predict", "fit", "--scores", scores, "--labels", scores, "--target", "x", "--out", scores],
            scores,
        ),
        (["predict", "apply", "--model", model, "--scores", scores, "--out", model], model),
        (["predict", "apply", "--model", model, "--scores", scores, "--out", tmp / "." / "s.csv"], scores),
        (["search", "--scores", scores, "--objective", "params", "--out", scores], scores),
        (["train", "--arch", "zoo-x", "--data", data, "--out", data], data),
        (["evaluate", "--model", model, "--data", data, "--out", model], model),
        (["correlate", "--scores", scores, "--robustness", tmp, "--out", scores], scores),
        (["demo", "--data", data, "--out", data], data),
    ]


def test_an_output_naming_an_input_is_refused_on_every_verb(tmp_path):
    for args, victim in _same_path_commands(tmp_path):
        before = victim.read_bytes()
        result = _invoke(args)
        assert result.exit_code == 2, (args, result.output)
        (line,) = _lines(result.output)
        assert "would destroy" in line, line
        assert victim.read_bytes() == before, args


# ---- a stopped training run and the same command


ARCH = "nb201:|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"


def _train_args(out: Path, *extra: str) -> list[str]:
    return [
        "train", "--arch", ARCH, "--data", "synthetic:48", "--epochs", "1", "--batch-size", "16",
        "--arch-opt", "C=2", "--arch-opt", "N=1", "--out", str(out), "--no-progress", *extra,
    ]  # fmt: skip


def test_a_second_run_into_a_trained_folder_is_refused_unless_resume_or_overwrite(tmp_path):
    out = tmp_path / "run"
    assert _invoke(_train_args(out)).exit_code == 0
    before = (out / "last.pt").read_bytes()
    result = _invoke(_train_args(out))
    assert result.exit_code == 2, result.output
    (line,) = _lines(result.output)
    assert "already holds a training run" in line and "--resume" in line and "--overwrite" in line
    assert (out / "last.pt").read_bytes() == before
    assert _invoke(_train_args(out, "--resume")).exit_code == 0
    assert _invoke(_train_args(out, "--overwrite")).exit_code == 0
    assert (out / "log.csv").read_text().count("\n") == 2  # header + the new run's one epoch


def test_the_stop_line_of_train_names_resume(tmp_path, monkeypatch):
    import robnas.train

    def stopped(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(robnas.train, "fit", stopped)
    result = _invoke(_train_args(tmp_path / "run"))
    assert result.exit_code == 130
    assert "rerun with --resume to continue" in result.output
    score = _invoke(["score", "--sample", "1", "--proxies", "params", "--out", tmp_path / "s.sqlite"])
    assert score.exit_code == 0 and "--resume" not in score.output


# ---- a run's identity holds every input that changes its results


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (["--seed", "1"], "seed 0, not 1"),
        (["--subset", "40"], "subset null, not 40"),
        (["--batch-size", "8"], "batch_size 16, not 8"),
        (["--data", "synthetic:64"], "training images"),
        (["--set", "lr=0.05"], "recipe.lr 0.1, not 0.05"),
    ],
)
def test_resume_refuses_other_settings_and_names_the_field(tmp_path, change, field):
    out = tmp_path / "run"
    assert _invoke(_train_args(out)).exit_code == 0
    meta = (out / "meta.json").read_text()
    args = _train_args(out, "--resume")
    if change[0] in args:
        args[args.index(change[0]) + 1] = change[1]
    else:
        args += change
    result = _invoke(args)
    assert result.exit_code == 2, result.output
    (line,) = _lines(result.output)
    assert field in line, line
    assert (out / "meta.json").read_text() == meta


def _npz(path: Path, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    np.savez(path, x_train=rng.integers(0, 256, (16, 8, 8, 3), dtype=np.uint8), y_train=np.arange(16) % 10)
    return path


def test_score_keys_results_by_the_data_content(tmp_path):
    store, arch_file = tmp_path / "s.sqlite", tmp_path / "a.txt"
    arch_file.write_text(_archs(1)[0] + "\n")
    args = ["score", "--archs", arch_file, "--proxies", "snip", "--batch-size", "8", "--out", store]
    first = _invoke(args + ["--data", _npz(tmp_path / "d.npz", 0)])
    assert first.exit_code == 0 and "1 new results" in first.output, first.output
    again = _invoke(args + ["--data", _npz(tmp_path / "d.npz", 1)])  # same name and size, other images
    assert again.exit_code == 0 and "1 new results, 2 in" in again.output, again.output


def test_a_oneshot_objective_tells_supernets_of_one_file_name_apart(tmp_path):
    import torch

    from robnas import data
    from robnas.objectives import ObjectiveContext
    from robnas.objectives.oneshot import source
    from robnas.oneshot import train_supernet

    train_supernet(
        "nb201", data.load("synthetic:24"), "standard", tmp_path / "a", epochs=1, batch_size=8, C=2, N=1
    )
    (tmp_path / "b").mkdir()
    state = torch.load(tmp_path / "a" / "last.pt", weights_only=True)
    name = next(k for k, v in state["model"].items() if v.is_floating_point())
    state["model"][name] = state["model"][name] + 1
    torch.save(state, tmp_path / "b" / "last.pt")
    keys = [
        source(ObjectiveContext(data="synthetic:24", supernet=str(tmp_path / f)), SPACE).key
        for f in ("a/last.pt", "b/last.pt")
    ]
    assert keys[0] != keys[1]


# ---- one search per store


def test_a_second_search_on_a_store_in_use_is_refused_at_start(tmp_path):
    from robnas.store import ExclusiveUse

    out = tmp_path / "s.sqlite"
    args = ["search", "--strategy", "random", "--objective", "params", "--budget", "2", "--out", out]
    held = ExclusiveUse(out)  # what a running search holds
    try:
        result = _invoke(args)
        assert result.exit_code == 2, result.output
        assert _lines(result.output) == [
            f"error: {out}: search store in use by another process; wait for it to finish, or give another --out"
        ]
    finally:
        held.close()
    assert _invoke(args).exit_code == 0
    assert _invoke(args).exit_code == 0  # released at the end: the same command resumes


# ---- failures that depend on the machine are computed again


def test_a_failure_of_the_machine_is_retried_and_one_of_the_arch_only_when_asked(tmp_path, monkeypatch):
    import torch

    import robnas.proxies.base as proxy_base

    real = proxy_base.prepare
    store, arch_file = tmp_path / "s.sqlite", tmp_path / "a.txt"
    arch_file.write_text(_archs(1)[0] + "\n")
    args = ["score", "--archs", arch_file, "--proxies", "params", "--out", store]

    def failing(error):
        def prepare(*a, **k):
            raise error

        return prepare

    monkeypatch.setattr(proxy_base, "prepare", failing(torch.OutOfMemoryError("CUDA out of memory")))
    assert "1 failed" in _invoke(args).output
    monkeypatch.setattr(proxy_base, "prepare", real)
    again = _invoke(args)
    assert "1 new results, 1 in" in again.output and "failed" not in again.output, again.output

    store2 = tmp_path / "t.sqlite"
    args[-1] = store2
    monkeypatch.setattr(
        proxy_base, "prepare", failing(robnas.errors.ProxyError("params gave a non-finite value (nan)"))
    )
    assert "1 failed" in _invoke(args).output
    monkeypatch.setattr(proxy_base, "prepare", real)
    assert "0 new results, 1 in" in _invoke(args).output  # an architecture's own failure stays
    retried = _invoke(args + ["--retry-failed"])
    assert "1 new results, 1 in" in retried.output and "failed" not in retried.output, retried.output


# ---- the pipeline checks every stage first and keeps finished stages through a later fix

PIPELINE = """
out = "run"
{search}[train]
recipe = "standard"
epochs = 1
data = "synthetic:24"
batch_size = 12
device = "cpu"
model = {{ C = 2, N = 1 }}
[evaluate]
data = "synthetic:24"
attacks = ["fgsm@8"]
limit = 8
batch_size = 8
device = "cpu"
"""


def test_a_bad_later_stage_is_refused_before_the_search_and_its_fix_continues(tmp_path):
    from robnas.errors import ConfigError
    from robnas.pipeline import run_pipeline

    good = PIPELINE.format(search=demo_search_section(3))
    config, out = tmp_path / "p.toml", tmp_path / "run"
    for bad, section in (('attacks = ["fgsm@8"]', "[evaluate]"), ('recipe = "standard"', "[train]")):
        config.write_text(good.replace(bad, bad.replace("fgsm@8", "fgsn@8").replace("standard", "standrd")))
        with pytest.raises(ConfigError, match=rf"^\{section[:-1]}\] "):
            run_pipeline(config)
        assert not (out / "search.sqlite").exists() and not (out / "config.json").exists()
    config.write_text(good)
    run_pipeline(config)
    (out / "train.json").unlink()  # as if stopped while training
    (out / "evaluate.json").unlink()
    config.write_text(good.replace("epochs = 1", "epochs = 2"))
    lines: list[str] = []
    run_pipeline(config, log=lines.append)
    assert lines[:2] == [
        "train: its config changed before it finished; starting it again",
        "search: already done, kept",
    ]
    assert json.loads((out / "train.json").read_text())["epochs"] == 2
    config.write_text(good.replace("epochs = 1", "epochs = 3"))
    with pytest.raises(
        ConfigError, match=r"finished stage\(s\) train had a different config \(changed: \[train\] epochs\)"
    ):
        run_pipeline(config)


# ---- values that used to turn into something else


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--epochs", "0"], "error: --epochs must be at least 1, got 0"),
        (["--batch-size", "0"], "error: --batch-size must be at least 1, got 0"),
        (["--recipe", "pgd-at", "--set", "steps=0"], "error: recipe 'pgd-at': setting steps=0 must be >= 1"),
        (
            ["--recipe", "pgd-at", "--set", "steps=-1"],
            "error: recipe 'pgd-at': setting steps=-1 must be >= 1",
        ),
        (["--subset", "100"], "error: a subset of 100 images asked of synthetic, which has 48"),
    ],
)
def test_training_values_out_of_range_are_refused(tmp_path, extra, message):
    args = _train_args(tmp_path / "run")
    for flag in extra[::2]:
        if flag in args:
            i = args.index(flag)
            del args[i : i + 2]
    result = _invoke(args + extra)
    assert result.exit_code == 2, result.output
    assert _lines(result.output) == [message]


def test_a_oneshot_target_takes_eps_in_1_255():
    from robnas.errors import ConfigError
    from robnas.oneshot.robnets.objective import parse_target

    assert parse_target("pgd@8").eps == 8 / 255
    with pytest.raises(ConfigError, match="looks like a fraction"):
        parse_target("pgd@0.03")


@pytest.mark.parametrize(("flag", "value"), [("--bootstrap", "-5"), ("--eval-images", "-3")])
def test_supernet_analyse_refuses_negative_counts(tmp_path, flag, value):
    args = ["supernet", "analyse", "--store", tmp_path / "s.sqlite", "--supernet", tmp_path / "last.pt"]
    result = _invoke(args + ["--data", "synthetic:8", "--out", tmp_path / "an", flag, value])
    assert result.exit_code == 2, result.output
    (line,) = _lines(result.output)
    assert line.startswith("error: ") and f"got {value}" in line


# ---- bad input is a one-line error (exit 2), not an internal error


def _sample_args(tmp_path: Path, *extra: object) -> list[object]:
    return ["score", "--sample", "1", "--proxies", "params", "--out", tmp_path / "s.sqlite", *extra]


@pytest.mark.parametrize(
    ("args", "start"),
    [
        (
            lambda t: _sample_args(t, "--seed", "-1"),
            "error: --seed must be a whole number in [0, 2^63 - 1], got -1",
        ),
        (lambda t: _sample_args(t, "--seed", str(2**64)), "error: --seed must be a whole number"),
        (lambda t: _train_args(t / "r", "--seed", "-1"), "error: --seed must be a whole number"),
        (
            lambda t: _train_args(t / "r", "--arch-opt", "C=abc"),
            "error: build options {'C': 'abc'",
        ),
        (
            lambda t: _train_args(t / "r", "--set", "lr=-1"),
            "error: recipe 'standard': setting lr=-1.0 must be >= 0",
        ),
        (
            lambda t: [
                "predict",
                "fit",
                "--scores",
                t / "s.csv",
                "--labels",
                t / "l.csv",
                "--target",
                "x",
                "--out",
                t / "p.json",
                "--n",
                "-3",
            ],
            "error: n must be >= 1",
        ),
        (
            lambda t: ["demo", "--archs", "-5", "--out", t / "d"],
            "error: the number of architectures must be >= 1",
        ),
        (
            lambda t: [
                "search",
                "--strategy",
                "optuna",
                "--objective",
                "params",
                "--budget",
                "1",
                "--out",
                t / "s.sqlite",
                "--storage",
                "bogus://x",
            ],
            "error: optuna storage bogus://x: not a database SQLAlchemy knows",
        ),
        (lambda t: _sample_args(t)[:-1] + [t / "file" / "s.sqlite"], "error: "),
        (lambda t: _train_args(t / "file"), "error: "),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, start):
    (tmp_path / "file").write_text("a file where a folder is needed")
    result = _invoke(args(tmp_path))
    assert result.exit_code == 2, result.output
    (line,) = _lines(result.output)
    assert line.startswith(start), line


def test_resume_with_another_arch_names_the_arch(tmp_path):
    out = tmp_path / "run"
    assert _invoke(_train_args(out)).exit_code == 0
    args = _train_args(out, "--resume")
    args[args.index("--arch") + 1] = ARCH.replace("avg_pool_3x3~1", "nor_conv_1x1~1")
    result = _invoke(args)
    assert result.exit_code == 2, result.output
    (line,) = _lines(result.output)
    assert line.startswith(f"error: {out / 'last.pt'} is a run with arch ") and len(line) < 400 + len(str(out))


def test_errors_of_the_machine_files_are_one_line():
    import errno
    import sqlite3

    from robnas.cli.app import _environment_error

    assert _environment_error(OSError(errno.ENOSPC, "No space left on device", "/x/last.pt")) == (
        "cannot write /x/last.pt: No space left on device"
    )
    assert "Read-only" in _environment_error(OSError(errno.EROFS, "Read-only file system", "/ro/s.sqlite"))
    assert _environment_error(sqlite3.OperationalError("database or disk is full")).startswith("cannot write")
    assert _environment_error(ValueError("x")) == ""


# ---- secrets of a database URL are never printed


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://u@127.0.0.1:1/db?password=topsecret",
        "postgresql://u:topsecret@127.0.0.1:1/db",
        "postgresql://u:top@secret1@127.0.0.1:1/db",
    ],
)
def test_a_storage_password_is_never_printed(tmp_path, url):
    args = [
        "search",
        "--strategy",
        "optuna",
        "--objective",
        "params",
        "--budget",
        "1",
        "--out",
        tmp_path / "s.sqlite",
    ]
    result = _invoke(args + ["--storage", url])
    assert result.exit_code == 2, result.output
    (line,) = _lines(result.output)
    assert "secret" not in line and "***" in line, line


# ---- a search with no value at all is a failure


def test_a_search_in_which_every_evaluation_fails_exits_2_and_says_why(tmp_path):
    table = tmp_path / "nan.csv"
    table.write_text("arch,proxy,value\n" + "".join(f"{a},params,nan\n" for a in _archs(3)))
    args = ["search", "--scores", table, "--within-scores", "--objective", "params", "--strategy", "random"]
    result = _invoke(args + ["--budget", "2", "--out", tmp_path / "s.sqlite"])
    assert result.exit_code == 2, result.output
    (line,) = _lines(result.output)
    assert "every one of its 2 evaluations failed" in line and "non-finite value" in line, line


# ---- a predictor file's digest covers its meaning


def test_an_edited_predictor_target_or_proxy_order_is_refused(tmp_path):
    from robnas import predict

    rng = np.random.default_rng(0)
    archs = _archs(30)
    values = rng.normal(size=(30, 2))
    model = predict.fit(SPACE, archs, values[:, 0] + rng.normal(size=30) * 0.1, values, ["a", "b"], "fgsm@8")
    path = predict.save(model, tmp_path / "m.json")
    assert predict.load(path).target == "fgsm@8"
    body = json.loads(path.read_text())
    for field, value in (("target", "clean"), ("proxies", ["b", "a"])):
        (tmp_path / "edited.json").write_text(json.dumps({**body, field: value}))
        with pytest.raises(robnas.errors.DataError, match="do not match its sha256"):
            predict.load(tmp_path / "edited.json")


# ---- smaller: damaged stores, a wrong Ray address, leftovers, help text


def test_a_damaged_store_is_refused_before_any_work(tmp_path):
    import sqlite3

    store = tmp_path / "s.sqlite"
    assert _invoke(_sample_args(tmp_path, "--sample", "60")).exit_code == 0
    with sqlite3.connect(store) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page = db.execute("PRAGMA page_size").fetchone()[0]
    data = bytearray(store.read_bytes())
    for p in range(1, len(data) // page):  # every page's b-tree header but the first
        data[p * page : p * page + 12] = b"\xab" * 12
    store.write_bytes(bytes(data))
    result = _invoke(_sample_args(tmp_path, "--sample", "61"))
    assert result.exit_code == 2, result.output
    (line,) = _lines(result.output)
    assert line.startswith(f"error: {store}: the run store is damaged (SQLite: ")


def test_an_address_where_something_else_answers_is_not_taken_for_ray(tmp_path):
    import socket
    import threading
    import time

    server = socket.create_server(("127.0.0.1", 0))  # a plain TCP server of the test's own
    port = server.getsockname()[1]

    def answer() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                conn.recv(1024)
                conn.sendall(b"hello, I am not Ray\n")

    threading.Thread(target=answer, daemon=True).start()
    try:
        start = time.monotonic()
        result = _invoke(_sample_args(tmp_path, "--backend", "ray", "--address", f"127.0.0.1:{port}"))
        seconds = time.monotonic() - start
    finally:
        server.close()
    assert result.exit_code == 2, result.output
    (line,) = _lines(result.output)
    assert "something answers there, but not a Ray cluster" in line, line
    assert seconds < 5
    assert not (tmp_path / "s.sqlite").exists()


def test_refused_commands_leave_no_empty_store_and_no_temporary_csv(tmp_path):
    assert _invoke(_sample_args(tmp_path)[:4] + ["nope", "--out", tmp_path / "s.sqlite"]).exit_code == 2
    search = ["search", "--objective", "nope", "--budget", "1", "--out", tmp_path / "t.sqlite"]
    assert _invoke(search).exit_code == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    (tmp_path / "dir").mkdir()
    result = _invoke(_sample_args(tmp_path, "--csv", tmp_path / "dir"))
    assert result.exit_code == 2 and "is a folder" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir"]


def test_bracketed_words_survive_in_help():
    text = " ".join(CliRunner().invoke(app, ["pipeline", "--help"], env={"COLUMNS": "200"}).output.split())
    assert "[search], [train] and [evaluate]" in text
    text = " ".join(CliRunner().invoke(app, ["search", "--help"], env={"COLUMNS": "300"}).output.split())
    assert "robnas[ray]" in text
