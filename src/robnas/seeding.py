"""Order-independent seeds: the same (seed, arch, proxy) gives the same numbers in any run."""

from __future__ import annotations

import hashlib
import random

import numpy as np
import torch

from robnas.errors import ConfigError

#: Seeds are stored as SQLite integers and given to every generator: 0 <= seed <= MAX_SEED.
MAX_SEED = 2**63 - 1


def check_seed(seed: object, name: str = "seed") -> int | None:
    """``seed`` if it is a whole number in [0, :data:`MAX_SEED`] (or None: not given), else
    ConfigError naming ``name``."""
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= int(seed) <= MAX_SEED:
        raise ConfigError(f"{name} must be a whole number in [0, 2^63 - 1], got {seed!r}")
    return int(seed)


def stable_seed(*parts: object) -> int:
    """A 63-bit seed derived from ``parts`` (stable across processes and Python versions)."""
    digest = hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


def seed_int(*parts: int) -> int:
    """A 63-bit seed from integer parts (``numpy.random.SeedSequence``): the seeds of training
    steps and epochs (``seed, epoch, step``), where :func:`stable_seed` seeds from texts."""
    return int(np.random.SeedSequence(list(parts)).generate_state(1, dtype=np.uint64)[0] >> 1)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) generators."""
    random.seed(seed)
    np.random.seed(seed % (1 << 32))
    torch.manual_seed(seed)
