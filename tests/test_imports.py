"""The import graph of robnas: no circle, no upward import (scripts/check_imports.py)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _checker():
    spec = importlib.util.spec_from_file_location("check_imports", ROOT / "scripts" / "check_imports.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["check_imports"] = module
    spec.loader.exec_module(module)
    return module


def test_the_package_has_no_circle_and_no_upward_import():
    assert _checker().check(ROOT / "src") == []


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = tmp_path / "robnas" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


def test_the_check_finds_circles_upward_imports_and_cli_imports(tmp_path):
    src = _tree(tmp_path, {
        "__init__.py": "",
        "errors.py": "",
        "units.py": "from robnas import scoring\n",  # upward, at module level
        "scoring.py": "def f():\n    from robnas.search import base\n",  # upward, lazily
        "attacks.py": "from robnas import scoring\n",
        "train/__init__.py": "from robnas.attacks import x\n",
        "correlate.py": "import robnas.cli\n",  # a library module importing the CLI
        "search/__init__.py": "",
        "search/base.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from robnas import pipeline\n",
        "pipeline.py": "",
        "cli/__init__.py": "",
    })  # fmt: skip
    (src / "robnas" / "scoring.py").write_text(
        "import robnas.attacks\ndef f():\n    from robnas.search import base\n"
    )  # scoring <-> attacks: a circle (sideways, same layer)
    problems = _checker().check(src)
    text = "\n".join(problems)
    assert "robnas.units (layer 0) imports robnas.scoring" in text
    assert "robnas.scoring (layer 3) lazily imports robnas.search.base (layer 6)" in text
    assert "robnas.correlate imports robnas.cli" in text
    assert "import circle: robnas.attacks -> robnas.scoring -> robnas.attacks" in text
    assert "pipeline" not in text  # TYPE_CHECKING imports are not judged
    assert len(problems) == 4
