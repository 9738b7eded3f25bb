"""Floating point ``FP[s|e|m,b](XY)`` / ``FP[s|e|m,b](XYZ)``.

``s`` 1 signed / 0 unsigned, ``e`` exponent bits (1..8), ``m`` mantissa bits
(0..23), ``b`` exponent bias. ``X`` is ``F`` (flush: ``|x| < 2^(1-b)`` gives a
signed zero) or ``_`` (keep subnormals); ``Y`` the rounding; ``Z`` the
special-value scheme:

* ``S`` (default): exponent codes ``1 .. 2^e-2`` finite, overflow saturates;
* ``I``: IEEE 754, overflow per rounding direction, Inf kept;
* ``E``: codes ``1 .. 2^e-1`` except all-ones mantissa in the top code (NaN),
  as OCP E4M3; saturates;
* ``A``: every code finite (OCP FP6/FP4); saturates.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import FormatParameterError
from .base import Format, check_range, check_rounding

SCHEMES = ("S", "I", "E", "A")


def bias_range(exp_bits: int, man_bits: int, scheme: str) -> tuple[int, int]:
    """The inclusive range of biases ``b`` for which ``FP[s|e|m,b](..Z)`` stays in float32.

    The largest exponent ``top - b`` must be ``<= 127`` and the smallest
    subnormal ``2^(1-b-m)`` must be ``>= 2^-149`` (SPEC section 3), where
    ``top`` is the largest exponent code holding finite values. The range is
    empty (``low > high``) when no bias works (e.g. ``e = 8, m = 23``,
    scheme ``E`` or ``A``).
    """
    top = (1 << exp_bits) - (1 if scheme in ("E", "A") else 2)
    return top - 127, 150 - man_bits


@dataclass(frozen=True)
class FloatingPoint(Format):
    """``FP[signed|exp_bits|man_bits,bias](flush rounding scheme)``."""

    signed: bool
    exp_bits: int
    man_bits: int
    bias: int
    flush: bool = False
    rounding: str = "N"
    scheme: str = "S"

    def __post_init__(self) -> None:
        if not isinstance(self.signed, bool):
            raise FormatParameterError(f"FP sign field must be 0 or 1, got {self.signed!r}")
        check_range("FP exponent bits e", self.exp_bits, 1, 8)
        check_range("FP mantissa bits m", self.man_bits, 0, 23)
        if not isinstance(self.bias, int) or isinstance(self.bias, bool):
            raise FormatParameterError(f"FP bias must be an integer, got {self.bias!r}")
        check_rounding(self.rounding)
        if self.scheme not in SCHEMES:
            raise FormatParameterError(
                f"FP special-value scheme {self.scheme!r} is not one of S, I, E, A"
            )
        if self.exp_bits == 1 and self.scheme in ("S", "I", "E"):
            raise FormatParameterError(
                f"FP with e = 1 and scheme {self.scheme} has no normal exponent codes; "
                "use scheme A (all codes finite) or e >= 2"
            )
        if self.scheme == "E" and self.man_bits == 0:
            raise FormatParameterError("FP scheme E needs m >= 1 (its NaN is the all-ones mantissa)")
        lo, hi = bias_range(self.exp_bits, self.man_bits, self.scheme)
        if not lo <= self.bias <= hi:
            raise FormatParameterError(
                f"FP bias {self.bias} leaves float32 (largest exponent {self.emax} must be <= 127, "
                f"smallest subnormal 2^{self.emin - self.man_bits} must be >= 2^-149); "
                f"for e = {self.exp_bits}, m = {self.man_bits}, scheme {self.scheme} "
                f"the bias must lie in {lo}..{hi}"
            )

    @property
    def stochastic(self) -> bool:
        return self.rounding == "S"

    @property
    def top_exponent_code(self) -> int:
        """Largest exponent code holding finite values."""
        full = (1 << self.exp_bits) - 1
        return full - 1 if self.scheme in ("S", "I") else full

    @property
    def emin(self) -> int:
        """Exponent of the smallest normal, ``1 - b``."""
        return 1 - self.bias

    @property
    def emax(self) -> int:
        """Exponent of the largest normal."""
        return self.top_exponent_code - self.bias

    @property
    def max_mantissa(self) -> int:
        """Largest mantissa field in the top exponent code."""
        full = (1 << self.man_bits) - 1
        return full - 1 if self.scheme == "E" else full

    @property
    def max_value(self) -> float:
        """Largest finite value."""
        return float((1 << self.man_bits) + self.max_mantissa) * 2.0 ** (self.emax - self.man_bits)

    @property
    def min_positive(self) -> float:
        """Smallest positive value (the smallest normal when flushing or m = 0)."""
        if self.flush or self.man_bits == 0:
            return 2.0 ** self.emin
        return 2.0 ** (self.emin - self.man_bits)

    @property
    def min_normal(self) -> float:
        """Smallest positive normal, ``2^(1-b)``."""
        return 2.0 ** self.emin

    @property
    def bits_per_element(self) -> float:
        return float(int(self.signed) + self.exp_bits + self.man_bits)

    def __str__(self) -> str:
        x = "F" if self.flush else "_"
        z = "" if self.scheme == "S" else self.scheme
        return f"FP[{int(self.signed)}|{self.exp_bits}|{self.man_bits},{self.bias}]({x}{self.rounding}{z})"
