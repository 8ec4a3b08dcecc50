"""Content fingerprints: what part of a run's identity a file or an array is, whatever its name.

A run's identity names every input that changes its results; a file enters it by a hash of
its bytes, so that another file at the same path (or a copy under another name) is told
apart (or recognised).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file's bytes (hex): identifies a checkpoint whatever its path or time stamp."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def array_digest(*arrays: np.ndarray) -> str:
    """BLAKE2b (16 hex digits) of arrays' dtypes, shapes and bytes, in order."""
    digest = hashlib.blake2b(digest_size=8)
    for a in arrays:
        a = np.ascontiguousarray(a)
        digest.update(f"{a.dtype.str}{a.shape}".encode())
        digest.update(memoryview(a).cast("B"))
    return digest.hexdigest()


__all__ = ["array_digest", "file_digest"]
