"""Shared fixtures: real data from ``../shared/data`` when present, tiny synthetic data otherwise."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real-data folder beside the checkout; tests using it skip where it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is absent (it ships beside the repository in CI)")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _few_threads():
    torch.set_num_threads(1)
    yield
