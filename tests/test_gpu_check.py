"""``scripts/gpu_check.sh``: its CPU smoke mode runs every path at tiny scale; without a GPU,
the default CUDA mode stops at once with one line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "gpu_check.sh"


def _run(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        ["bash", str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=timeout
    )


def test_cpu_smoke_mode_runs_every_path(tmp_path):
    out = tmp_path / "results" / "gpu_check.md"
    proc = _run("--device", "cpu", "--work", str(tmp_path / "work"), "--out", str(out))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    for label in ("score", "score on ray", "train pgd-at", "evaluate"):
        (line,) = [ln for ln in lines if ln.startswith(f"{label:<13} ")]
        assert " ok " in line and " s" in line, line
    assert "max relative difference to the process path 0.0e+00" in next(ln for ln in lines if "on ray" in ln)
    assert any(ln.startswith("torchrun") and "skip" in ln for ln in lines)
    assert "clean" in next(ln for ln in lines if ln.startswith("evaluate"))
    assert (tmp_path / "work" / "train" / "last.pt").is_file()
    text = out.read_text()
    assert "bash scripts/gpu_check.sh --device cpu" in text and "train pgd-at  ok" in text


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present here")
def test_without_a_gpu_the_cuda_mode_fails_clearly():
    proc = _run(timeout=120)
    assert proc.returncode == 2
    assert proc.stdout == ""
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("gpu_check: no CUDA device") and "--device cpu" in line
