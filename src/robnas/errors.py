"""One exception family for robnas.

Every error a user can cause (a bad architecture string, a missing file, an unknown
name) is a :class:`RobnasError`; the command line prints its message on one line and
exits with status 2.
"""

from __future__ import annotations

import re


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


_SECRET_QUERY = re.compile(
    r"(?i)(?P<key>[?&;](?:password|passwd|pwd|pass|secret|token|api_?key|sslpassword)=)(?!\*\*\*)[^&;:\s'\"]*"
)


def url_secrets(url: str) -> list[str]:
    """The secrets written in a URL: its password (everything between the user name and the
    last ``@`` of its authority, and each piece of it around an ``@`` or ``/``) and the values
    of secret query parameters (``password=``, ``token=``, ...)."""
    found: list[str] = []
    _, sep, rest = url.partition("://")
    if sep:
        authority = rest.split("?", 1)[0]
        userinfo = authority[: authority.rfind("@")] if "@" in authority else ""
        password = userinfo.partition(":")[2]
        if password:
            found.append(password)
            found += [piece for piece in re.split(r"[@/]", password) if len(piece) >= 3]
    for match in _SECRET_QUERY.finditer(url):
        value = match.group(0)[len(match.group("key")) :]
        if value:
            found.append(value)
    return sorted(set(found), key=len, reverse=True)


def mask_secrets(text: str, *urls: str) -> str:
    """``text`` with the secrets of ``urls`` (:func:`url_secrets`), every ``user:password@`` of a
    URL and every secret query value replaced by ``***``: for messages about database URLs."""
    for url in urls:
        for secret in url_secrets(url):
            text = text.replace(secret, "***")
    text = re.sub(
        r"([A-Za-z][\w+.-]*://[^:@/\s?#]*):(?!PASSWORD@)[^\s?#]*@(?=[^@\s/]*[/\s?#]|[^@\s/]*$)", r"\1:***@", text
    )
    return _SECRET_QUERY.sub(lambda m: m.group("key") + "***", text)
