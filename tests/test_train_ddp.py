"""``torchrun --nproc_per_node 2`` (gloo, CPU) trains the same weights as one process.

BatchNorm computes statistics per rank, so the network here has its BatchNorm layers replaced
by identities; with BN the two runs differ by design (use SyncBatchNorm on GPUs).
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from robnas.train import checkpoint

WORKER = textwrap.dedent(
    """
    import sys
    import torch
    from torch import nn
    from robnas import data, spaces
    from robnas import train as api

    torch.set_num_threads(1)
    npz, out, recipe = sys.argv[1:4]

    def strip_bn(module):
        for name, child in module.named_children():
            if isinstance(child, nn.modules.batchnorm._BatchNorm):
                setattr(module, name, nn.Identity())
            else:
                strip_bn(child)
        return module

    arch = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
    cifar = data.load(npz).subset(range(128))
    info = api.setup("cpu")
    torch.manual_seed(0)
    net = strip_bn(spaces.get("nb201").build(arch, 10, C=8, N=1))
    api.fit(net, cifar, recipe, out, epochs=2, batch_size=32, seed=0, val_fraction=0.25,
            dist_info=info, overrides={"steps": 2, "val_steps": 2})
    api.teardown(info)
    """
)


def _run(cmd, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "SLURM_NTASKS", "SLURM_PROCID"):
        env.pop(var, None)
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]


@pytest.mark.slow
def test_two_process_ddp_matches_one_process(shared_data, tmp_path):
    # TRADES exercises all of it: sharded data, the global random start sliced per rank, an
    # eval-mode adversary on the bare module, and two DDP forwards before one backward
    recipe = "trades"
    npz = str(shared_data / "cifar10" / "cifar10_exact_subset.npz")
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    _run([sys.executable, str(script), npz, "single", recipe], tmp_path)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    _run([*torchrun, str(script), npz, "ddp", recipe], tmp_path)

    one = checkpoint.load(tmp_path / "single" / "last.pt")["model"]
    two = checkpoint.load(tmp_path / "ddp" / "last.pt")
    assert two["meta"]["world_size"] == 2 and two["epoch"] == 2
    for key, value in one.items():
        torch.testing.assert_close(two["model"][key], value, rtol=1e-4, atol=1e-5)
    with open(tmp_path / "single" / "log.csv") as a, open(tmp_path / "ddp" / "log.csv") as b:
        for ra, rb in zip(csv.DictReader(a), csv.DictReader(b), strict=True):
            assert float(ra["loss"]) == pytest.approx(float(rb["loss"]), rel=1e-4)
            assert ra["train_clean_acc"] == rb["train_clean_acc"]
