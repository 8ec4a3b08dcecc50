"""``KEY=VALUE`` settings written as text (``--arch-opt C=8``, ``-o candidates=50``,
``pgd@8:steps=20``) and the Python values they stand for."""

from __future__ import annotations

from typing import Any

from robnas.errors import ConfigError


def parse_value(text: str) -> Any:
    """``"true"`` -> True, ``"none"`` -> None, ``"8"`` -> 8, ``"0.1"`` -> 0.1, other text stays text."""
    low = text.lower()
    if low in ("true", "yes", "on"):
        return True
    if low in ("false", "no", "off"):
        return False
    if low in ("none", "null"):
        return None
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def parse_options(pairs: list[str] | None, convert: bool = True, example: str = "C=8") -> dict[str, Any]:
    """``["C=8", "N=1", "affine=false"]`` -> ``{"C": 8, "N": 1, "affine": False}``; with
    ``convert=False`` the values stay text (for a reader that converts them itself)."""
    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, text = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"option {pair!r} should read KEY=VALUE, e.g. {example}")
        out[key.strip()] = parse_value(text.strip()) if convert else text.strip()
    return out


__all__ = ["parse_options", "parse_value"]
