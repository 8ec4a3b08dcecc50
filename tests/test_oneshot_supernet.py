"""Weight-sharing supernets: sub-network equality, single-path cost, sampling, BN, bad input."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from robnas.errors import ConfigError, InvalidArchitecture, UnknownName
from robnas.oneshot import recalibrate_bn, supernet
from robnas.spaces.darts import PRIMITIVES, DartsNetwork, Genotype
from robnas.spaces.nb201 import OPERATIONS, NB201Network
from robnas.spaces.robnet import CODES, RobNetNetwork

TINY = {
    "nb201": {"C": 4, "N": 1},
    "darts": {"C": 4, "layers": 5},
    "robnet": {"C": 4, "layers": 5},
    "robnet-free": {"C": 4, "layers": 5},
}
#: every DARTS operation at least once, pooling and skip on reduction edges too
DARTS_ALL_OPS = Genotype(
    normal=(
        ("max_pool_3x3", 0),
        ("avg_pool_3x3", 1),
        ("skip_connect", 0),
        ("sep_conv_3x3", 2),
        ("sep_conv_5x5", 1),
        ("none", 3),
        ("dil_conv_3x3", 4),
        ("dil_conv_5x5", 0),
    ),
    normal_concat=(2, 3, 4, 5),
    reduce=(
        ("skip_connect", 0),
        ("max_pool_3x3", 1),
        ("avg_pool_3x3", 1),
        ("sep_conv_3x3", 2),
        ("dil_conv_5x5", 3),
        ("none", 0),
        ("sep_conv_5x5", 4),
        ("skip_connect", 1),
    ),
    reduce_concat=(2, 3, 4, 5),
)
BUILT = {"nb201": NB201Network, "darts": DartsNetwork, "robnet": RobNetNetwork, "robnet-free": RobNetNetwork}


def _trained_stats(net: nn.Module, x: torch.Tensor, seed: int = 0) -> None:
    """A few training-mode forwards on random paths, so BN running statistics are not trivial."""
    g = torch.Generator().manual_seed(seed)
    net.train()
    with torch.no_grad():
        for _ in range(3):
            net(x, net.sample_path(g))


def test_darts_supernet_has_wsr_nas_parameter_count():
    net = supernet("darts", C=16, layers=8, num_classes=10)
    assert sum(p.numel() for p in net.parameters()) == 1_930_618
    assert [i for i, cell in enumerate(net.cells) if cell.reduction] == [2, 5]


@pytest.mark.parametrize("space", ["nb201", "darts", "robnet", "robnet-free"])
def test_subnet_logits_equal_the_supernet_path_in_eval_mode(space):
    torch.manual_seed(0)
    net = supernet(space, **TINY[space])
    x = torch.rand(4, 3, 8, 8)
    _trained_stats(net, x)
    archs = [net.sample_path(torch.Generator().manual_seed(s)) for s in (1, 2)]
    if space == "nb201":
        archs.append(OPERATIONS[:5] + ("nor_conv_3x3",))
    if space == "darts":
        archs.append(DARTS_ALL_OPS)
    if space == "robnet-free":
        archs.append((tuple(CODES[k % 4] for k in range(14)),))  # a shared code too
        archs.append(tuple(tuple(CODES[(k + i) % 4] for k in range(14)) for i in range(5)))
        archs.append(tuple(("00",) * 14 for _ in range(5)))  # all-zero nodes
    net.eval()
    for arch in archs:
        sub = net.subnet(arch).eval()
        assert type(sub) is BUILT[space]
        with torch.no_grad():
            torch.testing.assert_close(sub(x), net(x, arch), rtol=1e-5, atol=1e-6)
        text = net.path_text(arch)
        with torch.no_grad():
            torch.testing.assert_close(net(x, text), net(x, arch))


@pytest.mark.parametrize("space", ["nb201", "darts"])
def test_subnet_inherits_affine_bn_parameters(space):
    torch.manual_seed(1)
    net = supernet(space, affine=True, **TINY[space])
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d) and m.affine:
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
    x = torch.rand(2, 3, 8, 8)
    _trained_stats(net, x)
    arch = DARTS_ALL_OPS if space == "darts" else ("nor_conv_3x3",) * 3 + ("nor_conv_1x1",) * 3
    net.eval()
    with torch.no_grad():
        torch.testing.assert_close(net.subnet(arch).eval()(x), net(x, arch), rtol=1e-5, atol=1e-6)


def _op_modules(net: nn.Module) -> dict[str, nn.Module]:
    """Every edge operation of a supernet by its module name."""
    out = {}
    for name, module in net.named_modules():
        parts = name.split(".")
        if (
            len(parts) >= 4
            and parts[0] == "cells"
            and parts[2] == "edges"
            and (
                (len(parts) == 5 and parts[4] in PRIMITIVES + OPERATIONS)
                or (len(parts) == 5 and parts[4] in ("conv", "res"))
            )
        ):
            out[name] = module
    return out


@pytest.mark.parametrize("space", ["nb201", "darts", "robnet-free"])
def test_a_forward_runs_only_the_path_operations(space):
    net = supernet(space, **TINY[space]).eval()
    arch = net.sample_path(torch.Generator().manual_seed(3))
    ops = _op_modules(net)
    assert ops
    fired: set[str] = set()
    for name, module in ops.items():
        module.register_forward_hook(lambda m, i, o, name=name: fired.add(name))
    with torch.no_grad():
        net(torch.rand(1, 3, 8, 8), arch)
    expected = set()
    for i, cell in enumerate(net.cells):
        if space == "nb201":
            if hasattr(cell, "edges"):
                expected |= {f"cells.{i}.edges.{e}.{op}" for e, op in enumerate(arch)}
        elif space == "darts":
            edges = arch.reduce if cell.reduction else arch.normal
            for k, (op, source) in enumerate(edges):
                node = k // 2
                expected.add(f"cells.{i}.edges.{sum(n + 2 for n in range(node)) + source}.{op}")
        else:
            for e, bits in enumerate(arch[i]):
                expected |= {f"cells.{i}.edges.{e}.res"} if bits[0] == "1" else set()
                expected |= {f"cells.{i}.edges.{e}.conv"} if bits[1] == "1" else set()
    assert fired == expected
    assert len(fired) < len(ops)


def test_sampling_covers_every_operation_of_every_edge():
    nb = supernet("nb201", C=4, N=1)
    g = torch.Generator().manual_seed(0)
    seen = {(e, op) for _ in range(300) for e, op in enumerate(nb.sample_path(g))}
    assert seen == {(e, op) for e in range(6) for op in OPERATIONS}

    darts = supernet("darts", C=4, layers=5)
    g = torch.Generator().manual_seed(0)
    seen_d = set()
    for _ in range(400):
        arch = darts.sample_path(g)
        for cell, edges in (("normal", arch.normal), ("reduce", arch.reduce)):
            seen_d |= {(cell, k // 2, source, op) for k, (op, source) in enumerate(edges)}
    # sampled genotypes draw the 7 non-none operations (as the space samples and DARTS derives)
    assert seen_d == {
        (cell, node, source, op)
        for cell in ("normal", "reduce")
        for node in range(4)
        for source in range(node + 2)
        for op in PRIMITIVES[1:]
    }

    free = supernet("robnet-free", C=4, layers=5)
    g = torch.Generator().manual_seed(0)
    paths = [free.sample_path(g) for _ in range(100)]
    assert all(len(p) == 5 for p in paths)
    assert {(i, e, code) for p in paths for i, cell in enumerate(p) for e, code in enumerate(cell)} == {
        (i, e, code) for i in range(5) for e in range(14) for code in CODES
    }
    assert len(supernet("robnet", C=4, layers=5).sample_path(0)) == 1
    # the same generator state gives the same path
    assert nb.sample_path(torch.Generator().manual_seed(7)) == nb.sample_path(
        torch.Generator().manual_seed(7)
    )


def test_recalibrate_bn_estimates_the_path_statistics_used_in_eval_mode():
    torch.manual_seed(0)
    net = supernet("nb201", C=4, N=1, bn="recalibrate")
    arch = ("nor_conv_3x3",) * 6
    batches = [torch.rand(4, 3, 8, 8) for _ in range(3)]
    net.train()
    with torch.no_grad():
        batch_stats = net(batches[0], arch)
    assert torch.equal(net.stem[1].running_mean, torch.zeros(4))  # training leaves the statistics alone
    net.eval()
    with torch.no_grad():  # an uncalibrated path normalises with the batch's statistics
        torch.testing.assert_close(net(batches[0], arch), batch_stats)
    assert torch.equal(net.stem[1].running_mean, torch.zeros(4)) and not net.stem[1].training
    off_path = net.cells[0].edges[0]["nor_conv_1x1"][2]
    off_path.running_mean.fill_(5.0)
    assert recalibrate_bn(net, arch, [(b, torch.zeros(4)) for b in batches]) == 3
    assert net.calibrated_path == net.path_text(arch)
    with torch.no_grad():
        means = torch.stack([net.stem[0](b).mean(dim=(0, 2, 3)) for b in batches])
    torch.testing.assert_close(net.stem[1].running_mean, means.mean(0))  # cumulative average
    assert torch.all(off_path.running_mean == 5.0)  # BNs of other paths untouched
    assert net.stem[1].momentum == 0.0 and not net.training
    with torch.no_grad():
        calibrated = net(batches[0], arch)
        torch.testing.assert_close(net.subnet(arch).eval()(batches[1]), net(batches[1], arch))
        assert not torch.allclose(calibrated, batch_stats)
        other = ("skip_connect",) * 6
        net.train()
        other_batch_stats = net(batches[0], other)
        net.eval()
        torch.testing.assert_close(net(batches[0], other), other_batch_stats)
    assert net.calibrated_path is None  # a training forward invalidates the calibration


def test_bad_input_gives_one_clear_error():
    darts = supernet("darts", C=4, layers=5)
    x = torch.rand(1, 3, 8, 8)
    with pytest.raises(InvalidArchitecture, match="darts supernet"):
        darts(x, ("nor_conv_3x3",) * 6)
    with pytest.raises(InvalidArchitecture, match="darts supernet"):
        darts(x, "|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|")
    nb = supernet("nb201", C=4, N=1)
    with pytest.raises(InvalidArchitecture, match="nb201 supernet"):
        nb(x, "garbage")
    with pytest.raises(InvalidArchitecture, match="nb201 supernet"):
        nb(x, DARTS_ALL_OPS)
    free = supernet("robnet-free", C=4, layers=5)
    with pytest.raises(InvalidArchitecture, match="one per cell"):
        free(x, (("01",) * 14,) * 3)
    with pytest.raises(ConfigError, match="no option depth"):
        supernet("darts", depth=3)
    with pytest.raises(ConfigError, match="affine=False only"):
        supernet("robnet", affine=True)
    with pytest.raises(ConfigError, match="bn must be one of"):
        supernet("nb201", bn="batch")
    with pytest.raises(UnknownName, match="supernet space"):
        supernet("darts-croze")
    with pytest.raises(ConfigError, match="at least one batch"):
        recalibrate_bn(nb, ("skip_connect",) * 6, [])


# ---------------------------------------------------------------------------------------
# training


def _tiny_data():
    from robnas import data

    return data.synthetic(n=24, num_classes=10, size=8, seed=0)


def test_each_step_trains_one_path_drawn_before_the_attack(tmp_path, monkeypatch):
    from robnas.oneshot import training
    from robnas.train import losses

    real = losses.get("pgd")
    seen: list[tuple[object, set]] = []

    def spy(model, x, y, ctx):
        single = model.net
        forwards: set = set()
        hook = single.register_forward_hook(lambda m, i, o: forwards.add(m.arch))
        try:
            out = real(model, x, y, ctx)
        finally:
            hook.remove()
        assert single.arch == single.supernet.sample_path(ctx.generator(training.PATH_TAG))
        seen.append((single.arch, forwards))
        return out

    monkeypatch.setattr(training.losses, "get", lambda name: spy)
    result = training.train_supernet(
        "nb201", _tiny_data(), "pgd-at", tmp_path, epochs=1, batch_size=8, seed=0,
        overrides={"steps": 2, "val_steps": 1}, device="cpu", C=4, N=1,
    )  # fmt: skip
    assert len(seen) == 3 and len({arch for arch, _ in seen}) > 1
    assert all(forwards == {arch} for arch, forwards in seen)  # the adversary and the loss saw one path
    assert len(result.history) == 1 and (tmp_path / "last.pt").is_file()


def test_one_epoch_writes_a_checkpoint_that_loads_back(tmp_path):
    from robnas.oneshot import load_supernet, train_supernet
    from robnas.train import checkpoint

    result = train_supernet(
        "robnet-free", _tiny_data(), "fast-at", tmp_path, epochs=1, batch_size=8, seed=0,
        device="cpu", C=4, layers=3, bn="recalibrate", overrides={"val_steps": 1},
    )  # fmt: skip
    state = checkpoint.load(tmp_path / "last.pt")
    assert state["meta"]["supernet"] == {
        "space": "robnet-free",
        "options": {
            "num_classes": 10,
            "C": 4,
            "layers": 3,
            "affine": False,
            "bn": "recalibrate",
            "imagenet": False,
        },
    }
    assert result.model.calibrated_path is not None  # validation recalibrated its path
    net = load_supernet(tmp_path / "last.pt", "robnet-free", C=4)
    trained = result.model.state_dict()
    assert all(torch.equal(v, trained[k]) for k, v in net.state_dict().items())
    assert not net.training and set(net.state_dict()) == set(trained)


def test_resume_is_bit_identical(tmp_path):
    from robnas.oneshot import train_supernet
    from robnas.train import checkpoint

    options = dict(
        epochs=2, batch_size=8, seed=1, device="cpu", overrides={"steps": 1, "val_steps": 1}, C=4, N=1
    )
    train_supernet("nb201", _tiny_data(), "pgd-at", tmp_path / "full", **options)
    train_supernet("nb201", _tiny_data(), "pgd-at", tmp_path / "cut", stop_after=1, **options)
    assert checkpoint.load(tmp_path / "cut" / "last.pt")["epoch"] == 1
    train_supernet("nb201", _tiny_data(), "pgd-at", tmp_path / "cut", resume=True, **options)
    full = checkpoint.load(tmp_path / "full" / "last.pt")["model"]
    cut = checkpoint.load(tmp_path / "cut" / "last.pt")["model"]
    assert full.keys() == cut.keys() and all(torch.equal(full[k], cut[k]) for k in full)


def test_training_bad_input_gives_one_clear_line(tmp_path):
    import numpy as np
    from typer.testing import CliRunner

    from robnas.cli import app
    from robnas.oneshot import load_supernet, train_supernet

    npz = tmp_path / "tiny.npz"
    d = _tiny_data()
    np.savez(npz, x_train=d.x, y_train=d.y, x_test=d.x, y_test=d.y)
    base = ["supernet", "train", "--data", str(npz), "--epochs", "1", "--batch-size", "8", "--no-progress"]
    run = CliRunner().invoke(
        app, [*base, "--space", "nb201", "--recipe", "standard", "--out", str(tmp_path / "a"),
              "--arch-opt", "C=4", "--arch-opt", "N=1", "--device", "cpu"],
    )  # fmt: skip
    assert run.exit_code == 0, run.output
    assert "nb201 supernet" in run.output and (tmp_path / "a" / "last.pt").is_file()

    bad = CliRunner().invoke(
        app, [*base, "--space", "nb201", "--recipe", "pgd-att", "--out", str(tmp_path / "b")]
    )
    assert bad.exit_code == 2 and "pgd-att" in bad.output and len(bad.output.strip().splitlines()) == 1
    bad = CliRunner().invoke(
        app, [*base, "--space", "nb201", "--arch-opt", "layers=3", "--out", str(tmp_path / "b")]
    )
    assert bad.exit_code == 2 and "the nb201 supernet takes no option layers" in bad.output
    bad = CliRunner().invoke(app, [*base, "--space", "nb202", "--out", str(tmp_path / "b")])
    assert bad.exit_code == 2 and "unknown supernet space 'nb202'" in bad.output
    assert not (tmp_path / "b").exists()
    bad = CliRunner().invoke(app, [*base, "--space", "darts", "--recipe", "standard", "--out", str(tmp_path / "a"),
                                   "--resume", "--device", "cpu"])  # fmt: skip
    assert bad.exit_code == 2 and "holds a nb201 supernet, not a darts one" in bad.output
    with pytest.raises(ConfigError, match="another size: C=4 \\(asked 8\\)"):
        train_supernet("nb201", _tiny_data(), "standard", tmp_path / "a", epochs=1, batch_size=8, resume=True,
                       device="cpu", C=8, N=1)  # fmt: skip
    with pytest.raises(ConfigError, match="holds a nb201 supernet, not a robnet one"):
        load_supernet(tmp_path / "a" / "last.pt", "robnet")
    torch.save({"model": {}, "epoch": 1, "meta": {}}, tmp_path / "plain.pt")
    with pytest.raises(ConfigError, match="not a supernet checkpoint"):
        load_supernet(tmp_path / "plain.pt")


@pytest.mark.slow
def test_two_process_ddp_trains_a_supernet(tmp_path):
    """Under torchrun the used parameters change every step: DDP's unused-parameter detection
    must be on, and both ranks must draw the same path."""
    import os
    import subprocess
    import sys

    import numpy as np

    from robnas.train import checkpoint

    d = _tiny_data()
    np.savez(tmp_path / "tiny.npz", x_train=d.x, y_train=d.y, x_test=d.x, y_test=d.y)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "SLURM_NTASKS", "SLURM_PROCID"):
        env.pop(var, None)
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "robnas", "supernet", "train", "--space", "darts", "--recipe", "pgd-at",
        "--data", "tiny.npz", "--epochs", "2", "--batch-size", "8", "--out", "ddp", "--no-progress",
        "--device", "cpu", "--arch-opt", "C=4", "--arch-opt", "layers=3", "--set", "steps=1",
        "--set", "val_steps=1",
    ]  # fmt: skip
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    state = checkpoint.load(tmp_path / "ddp" / "last.pt")
    assert state["epoch"] == 2 and state["meta"]["world_size"] == 2
    assert state["meta"]["supernet"]["space"] == "darts"


def test_fsp_filter_reads_a_supernet_path_as_its_subnet():
    from robnas.oneshot import SinglePath
    from robnas.oneshot.robnets.fsp import fsp_score

    torch.manual_seed(0)
    net = supernet("robnet-free", C=4, layers=5)
    x = torch.rand(4, 3, 8, 8)
    _trained_stats(net, x)
    arch = net.sample_path(torch.Generator().manual_seed(5))
    x_adv = (x + 0.03 * torch.randn_like(x)).clamp(0, 1)
    net.eval()
    single = SinglePath(net, arch)
    expected = fsp_score(net.subnet(arch).eval(), x, x_adv)
    assert fsp_score(single, x, x_adv) == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ConfigError, match="no path is set"):
        SinglePath(net)(x)
