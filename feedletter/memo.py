"""A function's values by argument, each worked out once, for hot loops over few distinct arguments."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

__all__ = ["Memo"]

K = TypeVar("K")
V = TypeVar("V")


class Memo(dict[K, V]):
    """``make(key)`` by ``key``, worked out at the first lookup of each key.

    A lookup of a known key is a plain dict lookup (``memo[key]``, or ``map(memo.__getitem__, keys)``),
    which costs a fraction of a cached function's call. With ``held``, the table starts afresh once
    it holds that many keys, so that a long-running process does not keep every key it ever met.
    """

    def __init__(self, make: Callable[[K], V], *, held: int | None = None) -> None:
        super().__init__()
        self.make = make
        self.held = held

    def __missing__(self, key: K) -> V:
        value = self.make(key)
        if self.held is not None and len(self) >= self.held:
            self.clear()
        self[key] = value
        return value
