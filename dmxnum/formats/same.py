"""``SAME``: the identity format (returns its input untouched)."""

from __future__ import annotations

from dataclasses import dataclass

from .base import Format


@dataclass(frozen=True)
class Same(Format):
    """The identity format: ``cast(x, SAME)`` returns ``x`` itself."""

    @property
    def bits_per_element(self) -> float:
        return float("nan")

    def __str__(self) -> str:
        return "SAME"
