"""One small generic registry, used for every named thing in robnas.

A registry maps a name to an object (a builder, a function, a class) plus free-form
metadata. ``names(pattern)`` filters with shell wildcards, like timm's ``list_models``.
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from robnas.errors import UnknownName

T = TypeVar("T")


class Registry(Generic[T]):
    """Name -> object, with metadata and wildcard listing.

    >>> SPACES = Registry("search space")
    >>> @SPACES.register("toy", cheap=True)
    ... def toy(): ...
    >>> SPACES.names("to*")
    ['toy']
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        self._meta: dict[str, dict[str, Any]] = {}
        self._deferred: dict[str, str] = {}

    def register(self, name: str, obj: T | None = None, **meta: Any) -> Any:
        """Register ``obj`` under ``name``; without ``obj`` this is a decorator."""

        def add(item: T) -> T:
            if name in self._items and self._items[name] is not item:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = item
            self._meta[name] = {**self._meta.get(name, {}), **meta}
            return item

        if obj is not None:
            return add(obj)
        return add

    def defer(self, name: str, module: str, **meta: Any) -> None:
        """Declare that importing ``module`` registers ``name``: it is imported on the first
        :meth:`get` of ``name`` (plug-ins load on first use, and the registry's owner never
        imports them)."""
        if name in self._items or name in self._deferred:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._deferred[name] = module
        self._meta[name] = dict(meta)

    def get(self, name: str) -> T:
        """The object registered under ``name``; an unknown name raises :class:`UnknownName`."""
        if name not in self._items and name in self._deferred:
            importlib.import_module(self._deferred[name])
            if name not in self._items:
                raise ValueError(f"{self._deferred[name]} does not register {self.kind} {name!r}")
        try:
            return self._items[name]
        except KeyError:
            known = self.names()
            close = difflib.get_close_matches(name, known, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise UnknownName(f"unknown {self.kind} {name!r}{hint} (known: {', '.join(sorted(known))})") from None

    def meta(self, name: str) -> dict[str, Any]:
        """The metadata given at registration."""
        self.get(name)
        return self._meta[name]

    def names(self, pattern: str = "*") -> list[str]:
        """Registered names matching a shell wildcard, in registration order (deferred ones too)."""
        known = [*self._items, *(n for n in self._deferred if n not in self._items)]
        return [n for n in known if fnmatch.fnmatchcase(n, pattern)]

    def __contains__(self, name: object) -> bool:
        return name in self._items or name in self._deferred

    def __iter__(self):
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())


Builder = Callable[..., Any]
