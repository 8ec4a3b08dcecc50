"""One exception family for robnas.

Every error a user can cause (a bad architecture string, a missing file, an unknown
name) is a :class:`RobnasError`; the command line prints its message on one line and
exits with status 2.
"""

from __future__ import annotations


class RobnasError(Exception):
    """Base class of every error robnas raises on purpose."""


class InvalidArchitecture(RobnasError, ValueError):
    """An architecture (string or object) that is not a member of its search space."""


class UnknownName(RobnasError, KeyError):
    """A name that is not in a registry (proxy, space, attack, ...)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class DataError(RobnasError):
    """A missing, truncated or malformed data or benchmark file."""


class ConfigError(RobnasError, ValueError):
    """Invalid options or configuration."""


class ProxyError(RobnasError):
    """A proxy could not produce a finite score for a network."""


#: Parts of a failure's text that say it depends on the machine (memory, a lost worker), not
#: on the input: such a failure is recorded but computed again on rerun.
TRANSIENT_MARKS = ("MemoryError", "out of memory", "can't allocate memory", "WorkerDied")


def is_transient(error: str) -> bool:
    """Whether the recorded failure ``error`` (``"TYPE: message"``) depends on the machine
    (out of memory, a killed worker) rather than on the architecture (a NaN proxy)."""
    return any(mark in error for mark in TRANSIENT_MARKS)
