"""Block floating point ``BFP[n|8]{b,d}(XY)`` and MX integer ``MXINT{n}{b,d}``.

Blocks of ``b`` consecutive elements along axis ``d`` (the last block may be
shorter) share one 8-bit exponent ``E = clamp(floor(log2(amax)), -127, 127)``;
each element is an n-bit signed integer ``k`` times ``q = 2^(E-(n-2))``.
A block holding NaN or ±Inf becomes all NaN; an all-zero block keeps signed
zeros. ``X`` is ``S`` (symmetric range ``±(2^(n-1)-1)``) or ``_``
(asymmetric, down to ``-2^(n-1)``).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import FormatParameterError
from .base import Format, check_range, check_rounding

SHARED_EXPONENT_BITS = 8


def check_block(block_size: int, axis: int) -> None:
    """Raise ``FormatParameterError`` unless the block size and axis are valid."""
    check_range("block size b", block_size, 1, None)
    if not isinstance(axis, int) or isinstance(axis, bool):
        raise FormatParameterError(f"block axis d must be an integer, got {axis!r}")


@dataclass(frozen=True)
class BlockFloatingPoint(Format):
    """``BFP[man_bits|8]{block_size,axis}(symmetric rounding)``."""

    man_bits: int
    block_size: int
    axis: int = -1
    symmetric: bool = True
    rounding: str = "N"

    blocked = True

    def __post_init__(self) -> None:
        check_range("BFP mantissa width n", self.man_bits, 2, 24)
        check_block(self.block_size, self.axis)
        check_rounding(self.rounding)

    @property
    def stochastic(self) -> bool:
        return self.rounding == "S"

    @property
    def k_max(self) -> int:
        """Largest integer mantissa ``2^(n-1) - 1``."""
        return (1 << (self.man_bits - 1)) - 1

    @property
    def k_min(self) -> int:
        """Smallest integer mantissa (``-k_max`` symmetric, else ``-2^(n-1)``)."""
        return -self.k_max if self.symmetric else -(1 << (self.man_bits - 1))

    @property
    def bits_per_element(self) -> float:
        return self.man_bits + SHARED_EXPONENT_BITS / self.block_size

    @property
    def max_value(self) -> float:
        """Largest value: ``k_max * 2^(127-(n-2))``."""
        return float(self.k_max) * 2.0 ** (127 - (self.man_bits - 2))

    @property
    def min_positive(self) -> float:
        """Smallest positive value: ``2^(-127-(n-2))``."""
        return 2.0 ** (-127 - (self.man_bits - 2))

    def __str__(self) -> str:
        x = "S" if self.symmetric else "_"
        return f"BFP[{self.man_bits}|8]{{{self.block_size},{self.axis}}}({x}{self.rounding})"


@dataclass(frozen=True)
class MXInt(Format):
    """``MXINT{bits}{block_size,axis}``: casts exactly as ``BFP[bits|8]{b,d}(SN)``."""

    bits: int
    block_size: int = 32
    axis: int = -1

    blocked = True

    def __post_init__(self) -> None:
        check_range("MXINT width n", self.bits, 2, 24)
        check_block(self.block_size, self.axis)

    @property
    def rounding(self) -> str:
        """MXINT always rounds to nearest, ties to even."""
        return "N"

    @property
    def as_bfp(self) -> BlockFloatingPoint:
        """The BFP format this casts as."""
        return BlockFloatingPoint(self.bits, self.block_size, self.axis, True, "N")

    @property
    def bits_per_element(self) -> float:
        return self.bits + SHARED_EXPONENT_BITS / self.block_size

    @property
    def max_value(self) -> float:
        return self.as_bfp.max_value

    @property
    def min_positive(self) -> float:
        return self.as_bfp.min_positive

    def __str__(self) -> str:
        return f"MXINT{self.bits}{{{self.block_size},{self.axis}}}"
