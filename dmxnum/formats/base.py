"""The common base of every number format and the rounding letters.

A format is an immutable, hashable value. ``fmt(x)`` casts ``x`` (NumPy, JAX
or PyTorch array) and ``str(fmt)`` prints the canonical shorthand, which
``dmxnum.parse`` reads back to an equal value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from ..errors import FormatParameterError

#: Rounding letters: nearest-even, stochastic, up (+inf), down (-inf), zero.
ROUNDINGS = ("N", "S", "U", "D", "Z")


def check_range(what: str, value: int, low: int, high: int | None = None) -> None:
    """Raise ``FormatParameterError`` unless ``low <= value <= high``."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise FormatParameterError(f"{what} must be an integer, got {value!r}")
    if value < low or (high is not None and value > high):
        allowed = f"{low}..{high}" if high is not None else f">= {low}"
        raise FormatParameterError(f"{what} = {value} is out of range; allowed: {allowed}")


def check_rounding(rounding: str) -> None:
    """Raise ``FormatParameterError`` unless ``rounding`` is a rounding letter."""
    if rounding not in ROUNDINGS:
        raise FormatParameterError(
            f"rounding {rounding!r} is not one of {', '.join(ROUNDINGS)} "
            "(N nearest-even, S stochastic, U up, D down, Z toward zero)"
        )


@dataclass(frozen=True)
class Format:
    """Base class of every format value."""

    blocked: ClassVar[bool] = False

    @property
    def stochastic(self) -> bool:
        """True when casting needs random words (stochastic rounding)."""
        return False

    # Limits: every format has each of them; ``None`` where it is not
    # meaningful (SAME has no storage width and no range).
    @property
    def bits_per_element(self) -> float | None:
        """Storage bits per element, including amortized shared bits."""
        return None

    @property
    def max_value(self) -> float | None:
        """Largest finite value the format can produce."""
        return None

    @property
    def min_positive(self) -> float | None:
        """Smallest positive value the format can produce."""
        return None

    def describe(self) -> Any:
        """This format's catalogue row: a :class:`dmxnum.formats.catalogue.FormatInfo`
        ``(name, shorthand, bits_per_element, max_value, min_positive)``,
        ``name`` its alias or ``None``."""
        from .catalogue import describe

        return describe(self)

    def __call__(self, x: Any, key: Any = None, random_bits: Any = None, *, scale: Any = None) -> Any:
        """Cast ``x`` to this format; same as ``dmxnum.cast(x, self, key, random_bits, scale=scale)``."""
        from ..casting import cast

        return cast(x, self, key=key, random_bits=random_bits, scale=scale)
