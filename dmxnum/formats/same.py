"""``SAME``: the identity format (returns its input untouched)."""

from __future__ import annotations

from dataclasses import dataclass

from .base import Format


@dataclass(frozen=True)
class Same(Format):
    """The identity format: ``cast(x, SAME)`` returns ``x`` itself.

    Its limits (``bits_per_element``, ``max_value``, ``min_positive``) are
    ``None``: it keeps whatever it is given.
    """

    def __str__(self) -> str:
        return "SAME"
