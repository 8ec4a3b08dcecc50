"""robnas.evaluate and ``robnas evaluate``: specs, the table, the summary, models by spec, the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from robnas import evaluate as ev
from robnas import models, spaces, targets
from robnas.cli import app
from robnas.errors import ConfigError, DataError, UnknownName

ARCH = "|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|avg_pool_3x3~0|none~1|skip_connect~2|"


def tiny_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10)
    )


def data(n: int = 10, size: int = 16):
    g = torch.Generator().manual_seed(0)
    return torch.rand(n, 3, size, size, generator=g), torch.randint(0, 10, (n,), generator=g)


def test_parse_specs():
    assert ev.parse_attack("pgd@8:steps=20,alpha=2") == [
        ("pgd", {"eps": 8 / 255, "steps": 20, "alpha": 2 / 255})
    ]
    assert ev.parse_attack("cw") == [("cw", {})]
    assert ev.parse_attack("pgd@4:random_start=false") == [("pgd", {"eps": 4 / 255, "random_start": False})]
    assert len(ev.parse_attack("preset:wsr-spectrum")) == 8
    assert targets.split_specs("fgsm@8,pgd@8:steps=20,alpha=2") == ["fgsm@8", "pgd@8:steps=20,alpha=2"]
    assert targets.split_specs(["fgsm@8", "cw"]) == ["fgsm@8", "cw"]
    assert ev.parse_corruption("fog@3") == [("fog", 3)]
    assert ev.parse_corruption("fog") == [("fog", s) for s in range(1, 6)]
    assert len(ev.parse_corruption("all")) == 75
    assert ev.parse_corruption("snow@2+5") == [("snow", 2), ("snow", 5)]
    with pytest.raises(UnknownName):
        ev.parse_attack("pgdx@8")
    with pytest.raises(ConfigError, match=r"\(0, 1\]"):
        ev.parse_attack("pgd@300")
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        ev.parse_attack("pgd@8:steps")
    with pytest.raises(UnknownName):
        ev.parse_corruption("mist")
    with pytest.raises(ConfigError, match="1-5"):
        ev.parse_corruption("fog@9")
    assert ev.attack_label("pgd", {"eps": 8 / 255, "steps": 20}) == "pgd@8:steps=20"


def test_run_table():
    model = tiny_model()
    x, y = data()
    seen = []
    rows = ev.run(
        model,
        (x, y),
        attacks=["fgsm@8", "pgd@4:steps=2", ("cw", {"steps": 2})],
        corruptions=["fog@1", ("contrast", 5)],
        batch_size=4,
        device="cpu",
        on_row=seen.append,
    )
    assert [r["label"] for r in rows] == [
        "clean",
        "fgsm@8",
        "pgd@4:steps=2",
        "cw:steps=2",
        "fog@1",
        "contrast@5",
    ]
    assert seen == rows
    for r in rows:
        assert set(r) == set(ev.COLUMNS) and r["n"] == 10 and 0 <= r["accuracy"] <= 1
        assert r["accuracy"] == r["correct"] / r["n"]
    fgsm, pgd, cw = rows[1:4]
    assert fgsm["eps"] == pytest.approx(8 / 255) and fgsm["eps_255"] == pytest.approx(8)
    assert fgsm["linf_mean"] <= 8 / 255 + 1e-6 and pgd["linf_mean"] <= 4 / 255 + 1e-6
    assert cw["eps"] is None and cw["l2_mean"] >= 0
    assert rows[-1]["severity"] == 5 and json.loads(rows[-1]["params"]) == {"preset": "imagenet16"}
    df = ev.to_dataframe(rows)
    assert list(df.columns) == list(ev.COLUMNS) and len(df) == 6
    limited = ev.run(model, (x, y), batch_size=3, limit=5, device="cpu")
    assert limited[0]["n"] == 5


def test_corruption_preset_follows_the_image_size():
    assert ev.default_preset(16) == "imagenet16"
    assert ev.default_preset(32) == "cifar" and ev.default_preset(32, 32) == "cifar"
    assert ev.default_preset(224) == "imagenet"
    for height, width in ((64, 64), (28, 28), (256, 256), (32, 48)):
        with pytest.raises(ConfigError, match=f"{height}x{width}.*--corruption-preset"):
            ev.default_preset(height, width)
    seen = []
    big = data(4, size=64)
    with pytest.raises(ConfigError, match="64x64"):  # refused before any row is computed
        ev.run(tiny_model(), big, corruptions=["fog@1"], device="cpu", on_row=seen.append)
    assert seen == []
    rows = ev.run(tiny_model(), big, corruptions=["fog@1"], device="cpu", corruption_preset="cifar")
    assert json.loads(rows[1]["params"]) == {"preset": "cifar"}
    assert ev.run(tiny_model(), big, attacks=["fgsm@8"], device="cpu")[1]["n"] == 4  # no corruption, no preset


def test_run_in_folder_keeps_finished_rows(tmp_path):
    model, pair = tiny_model(), data(8)
    settings = {"model": "tiny", "seed": 0}
    first = ev.run_in_folder(tmp_path, settings, model, pair, ["fgsm@8"], ["fog@1"], device="cpu")
    doc = json.loads((tmp_path / "evaluation.json").read_text())
    assert doc["meta"]["complete"] and doc["meta"]["settings"] == settings and doc["rows"] == first
    lines, computed = [], []
    second = ev.run_in_folder(
        tmp_path,
        settings,
        model,
        pair,
        ["fgsm@8", "pgd@4:steps=2"],
        ["fog@1"],
        device="cpu",
        log=lines.append,
        on_row=computed.append,
    )
    assert [r["label"] for r in second] == ["clean", "fgsm@8", "pgd@4:steps=2", "fog@1"]
    assert [r["label"] for r in computed] == ["pgd@4:steps=2"]
    assert [second[i] for i in (0, 1, 3)] == first  # kept as they were, seconds included
    assert lines == [f"{tmp_path / 'evaluation.json'}: kept 3 finished rows, computing 1"]
    lines.clear()
    third = ev.run_in_folder(tmp_path, settings, model, pair, ["fgsm@8"], device="cpu", log=lines.append)
    assert [r["label"] for r in third] == ["clean", "fgsm@8", "pgd@4:steps=2", "fog@1"]  # nothing lost
    assert "2 earlier rows not requested now stay in the table" in lines[0]
    with pytest.raises(ConfigError, match="different settings .*changed: seed"):
        ev.run_in_folder(tmp_path, {**settings, "seed": 1}, model, pair, device="cpu")


def test_run_reads_cifar_c_files(tmp_path):
    x = np.random.default_rng(0).integers(0, 256, (50, 32, 32, 3), dtype=np.uint8)
    np.save(tmp_path / "fog.npy", x)
    np.save(tmp_path / "labels.npy", np.arange(50, dtype=np.uint8) % 10)
    clean = (torch.rand(6, 3, 32, 32), torch.zeros(6, dtype=torch.long))
    rows = ev.run(tiny_model(), clean, corruptions=["fog@2"], corruption_root=tmp_path, device="cpu", limit=6)
    assert rows[1]["n"] == 6 and rows[1]["label"] == "fog@2"


def _row(kind, name, accuracy, eps=None, severity=None, label=None):
    row = {c: None for c in ev.COLUMNS}
    row.update(kind=kind, name=name, accuracy=accuracy, eps=eps, severity=severity, label=label or name)
    return row


def test_summary_metrics():
    table = [
        _row("clean", "clean", 0.8),
        _row("attack", "pgd", 0.4, eps=0.03, label="pgd@7.65"),
        _row("attack", "pgd", 0.2, eps=0.1, label="pgd@25.5"),
        _row("attack", "pgd", 0.1, eps=0.25, label="pgd@63.75"),
        _row("corruption", "fog", 0.7, severity=1),
        _row("corruption", "fog", 0.5, severity=2),
        _row("corruption", "snow", 0.6, severity=1),
    ]
    s = ev.summary(table, eps_range=(0.03, 0.1))
    assert s["clean_accuracy"] == 0.8
    assert s["robust_accuracy"]["pgd@7.65"] == 0.4
    assert s["hrs"]["pgd@7.65"] == pytest.approx(2 * 0.8 * 0.4 / 1.2)
    assert s["avg_robust_accuracy"]["pgd"] == pytest.approx(0.3)
    assert ev.summary(table)["avg_robust_accuracy"]["pgd"] == pytest.approx(0.7 / 3)
    assert s["corruption_accuracy"] == {"fog": pytest.approx(0.6), "snow": pytest.approx(0.6)}
    assert s["mean_corruption_accuracy"] == pytest.approx(0.6)
    baseline = [
        _row("corruption", "fog", 0.5, severity=1),
        _row("corruption", "fog", 0.3, severity=2),
        _row("corruption", "snow", 0.2, severity=1),
    ]
    s = ev.summary(table, baseline=baseline)
    assert s["ce"]["fog"] == pytest.approx(100 * (0.3 + 0.5) / (0.5 + 0.7))
    assert s["ce"]["snow"] == pytest.approx(100 * 0.4 / 0.8)
    assert s["mce"] == pytest.approx((s["ce"]["fog"] + s["ce"]["snow"]) / 2)


def test_plot_writes_figures(tmp_path):
    rows = ev.run(tiny_model(), data(6), attacks=["fgsm@2", "fgsm@8"], corruptions=["fog@1"], device="cpu")
    paths = ev.plot(rows, tmp_path)
    assert {p.name for p in paths} == {"accuracy_vs_eps.png", "corruptions.png"}
    assert all(p.stat().st_size > 1000 for p in paths)
    assert [p.name for p in ev.plot(rows[:2], tmp_path / "a")] == ["accuracy_vs_eps.png"]
    assert [p.name for p in ev.plot([rows[0], rows[-1]], tmp_path / "c")] == ["corruptions.png"]
    assert ev.plot(rows[:1], tmp_path / "none") == []


def test_resolve_model(tmp_path):
    net = spaces.get("nb201").build(ARCH, C=4, N=1)
    torch.save({"model": net.state_dict(), "epoch": 1}, tmp_path / "w.pt")
    model, info = models.resolve_model(f"nb201:{ARCH}", 10, tmp_path / "w.pt", C=4, N=1)
    x = torch.rand(2, 3, 16, 16)
    assert torch.allclose(model.eval()(x), net.eval()(x))
    assert info["arch"] == f"nb201:{ARCH}" and "normalize" not in info
    # a training checkpoint with its metadata beside it
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    torch.save({"model": net.state_dict(), "epoch": 3, "meta": {"normalize": None}}, run_dir / "best.pt")
    (run_dir / "meta.json").write_text(
        json.dumps({"arch": f"nb201:{ARCH}", "model_options": {"C": 4, "N": 1}})
    )
    model, info = models.resolve_model(str(run_dir / "best.pt"))
    assert torch.allclose(model.eval()(x), net.eval()(x)) and info["normalize"] is None
    wrapped, used = models.prepare_model(model, info)
    assert used is None
    wrapped, used = models.prepare_model(model, {"arch": "x"}, dataset="cifar10")
    assert used is not None and isinstance(wrapped[0], nn.Module)
    # errors
    with pytest.raises(DataError, match="fit"):
        models.resolve_model(f"nb201:{ARCH}", 10, tmp_path / "w.pt", C=8, N=1)
    with pytest.raises(DataError, match="not found"):
        models.resolve_model(f"nb201:{ARCH}", 10, tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(DataError, match="weights_only"):
        models.resolve_model(f"nb201:{ARCH}", 10, tmp_path / "junk.pt")
    torch.save({"model": net.state_dict(), "epoch": 1}, tmp_path / "noarch.pt")
    with pytest.raises(DataError, match="arch"):
        models.resolve_model(str(tmp_path / "noarch.pt"))
    with pytest.raises((UnknownName, ConfigError)):
        models.resolve_model("no-such-model")


def _random_npz(path, seed: int, splits: dict[str, int], **fixed: np.ndarray):
    """``path``: an .npz with ``x_SPLIT`` (n random 16x16 uint8 images) and ``y_SPLIT`` (n of
    10 labels) for each ``SPLIT: n``; ``fixed`` arrays replace drawn ones."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, n in splits.items():
        arrays[f"x_{split}"] = rng.integers(0, 256, (n, 16, 16, 3), dtype=np.uint8)
        arrays[f"y_{split}"] = rng.integers(0, 10, n)
    np.savez(path, **{**arrays, **fixed})
    return path


