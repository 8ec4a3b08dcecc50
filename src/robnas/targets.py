"""The one grammar of what robustness is measured against: ``clean``, ``fgsm@8``, ``pgd@8:steps=20``,
``fog@3``, ``cc_mean``, ``valid@12``, ...

Every text that names a measurement (``robnas evaluate --attacks``, ``bench:TARGET``,
``oneshot:TARGET``, ``nb201:TARGET``, the targets of ``robnas correlate`` and ``robnas predict``)
is read by :func:`parse`, so one text has one meaning everywhere::

    NAME[@LEVEL][:KEY=VALUE[,KEY=VALUE...]]

* ``NAME``: what is measured (``clean``, an attack ``pgd``, a corruption ``fog``, a group
  ``cc_weather``, a benchmark split ``valid`` or ``cifar100/test``, ...). Which names exist is
  the reader's business (the attacks of :mod:`robnas.attacks`, a benchmark's columns): a new
  benchmark adds its names without touching the grammar.
* ``LEVEL``: a number: an attack's L-inf budget **in 1/255** (``pgd@8`` is eps 8/255; a value
  below 0.1 looks like a fraction and is refused, :mod:`robnas.units`), a corruption's severity,
  a benchmark's training epochs.
* ``KEY=VALUE``: settings of a computed measurement; eps, alpha and other step sizes in 1/255.
  An attack is defined once by its name: ``pgd@8`` is :mod:`robnas.attacks`'s PGD with its
  defaults (10 steps of 2/255, random start) wherever it is computed; other settings are
  written in the text (``pgd@8:steps=20`` is RobNets' PGD-20). A looked-up value (a benchmark
  column) has no settings to choose, and its readers refuse them.

:attr:`Target.text` is the canonical spelling (``pgd@8.0:steps=20`` -> ``pgd@8:steps=20``), which
keys, labels and stores use.

>>> t = parse("pgd@8:steps=20,alpha=2")
>>> t.name, t.eps, t.attack_params()["steps"], t.text
('pgd', 0.03137254901960784, 20, 'pgd@8:alpha=2,steps=20')
>>> parse("fog@3").severity
3
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from robnas.errors import ConfigError, UnknownName
from robnas.options import parse_value
from robnas.units import PIXEL_KEYS, from_255

GRAMMAR = "NAME[@LEVEL][:KEY=VALUE,...] (e.g. clean, fgsm@8, pgd@8:steps=20, fog@3, cc_mean; eps in 1/255)"


def format_level(value: float) -> str:
    """A level as written in target texts: 0.1 -> ``0.1``, 8.0 -> ``8``."""
    return f"{float(value):g}"


@dataclass(frozen=True)
class Target:
    """One parsed target text (see the module docstring). ``level`` is the number after ``@``
    as written (1/255 for an attack); ``params`` the ``KEY=VALUE`` settings as written."""

    name: str
    level: float | None = None
    params: dict[str, Any] = field(default_factory=dict, hash=False, compare=True)

    @property
    def text(self) -> str:
        """The canonical spelling; ``parse(t.text) == t``."""
        out = self.name if self.level is None else f"{self.name}@{format_level(self.level)}"
        if self.params:
            out += ":" + ",".join(f"{k}={_format_value(v)}" for k, v in sorted(self.params.items()))
        return out

    def __str__(self) -> str:
        return self.text

    @property
    def eps(self) -> float:
        """The level as an L-inf budget, a fraction of [0, 1] (``pgd@8`` -> 8/255)."""
        if self.level is None:
            raise ConfigError(f"target {self.text!r} has no eps: write {self.name}@EPS (EPS in 1/255, e.g. @8)")
        return from_255("eps", self.level)

    @property
    def severity(self) -> int:
        """The level as a corruption severity (an integer)."""
        if self.level is None or self.level != int(self.level):
            raise ConfigError(f"target {self.text!r}: a severity is an integer, e.g. {self.name}@3")
        return int(self.level)

    def attack_params(self) -> dict[str, Any]:
        """The attack's keyword arguments in Python units: ``eps`` from the level, pixel keys of
        ``params`` (alpha, step sizes) from 1/255, the rest as written."""
        out: dict[str, Any] = {} if self.level is None else {"eps": self.eps}
        for key, value in self.params.items():
            if key in PIXEL_KEYS and isinstance(value, int | float) and not isinstance(value, bool):
                value = from_255(key, value)
            out[key] = value
        return out

    def without_params(self, reader: str) -> Target:
        """This target, refusing settings: ``reader`` looks the value up, it does not compute it."""
        if self.params:
            raise ConfigError(
                f"{reader} target {self.text!r}: a looked-up value has no settings to choose; "
                f"write {Target(self.name, self.level).text}"
            )
        return self


def _format_value(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return format_level(value)
    return str(value)


def parse(text: str, what: str = "target") -> Target:
    """The :class:`Target` written as ``text``; one :class:`UnknownName` line for a malformed text.
    Names are not checked here (their reader knows which exist); levels and settings are."""
    raw = text.strip() if isinstance(text, str) else ""
    if not raw:
        raise UnknownName(f"empty {what}; expected {GRAMMAR}")
    head, colon, tail = raw.partition(":")
    name, at, level_text = head.partition("@")
    name = name.strip()
    if not name or any(c.isspace() for c in name):
        raise UnknownName(f"{what} {raw!r}: expected {GRAMMAR}")
    level: float | None = None
    if at:
        try:
            level = float(level_text)
        except ValueError:
            raise UnknownName(
                f"{what} {raw!r}: the level after '@' must be a number (eps in 1/255, a severity or epochs)"
            ) from None
        if not math.isfinite(level) or level <= 0:
            raise UnknownName(f"{what} {raw!r}: the level after '@' must be a positive number")
    params: dict[str, Any] = {}
    if colon:
        for pair in filter(None, (p.strip() for p in tail.split(","))):
            key, sep, value = pair.partition("=")
            if not sep or not key.strip():
                raise ConfigError(f"{what} {raw!r}: setting {pair!r} should read KEY=VALUE")
            parsed = parse_value(value.strip())
            if key.strip() in PIXEL_KEYS and isinstance(parsed, int | float) and not isinstance(parsed, bool):
                from_255(key.strip(), parsed)  # in 1/255: refuse a fraction now
            params[key.strip()] = parsed
        if not params:
            raise ConfigError(f"{what} {raw!r}: nothing after ':'; expected KEY=VALUE settings")
    return Target(name, level, params)


def split_specs(text: str | Iterable[str]) -> list[str]:
    """Split a comma-separated list of texts; ``KEY=VALUE`` pieces belong to the text before them
    (so ``fgsm@8,pgd@8:steps=20,alpha=2`` is two targets, ``oneshot:pgd@8:steps=20,-params`` two
    objectives)."""
    parts = [text] if isinstance(text, str) else list(text)
    out: list[str] = []
    for part in parts:
        for token in (t.strip() for t in part.split(",")):
            if not token:
                continue
            if "=" in token and "@" not in token and ":" not in token and out:
                out[-1] += "," + token
            else:
                out.append(token)
    return out


__all__ = ["GRAMMAR", "Target", "format_level", "parse", "split_specs"]
