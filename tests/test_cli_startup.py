"""The command line starts without the heavy libraries: ``robnas --help`` stays quick."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("torch", "pandas", "scipy", "matplotlib", "optuna", "lightgbm", "ray")


def test_the_cli_imports_no_heavy_library_until_a_verb_runs() -> None:
    code = f"import sys, robnas.cli; print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip() == ""


def test_help_lists_every_verb() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "robnas", "--help"], capture_output=True, text=True, timeout=120, check=True
    )
    for verb in ("score", "correlate", "search", "train", "evaluate", "supernet", "zoo", "predict", "pipeline", "demo"):
        assert verb in done.stdout
