"""Turn ``--arch`` text into a network: ``SPACE:ARCH_TEXT`` or a published model's name."""

from __future__ import annotations

import importlib
from typing import Any

from torch import nn

from robnas.errors import ConfigError, UnknownName


def parse_options(pairs: list[str] | None) -> dict[str, Any]:
    """``["C=8", "N=1", "affine=false"]`` -> ``{"C": 8, "N": 1, "affine": False}``."""
    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, text = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"option {pair!r} should read KEY=VALUE")
        out[key.strip()] = _value(text.strip())
    return out


def _value(text: str) -> Any:
    low = text.lower()
    if low in ("true", "yes", "on"):
        return True
    if low in ("false", "no", "off"):
        return False
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def build_model(arch: str, num_classes: int = 10, **options: Any) -> nn.Module:
    """The untrained network named by ``arch``.

    ``SPACE:ARCH_TEXT`` (e.g. ``nb201:|nor_conv_3x3~0|+|...|``) builds through
    ``robnas.spaces.get(SPACE).build(ARCH_TEXT, num_classes, **options)``; a bare name goes to
    ``robnas.zoo.create_model(NAME, num_classes, **options)`` when the zoo is installed.
    """
    from robnas import spaces

    space_name, sep, text = arch.partition(":")
    if sep and space_name in spaces.SPACES:
        return spaces.get(space_name).build(text, num_classes=num_classes, **options)
    try:
        zoo = importlib.import_module("robnas.zoo")
    except ImportError:
        zoo = None
    if zoo is not None and hasattr(zoo, "create_model"):
        return zoo.create_model(arch, num_classes=num_classes, **options)
    if sep:
        raise UnknownName(
            f"unknown search space {space_name!r} in --arch {arch!r} (known: {', '.join(spaces.names())})"
        )
    raise ConfigError(
        f"--arch {arch!r}: give SPACE:ARCH (spaces: {', '.join(spaces.names())}); "
        "named models need robnas.zoo, which is not available"
    )


__all__ = ["build_model", "parse_options"]
