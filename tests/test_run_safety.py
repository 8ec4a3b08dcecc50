"""Nothing lost, nothing mixed: outputs never replace inputs, runs keep their identity, stops stop."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import robnas
import robnas.store
from robnas.cli import app

SPACE = robnas.spaces.get("nb201")


def _lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.strip()]


def _archs(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [SPACE.format(SPACE.sample(rng)) for _ in range(n)]


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
        (["predict", "fit", "--scores", scores, "--labels", scores, "--target", "x", "--out", scores], scores),
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
