"""The objectives package: a base that names no plug-in, plug-ins registered by module and
loaded on first use (robnas.registry.Registry.defer)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from robnas.errors import UnknownName
from robnas.registry import Registry


def test_plugins_load_on_first_use():
    code = (
        "import sys\n"
        "from robnas import objectives, spaces\n"
        "loaded = lambda: sorted(m for m in sys.modules if m.startswith('robnas.objectives.') and m != 'robnas.objectives.base')\n"
        "print(loaded())\n"
        "objectives.make('params', spaces.get('nb201'))\n"
        "print(loaded())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[0] == "[]" and out[1] == "['robnas.objectives.proxy']"


def test_the_base_names_no_plugin_module():
    import robnas.objectives as package

    base = (Path(package.__file__).parent / "base.py").read_text()
    for plugin in ("proxy", "bench", "nb201", "train", "oneshot", "predict"):
        assert f"robnas.objectives.{plugin}" not in base


def test_registry_defer():
    reg: Registry[object] = Registry("thing")
    reg.defer("json-ish", "json")  # a module that does not register the name
    assert "json-ish" in reg and reg.names() == ["json-ish"]
    with pytest.raises(ValueError, match="does not register"):
        reg.get("json-ish")
    with pytest.raises(UnknownName, match="did you mean json-ish"):
        reg.get("json-is")
