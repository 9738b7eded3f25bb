"""Fixed point ``XP[n,f](ABR)``: an n-bit two's-complement integer ``k`` times ``2^-f``.

``A`` is ``C`` (clamp to the n-bit range) or ``_`` (unclamped: ``k * 2^-f``
rounded to float32); ``B`` is ``S`` (symmetric range, ``-(2^(n-1)-1)``) or
``_`` (asymmetric, ``-2^(n-1)``); ``R`` is the rounding letter. The quantum is
``q = 2^-f``; ±Inf go to the ends of a clamped range.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import FormatParameterError
from .base import Format, check_range, check_rounding


@dataclass(frozen=True)
class FixedPoint(Format):
    """``XP[bits,frac](clamp symmetric rounding)``."""

    bits: int
    frac: int
    clamp: bool = True
    symmetric: bool = True
    rounding: str = "N"

    def __post_init__(self) -> None:
        check_range("XP width n", self.bits, 2, 25)
        if not isinstance(self.frac, int) or isinstance(self.frac, bool):
            raise FormatParameterError(f"XP fraction bits f must be an integer, got {self.frac!r}")
        # every value k * 2^-f must be an exact finite float32: the largest
        # magnitude is 2^(n-1) * 2^-f (asymmetric) or (2^(n-1) - 1) * 2^-f
        top = 128 if (self.symmetric and self.clamp) else 127
        if self.frac > 149 or self.bits - 1 - self.frac > top:
            raise FormatParameterError(
                f"XP[{self.bits},{self.frac}] has values that are not exact finite float32; "
                f"for n = {self.bits} the fraction bits f must lie in {self.bits - 1 - top}..149"
            )
        check_rounding(self.rounding)

    @property
    def stochastic(self) -> bool:
        return self.rounding == "S"

    @property
    def quantum_exponent(self) -> int:
        """``log2`` of the quantum ``q = 2^-f``."""
        return -self.frac

    @property
    def k_max(self) -> int:
        """Largest integer code value ``2^(n-1) - 1``."""
        return (1 << (self.bits - 1)) - 1

    @property
    def k_min(self) -> int:
        """Smallest integer code value (``-k_max`` symmetric, else ``-2^(n-1)``)."""
        return -self.k_max if self.symmetric else -(1 << (self.bits - 1))

    @property
    def bits_per_element(self) -> float:
        return float(self.bits)

    @property
    def max_value(self) -> float:
        """Largest value of the n-bit range, ``(2^(n-1)-1) * 2^-f``."""
        return float(self.k_max) * 2.0 ** (-self.frac)

    @property
    def min_positive(self) -> float:
        """Smallest positive value, ``2^-f``."""
        return 2.0 ** (-self.frac)

    def __str__(self) -> str:
        a = "C" if self.clamp else "_"
        b = "S" if self.symmetric else "_"
        return f"XP[{self.bits},{self.frac}]({a}{b}{self.rounding})"
