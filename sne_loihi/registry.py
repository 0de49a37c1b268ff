"""A tiny ``name -> builder`` registry (timm-style) used for teachers, students, partitions..."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from sne_loihi.errors import ConfigError

T = TypeVar("T", bound=Callable)


class Registry(Generic[T]):
    """Maps names to builder callables.

    Args:
        kind: What the registry holds, used in error messages (e.g. ``"teacher"``).
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator registering ``fn`` under ``name``."""

        def deco(fn: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} registered twice")
            self._items[name] = fn
            return fn

        return deco

    def get(self, name: str) -> T:
        """Return the builder for ``name`` or raise a one-line :class:`ConfigError`."""
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(sorted(self._items))
            raise ConfigError(f"unknown {self.kind} {name!r}; known: {known}") from None

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
