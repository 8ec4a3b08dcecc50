"""robnas.evaluate and ``robnas evaluate``: specs, the table, the summary, models by spec, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from robnas import evaluate as ev
from robnas import spaces
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
    assert ev.split_specs("fgsm@8,pgd@8:steps=20,alpha=2") == ["fgsm@8", "pgd@8:steps=20,alpha=2"]
    assert ev.split_specs(["fgsm@8", "cw"]) == ["fgsm@8", "cw"]
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


def test_resolve_model(tmp_path):
    net = spaces.get("nb201").build(ARCH, C=4, N=1)
    torch.save({"model": net.state_dict(), "epoch": 1}, tmp_path / "w.pt")
    model, info = ev.resolve_model(f"nb201:{ARCH}", 10, tmp_path / "w.pt", C=4, N=1)
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
    model, info = ev.resolve_model(str(run_dir / "best.pt"))
    assert torch.allclose(model.eval()(x), net.eval()(x)) and info["normalize"] is None
    wrapped, used = ev.prepare_model(model, info)
    assert used is None
    wrapped, used = ev.prepare_model(model, {"arch": "x"}, dataset="cifar10")
    assert used is not None and isinstance(wrapped[0], nn.Module)
    # errors
    with pytest.raises(DataError, match="fit"):
        ev.resolve_model(f"nb201:{ARCH}", 10, tmp_path / "w.pt", C=8, N=1)
    with pytest.raises(DataError, match="not found"):
        ev.resolve_model(f"nb201:{ARCH}", 10, tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(DataError, match="weights_only"):
        ev.resolve_model(f"nb201:{ARCH}", 10, tmp_path / "junk.pt")
    torch.save({"model": net.state_dict(), "epoch": 1}, tmp_path / "noarch.pt")
    with pytest.raises(DataError, match="arch"):
        ev.resolve_model(str(tmp_path / "noarch.pt"))
    with pytest.raises((UnknownName, ConfigError)):
        ev.resolve_model("no-such-model")


@pytest.fixture
def tiny_files(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(
        tmp_path / "tiny.npz",
        x_train=rng.integers(0, 256, (16, 16, 16, 3), dtype=np.uint8),
        y_train=rng.integers(0, 10, 16),
        x_test=rng.integers(0, 256, (6, 16, 16, 3), dtype=np.uint8),
        y_test=np.array([0, 1, 2, 3, 1, 0]),  # fewer labels than classes: the size comes from the weights
    )
    net = spaces.get("nb201").build(ARCH, C=4, N=1)
    torch.save({"model": net.state_dict()}, tmp_path / "w.pt")
    return tmp_path


def test_cli_end_to_end(tiny_files):
    out = tiny_files / "out"
    args = [
        "evaluate",
        "--model",
        f"nb201:{ARCH}",
        "--model-option",
        "C=4",
        "--model-option",
        "N=1",
        "--weights",
        str(tiny_files / "w.pt"),
        "--data",
        str(tiny_files / "tiny.npz"),
        "--attacks",
        "fgsm@8,pgd@8:steps=2,alpha=2",
        "--corruptions",
        "fog@1,contrast@2",
        "--limit",
        "5",
        "--batch-size",
        "4",
        "--device",
        "cpu",
        "--out",
        str(out),
    ]
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
    result = CliRunner().invoke(
        app,
        [
            "evaluate",
            "--model",
            f"nb201:{ARCH}",
            "--model-option",
            "C=4",
            "--model-option",
            "N=1",
            "--data",
            str(tiny_files / "tiny.npz"),
            "--attacks",
            "pgdd@8",
            "--no-normalize",
            "--out",
            str(tiny_files / "o"),
        ],
    )
    assert result.exit_code == 2
    assert "unknown attack 'pgdd'" in result.output
