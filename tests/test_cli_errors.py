"""Bad input ends in one clear line and exit status 2; other failures in one line and status 1."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest
from typer.testing import CliRunner

import robnas
from robnas import scoring
from robnas.cli import app
from robnas.errors import InvalidArchitecture
from robnas.objectives import needs_data

SPACE = robnas.spaces.get("nb201")


def _archs(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [SPACE.format(SPACE.sample(rng)) for _ in range(n)]


def _lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.strip()]


def test_bad_synthetic_count_is_one_line(tmp_path):
    result = CliRunner().invoke(
        app,
        ["score", "--sample", "1", "--proxies", "params", "--data", "synthetic:abc", "--out", str(tmp_path / "r.db")],
    )
    assert result.exit_code == 2, result.output
    assert _lines(result.output) == [
        "error: bad data 'synthetic:abc': N in synthetic:N must be a positive number of images, e.g. synthetic:64"
    ]


def test_an_arch_file_with_invalid_lines_is_refused_before_any_work(tmp_path):
    good = _archs(3)
    bad = "|nor_conv_9x9~0|+|none~0|none~1|+|none~0|none~1|none~2|"
    arch_file = tmp_path / "archs.txt"
    arch_file.write_text(f"# header\n{good[0]}\n{bad}\n\n{good[1]}\nnot an architecture\n{good[2]}\n")
    out = tmp_path / "r.db"
    result = CliRunner().invoke(
        app, ["score", "--archs", str(arch_file), "--proxies", "params", "--out", str(out)]
    )
    assert result.exit_code == 2, result.output
    (line,) = _lines(result.output)
    assert line.startswith(f"error: {arch_file}: 2 of 5 lines are not valid nb201 architectures")
    assert "line 3: unknown NAS-Bench-201 operation 'nor_conv_9x9'" in line and "line 6: " in line
    assert not out.exists() or sqlite3.connect(out).execute("SELECT COUNT(*) FROM results").fetchone() == (0,)


def test_read_arch_file_lists_the_first_bad_lines_and_counts_the_rest(tmp_path):
    arch_file = tmp_path / "archs.txt"
    arch_file.write_text("\n".join(["junk"] * 8 + _archs(1)))
    assert scoring.read_arch_file(arch_file) == ["junk"] * 8 + _archs(1)  # no space: no check
    with pytest.raises(InvalidArchitecture) as info:
        scoring.read_arch_file(arch_file, "nb201")
    message = str(info.value)
    assert "8 of 9 lines" in message and "line 5:" in message and "line 6:" not in message
    assert message.endswith("and 3 more)") and "\n" not in message


def test_internal_errors_are_one_line_with_a_hint_and_debug_shows_the_traceback(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise ValueError("shape mismatch\nin layer 3")

    monkeypatch.setattr(scoring, "score", broken)
    args = ["score", "--sample", "1", "--proxies", "params", "--out", str(tmp_path / "r.db")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1, result.output
    assert _lines(result.output)[-1] == (
        "internal error: ValueError: shape mismatch in layer 3; rerun with --debug or ROBNAS_DEBUG=1 "
        "for the traceback"
    )
    assert "Traceback" not in result.output
    for extra, env in ((["--debug"], {}), ([], {"ROBNAS_DEBUG": "1"})):
        result = CliRunner().invoke(app, [*extra, *args], env=env)
        assert result.exit_code == 1
        assert "Traceback (most recent call last)" in result.output and "in broken" in result.output
        assert "internal error: ValueError" in result.output


def test_data_dependent_proxies_need_data(tmp_path):
    out = str(tmp_path / "r.db")
    missing = CliRunner().invoke(app, ["score", "--sample", "1", "--proxies", "params,croze,snip", "--out", out])
    assert missing.exit_code == 2
    (line,) = _lines(missing.output)
    assert line.startswith("error: croze, snip depend on the images they see: pass --data PATH.npz")
    assert "params" not in line and "--data synthetic" in line
    free = CliRunner().invoke(app, ["score", "--sample", "1", "--proxies", "params", "--out", out])
    assert free.exit_code == 0, free.output
    assert "warning" not in free.output
    explicit = CliRunner().invoke(
        app,
        ["score", "--sample", "1", "--proxies", "snip", "--data", "synthetic:16", "--batch-size", "4", "--out", out],
    )
    assert explicit.exit_code == 0, explicit.output
    assert "warning: --data synthetic:16: snip computed on random images" in explicit.output


def test_search_objectives_that_need_data():
    assert needs_data("croze+synflow,-snip,bench:pgd@8,train:standard,-params") == [
        "croze",
        "snip",
        "train:standard",
    ]
    assert needs_data("croze+nwot", has_scores=True) == []
    assert needs_data("-params,synflow,zen,bench:clean") == []


def test_search_requires_data_for_a_data_dependent_objective(tmp_path):
    args = ["search", "--out", str(tmp_path / "s.db"), "--strategy", "random", "--budget", "2"]
    result = CliRunner().invoke(app, [*args, "--objective", "croze"])
    assert result.exit_code == 2
    assert _lines(result.output)[0].startswith("error: croze depends on the images it sees: pass --data")
    ok = CliRunner().invoke(app, [*args, "--objective", "-params"])
    assert ok.exit_code == 0, ok.output
