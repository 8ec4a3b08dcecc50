"""Checkpoints that survive a kill and load with ``torch.load(weights_only=True)``.

A checkpoint is a dict of tensors and plain Python values: ``model`` (the bare network's
state_dict, without the :class:`robnas.models.NormalizedNet` wrapper), ``optimizer``,
``scheduler``, ``scaler``, ``rng`` (python, numpy, torch, cuda states), ``epoch`` (number of
finished epochs), ``best`` and ``meta``; a trainer with more optimisers adds ``optimizers``
({name: {"optimizer", "scheduler"}}). ``best.pt`` holds ``model``, ``epoch``, ``metric`` and
``meta``. :func:`robnas.models.final_checkpoint` says which file is a run's result. Files are written to a temporary name in the same folder and moved into place
with :func:`os.replace`, so a reader never sees half a file.
"""

from __future__ import annotations

import json
import os
import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from robnas.errors import DataError


def _atomic_write(path: Path, write: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save(state: dict[str, Any], path: str | Path) -> None:
    """Write ``state`` to ``path`` atomically (temporary file + ``os.replace``)."""
    _atomic_write(Path(path), lambda fh: torch.save(state, fh))


def save_json(data: dict[str, Any], path: str | Path) -> None:
    """Write ``data`` as indented JSON atomically."""
    text = json.dumps(data, indent=2, sort_keys=True, default=str).encode()
    _atomic_write(Path(path), lambda fh: fh.write(text))


def load(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True``; a missing or corrupt file raises DataError."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: checkpoint not found")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        raise DataError(f"{path}: cannot read the checkpoint ({exc})") from exc
    if not isinstance(state, dict) or "model" not in state or "epoch" not in state:
        raise DataError(f"{path}: not a robnas checkpoint (expected a dict with 'model' and 'epoch')")
    return state


def rng_state() -> dict[str, Any]:
    """Python, numpy, torch and CUDA generator states as tensors and plain values."""
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "python": [version, list(internal), gauss],
        "numpy": {
            "kind": str(kind),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` saved."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state(
        (n["kind"], n["keys"].cpu().numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"])
    )
    torch.set_rng_state(state["torch"].cpu())
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


__all__ = ["load", "rng_state", "save", "save_json", "set_rng_state"]
