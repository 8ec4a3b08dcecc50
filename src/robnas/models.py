"""One way to name a network: ``SPACE:ARCH_TEXT`` or a published model's name.

``build_model("nb201:|nor_conv_3x3~0|+|...|")`` builds through the search space;
``build_model("robnet_large_v1")`` through :mod:`robnas.zoo`. Used by ``train``,
``evaluate``, ``search`` and the command line alike.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from robnas.errors import ConfigError


def parse_options(pairs: list[str] | None) -> dict[str, Any]:
    """``["C=8", "N=1", "affine=false"]`` -> ``{"C": 8, "N": 1, "affine": False}``."""
    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, text = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"option {pair!r} should read KEY=VALUE")
        out[key.strip()] = parse_value(text.strip())
    return out


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


def build_model(spec: str, num_classes: int | None = 10, **options: Any) -> nn.Module:
    """The untrained network named by ``spec``.

    ``SPACE:ARCH_TEXT`` builds ``robnas.spaces.get(SPACE).build(ARCH_TEXT, num_classes, **options)``;
    a bare name is a zoo entry, ``robnas.zoo.create_model(NAME, num_classes, **options)``
    (``num_classes=None`` keeps the entry's own). An unknown space or name raises ``UnknownName``.
    """
    from robnas import spaces, zoo

    prefix, sep, text = spec.partition(":")
    if sep:
        space = spaces.get(prefix)
        return space.build(space.parse(text), num_classes=10 if num_classes is None else num_classes, **options)
    return zoo.create_model(spec, num_classes=num_classes, **options)


__all__ = ["build_model", "parse_options", "parse_value"]
