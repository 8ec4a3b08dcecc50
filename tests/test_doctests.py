"""The ``>>>`` examples in robnas' docstrings run as tests, so the documentation cannot drift."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import robnas


def _modules_with_examples() -> list[str]:
    found = []
    for info in pkgutil.walk_packages(robnas.__path__, "robnas."):
        if info.name.startswith("robnas.cli") or info.name == "robnas.__main__":
            continue  # the command line is exercised through its own tests
        module = importlib.import_module(info.name)
        if any(t.examples for t in doctest.DocTestFinder().find(module)):
            found.append(info.name)
    return found


MODULES = _modules_with_examples()


def test_examples_are_found():
    assert "robnas.registry" in MODULES and "robnas.spaces" in MODULES


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples of {name} failed (run with -s to see them)"