@pytest.fixture
def tiny_files(tmp_path):
    # fewer labels than classes: the size comes from the weights
    _random_npz(tmp_path / "tiny.npz", 0, {"train": 16, "test": 6}, y_test=np.array([0, 1, 2, 3, 1, 0]))
    net = spaces.get("nb201").build(ARCH, C=4, N=1)
    torch.save({"model": net.state_dict()}, tmp_path / "w.pt")
    return tmp_path


def _evaluate_args(data, out, *options: str) -> list[str]:
    """``robnas evaluate`` of the tiny NB201 network (C=4, N=1) on ``data`` into ``out``."""
    model = ["--model", f"nb201:{ARCH}", "--model-option", "C=4", "--model-option", "N=1"]
    return ["evaluate", *model, "--data", str(data), "--out", str(out), *options]


def test_cli_end_to_end(tiny_files):
    out = tiny_files / "out"
    args = _evaluate_args(
        tiny_files / "tiny.npz", out, "--weights", str(tiny_files / "w.pt"),
        "--attacks", "fgsm@8,pgd@8:steps=2,alpha=2", "--corruptions", "fog@1,contrast@2",
        "--limit", "5", "--batch-size", "4", "--device", "cpu",
    )  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    doc = json.loads((out / "evaluation.json").read_text())
    assert [r["label"] for r in doc["rows"]] == ["clean", "fgsm@8", "pgd@8:steps=2", "fog@1", "contrast@2"]
    assert all(r["n"] == 5 for r in doc["rows"])
    assert doc["summary"]["clean_accuracy"] == doc["rows"][0]["accuracy"]
    assert doc["meta"]["normalize"] is not None  # NB201 networks get the data set's MEAN_STD
    assert (out / "evaluation.csv").read_text().count("\n") == 6
    assert (out / "accuracy_vs_eps.png").is_file() and (out / "corruptions.png").is_file()


