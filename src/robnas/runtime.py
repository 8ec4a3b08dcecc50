"""Where and how this process computes: device selection, and allocator settings for CPU work.

:func:`resolve_device` turns ``auto`` / ``cpu`` / ``cuda`` / ``cuda:N`` into a device, the one
rule used by scoring, search, training and evaluation.

glibc's ``malloc`` hands blocks of more than a few MiB back to the operating system as soon as
they are freed, and maps fresh pages for the next one. A forward/backward pass frees and
re-allocates activation buffers of the same sizes hundreds of times, so every buffer is
page-faulted in again, about a million minor faults per ten GraSP evaluations on NAS-Bench-201.
:func:`keep_freed_memory` raises glibc's mmap and trim thresholds (``mallopt``), so freed
memory is reused instead. PyTorch's CPU performance guide recommends jemalloc or tcmalloc for
the same reason; this needs no extra library. The cost: the process keeps its peak heap
instead of shrinking after it.

It is a process-level choice, so the library never makes it on import: the CLI and its worker
processes call it; Python users may. ``ROBNAS_KEEP_FREED_MEMORY=0`` turns it off.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
from typing import TYPE_CHECKING

from robnas.errors import ConfigError

if TYPE_CHECKING:
    import torch

#: ``mallopt`` parameter numbers from glibc's ``malloc.h``.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#: Blocks up to this size come from the heap (glibc's default grows to at most 32 MiB).
MMAP_THRESHOLD = 256 * 2**20
#: Free heap memory above this much is returned to the system (glibc: 128 KiB, adapting to
#: twice the mmap threshold).
TRIM_THRESHOLD = 2**30

_applied = False


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds for this process; True when they were set.

    A no-op (False) off Linux/glibc, when ``ROBNAS_KEEP_FREED_MEMORY=0``, or when already done.
    """
    global _applied
    if _applied:
        return True
    if not sys.platform.startswith("linux") or os.environ.get("ROBNAS_KEEP_FREED_MEMORY", "1") == "0":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and other C libraries without mallopt
        return False
    _applied = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
    return _applied


_PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int | None = None) -> bool:
    """Have the kernel kill this process (SIGKILL) when its parent ends; True where supported.

    For worker processes, so that none outlives a parent killed with ``kill -9``. Linux only
    (``prctl(PR_SET_PDEATHSIG)``). ``parent``: the expected parent's pid; when it is already
    gone by the time this runs, the process ends at once.
    """
    if not sys.platform.startswith("linux"):
        return False
    parent = os.getppid() if parent is None else parent
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        ok = libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False
    if ok and os.getppid() != parent:
        os._exit(1)
    return ok


def resolve_device(device: str | torch.device = "auto", local_rank: int = 0) -> torch.device:
    """``auto``: ``cuda:LOCAL_RANK`` when a GPU is present, else the CPU; a bare ``cuda`` means
    ``cuda:LOCAL_RANK``. An unknown device, or CUDA without a GPU, raises ConfigError."""
    import torch

    text = str(device)
    if text == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    try:
        dev = torch.device(text)
    except RuntimeError:
        raise ConfigError(f"unknown device {text!r}; use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {text!r} requested but CUDA is not available; use cpu or auto")
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device(f"cuda:{local_rank}")
    return dev
