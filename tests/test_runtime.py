"""Process-level settings (robnas.runtime)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

# Allocate, touch and free a 32 MiB buffer ten times (after a warm-up); print the minor page
# faults it cost.
PROBE = """
import resource, torch, robnas.runtime as r
applied = r.keep_freed_memory() and r.keep_freed_memory()
for _ in range(10):
    x = torch.empty(8 * 2**20); x.fill_(1); del x
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    x = torch.empty(8 * 2**20); x.fill_(1); del x
print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _probe(setting: str) -> tuple[str, int]:
    env = dict(os.environ, ROBNAS_KEEP_FREED_MEMORY=setting)
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, env=env)
    applied, faults = out.stdout.split()
    return applied, int(faults)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is glibc-only")
def test_keep_freed_memory_reuses_freed_buffers_and_can_be_turned_off():
    on_applied, on_faults = _probe("1")
    off_applied, off_faults = _probe("0")
    assert (on_applied, off_applied) == ("True", "False")
    assert off_faults > 10_000  # glibc maps every 32 MiB buffer afresh: 8192 pages each time
    assert on_faults < off_faults / 10


def test_device_selection():
    import torch

    from robnas.errors import ConfigError
    from robnas.runtime import resolve_device

    assert resolve_device("cpu") == torch.device("cpu")
    if torch.cuda.is_available():
        assert resolve_device("auto", local_rank=0) == torch.device("cuda:0")
        assert resolve_device("cuda", local_rank=0) == torch.device("cuda:0")
    else:
        assert resolve_device("auto", local_rank=1) == torch.device("cpu")
        with pytest.raises(ConfigError, match="CUDA is not available"):
            resolve_device("cuda")
    with pytest.raises(ConfigError, match="unknown device 'tpu9'"):
        resolve_device("tpu9")


# A parent that forks a child which asks to die with it, prints the child's pid, and sleeps.
ORPHAN = """
import os, sys, time
from robnas.runtime import die_with_parent
parent = os.getpid()
child = os.fork()
if child == 0:
    die_with_parent(parent)
    time.sleep(60)
    os._exit(0)
print(child, flush=True)
time.sleep(60)
"""


def _alive(pid: int) -> bool:
    try:
        stat = open(f"/proc/{pid}/stat").read()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl(PR_SET_PDEATHSIG) is Linux-only")
def test_a_worker_dies_with_its_parent():
    import signal
    import time

    proc = subprocess.Popen([sys.executable, "-c", ORPHAN], stdout=subprocess.PIPE, text=True)
    child = int(proc.stdout.readline())
    time.sleep(0.5)  # the child has set its death signal
    assert _alive(child)
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _alive(child):
        os.kill(child, signal.SIGKILL)
        pytest.fail("the child outlived its parent")
