"""Perturbation sizes: 1/255 on the command line, fractions of [0, 1] in Python.

On the command line every L-inf budget and step (``robnas train --set eps=8``,
``robnas evaluate --attacks pgd@8:alpha=2``) is given in 1/255 (grey levels) and converted
once, by :func:`from_255`. In Python (recipes, attacks) they are fractions of the [0, 1] pixel
range (``8/255``). Values that are clearly in the other unit are refused, not guessed:

* on the command line a value below 0.1 looks like a fraction (``eps=0.031`` for 8/255, a step
  of 0.007): refused. (0.1/255 itself is valid: the robustness benchmark's grid has ``fgsm@0.1``.)
  Above 255 it is outside the pixel range: refused;
* in Python a budget or step above 64/255 looks like 1/255 (``eps=8``): refused by
  :func:`check_fraction`.
"""

from __future__ import annotations

from typing import Any

from robnas.errors import ConfigError

#: Keys that are L-inf budgets.
BUDGET_KEYS = ("eps",)
#: Keys that are step sizes (or finite-difference steps) in pixel units.
STEP_KEYS = ("alpha", "step_size", "val_step_size", "delta")
PIXEL_KEYS = BUDGET_KEYS + STEP_KEYS
#: The largest budget or step accepted in [0, 1] units (Wsr-NAS evaluates up to eps 0.25).
MAX_FRACTION = 64 / 255

#: Command-line values below this (in 1/255) look like fractions of [0, 1].
MIN_255 = 0.1
UNIT_RULE = (
    "eps, alpha and step sizes are in 1/255 (eps=8 means 8/255); a value below 0.1 looks like a "
    "fraction of [0, 1] (0.031) and is refused"
)


def _number(key: str, value: Any, unit: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key}={value!r} is not a number ({unit})") from None
    return float(value)


def from_255(key: str, value: Any) -> float:
    """A command-line ``key`` given in 1/255 as a fraction of [0, 1]: ``from_255("eps", 8) == 8 / 255``.

    Raises ConfigError for a value that is not a number, not positive, above 255, or clearly a
    fraction already (below 0.1).
    """
    number = _number(key, value, "in 1/255")
    if number <= 0 or number > 255:
        raise ConfigError(
            f"{key}={value!r} (in 1/255) is {number / 255:.4g} of the pixel range, outside (0, 1]; "
            f"the command line takes {key} in 1/255 (8 = 8/255)"
        )
    if number < MIN_255:
        raise ConfigError(
            f"{key}={value!r} looks like a fraction of [0, 1], but the command line takes {key} in 1/255: "
            f"write {key}={number * 255:.4g} for {number:g} (e.g. eps=8 for 8/255)"
        )
    return number / 255


def check_fraction(key: str, value: Any) -> float:
    """A Python budget or step in [0, 1] units; above 64/255 (e.g. ``eps=8``) it looks like
    1/255 and raises ConfigError."""
    number = _number(key, value, "a fraction of the [0, 1] pixel range")
    if number < 0 or number > MAX_FRACTION:
        raise ConfigError(
            f"{key}={value!r} is outside [0, 64/255]: in Python {key} is a fraction of the [0, 1] pixel "
            f"range (8/255 = {8 / 255:.4f}); the command line takes it in 1/255"
        )
    return number


__all__ = ["BUDGET_KEYS", "MAX_FRACTION", "MIN_255", "PIXEL_KEYS", "STEP_KEYS", "UNIT_RULE", "check_fraction", "from_255"]