def test_cli_bad_attack_is_one_clear_line(tiny_files):
    args = _evaluate_args(tiny_files / "tiny.npz", tiny_files / "o", "--attacks", "pgdd@8", "--no-normalize")
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert "unknown attack 'pgdd'" in result.output


def test_cli_killed_evaluation_resumes_without_recomputing(tiny_files):
    """A real ``robnas evaluate`` killed with SIGTERM after its first rows, then run again."""
    out = tiny_files / "killed"
    attacks = ",".join(f"pgd@{eps}:steps=12" for eps in (1, 2, 3, 4, 5, 6, 7, 8))
    options = ["--weights", str(tiny_files / "w.pt"), "--attacks", attacks, "--corruptions", "fog@1"]
    options += ["--batch-size", "16", "--device", "cpu"]
    command = [sys.executable, "-m", "robnas", *_evaluate_args(_random_npz(tiny_files / "more.npz", 1, {"test": 32}), out, *options)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    table = out / "evaluation.json"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if table.is_file() and len(json.loads(table.read_text())["rows"]) >= 2:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the evaluation ended before it could be killed"
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)
    assert proc.returncode != 0
    partial = json.loads(table.read_text())
    assert not partial["meta"]["complete"] and 2 <= len(partial["rows"]) < 10
    assert (out / "evaluation.csv").read_text().count("\n") == len(partial["rows"]) + 1

    rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    kept = len(partial["rows"])
    assert f"kept {kept} finished rows, computing {10 - kept}" in " ".join(rerun.stderr.split())
    final = json.loads(table.read_text())
    assert final["meta"]["complete"]
    labels = ["clean"] + [f"pgd@{eps}:steps=12" for eps in range(1, 9)] + ["fog@1"]
    assert [r["label"] for r in final["rows"]] == labels
    assert final["rows"][:kept] == partial["rows"]  # no finished row was computed again
    assert (out / "evaluation.csv").read_text().count("\n") == 11

    changed = subprocess.run([*command, "--limit", "20"], env=env, capture_output=True, text=True, timeout=300)
    assert changed.returncode == 2 and "different settings (changed: limit)" in " ".join(changed.stderr.split())
