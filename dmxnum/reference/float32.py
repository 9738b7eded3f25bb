"""Exact float32 <-> rational conversion, done on the bit pattern.

Every number the reference handles is a :class:`Num`: NaN, a signed infinity,
or a finite value held exactly as a :class:`fractions.Fraction` magnitude plus
a sign (so that ``+0`` and ``-0`` stay distinct). Decoding reads the sign,
exponent and mantissa fields of a float32 bit pattern; encoding writes them
back and refuses any value that is not exactly a float32. The only rounding
to float32 is :func:`round_to_float32`: IEEE 754 round-to-nearest-even with
subnormals, gradual underflow and overflow to infinity, computed on integers.
No floating-point arithmetic happens here.
"""

from __future__ import annotations

from fractions import Fraction
from functools import lru_cache
from typing import NamedTuple

import numpy as np

from .rounding import round_half_even

#: float32 layout: 23 stored mantissa bits, exponent bias 127.
MAN_BITS = 23
EXP_BIAS = 127
#: Exponent of the smallest normal / largest finite float32.
EMIN = 1 - EXP_BIAS
EMAX = EXP_BIAS
#: Bits written for a NaN result (the default quiet NaN).
NAN_BITS = 0x7FC00000
_INF_BITS = 0x7F800000
_SIGN_BIT = 0x80000000


class Num(NamedTuple):
    """An extended real: ``kind`` is ``"finite"``, ``"inf"`` or ``"nan"``.

    ``magnitude`` is the exact absolute value of a finite number (``0`` for
    zeros and for non-finite kinds); ``negative`` is the sign bit, kept for
    zeros and infinities too.
    """

    kind: str
    negative: bool
    magnitude: Fraction

    @property
    def is_nan(self) -> bool:
        return self.kind == "nan"

    @property
    def is_inf(self) -> bool:
        return self.kind == "inf"

    @property
    def is_finite(self) -> bool:
        return self.kind == "finite"

    @property
    def is_zero(self) -> bool:
        return self.kind == "finite" and self.magnitude == 0

    @property
    def value(self) -> Fraction:
        """The signed exact value of a finite number (``0`` for both zeros)."""
        if self.kind != "finite":
            raise ValueError(f"{self.kind} has no exact rational value")
        return -self.magnitude if self.negative else self.magnitude


NAN = Num("nan", False, Fraction(0))


def inf(negative: bool) -> Num:
    """``-Inf`` if ``negative`` else ``+Inf``."""
    return Num("inf", negative, Fraction(0))


def zero(negative: bool) -> Num:
    """``-0`` if ``negative`` else ``+0``."""
    return Num("finite", negative, Fraction(0))


def finite(value: Fraction, negative_if_zero: bool = False) -> Num:
    """The finite number ``value``; a zero gets the sign ``negative_if_zero``."""
    if value == 0:
        return zero(negative_if_zero)
    return Num("finite", value < 0, abs(Fraction(value)))


@lru_cache(maxsize=1024)
def pow2(e: int) -> Fraction:
    """``2**e`` exactly, for any integer ``e``."""
    return Fraction(1 << e) if e >= 0 else Fraction(1, 1 << -e)


def floor_log2(v: Fraction) -> int:
    """``floor(log2(v))`` for ``v > 0``, exactly (integer bit lengths, no ``log2``)."""
    if v <= 0:
        raise ValueError(f"floor_log2 needs a positive value, got {v}")
    n, d = v.numerator, v.denominator
    e = n.bit_length() - d.bit_length()  # 2^(e-1) < v < 2^(e+1)
    below = n < (d << e) if e >= 0 else (n << -e) < d
    return e - 1 if below else e


def decode_bits(bits: int) -> Num:
    """The exact value of the float32 with bit pattern ``bits`` (0 <= bits < 2^32)."""
    negative = bool(bits >> 31)
    exponent = (bits >> MAN_BITS) & 0xFF
    mantissa = bits & ((1 << MAN_BITS) - 1)
    if exponent == 0xFF:
        return NAN if mantissa else inf(negative)
    if exponent == 0:  # zero or subnormal: mantissa * 2^(EMIN - 23)
        return Num("finite", negative, mantissa * pow2(EMIN - MAN_BITS))
    return Num("finite", negative, ((1 << MAN_BITS) | mantissa) * pow2(exponent - EXP_BIAS - MAN_BITS))


def encode_bits(x: Num) -> int:
    """The float32 bit pattern of ``x``; ``ValueError`` unless ``x`` is exactly a float32.

    NaN encodes as :data:`NAN_BITS`; the sign bit of zeros and infinities is kept.
    """
    sign = _SIGN_BIT if x.negative else 0
    if x.is_nan:
        return NAN_BITS
    if x.is_inf:
        return sign | _INF_BITS
    mag = x.magnitude
    if mag == 0:
        return sign
    e = floor_log2(mag)
    if e < EMIN:
        scaled = mag * pow2(MAN_BITS - EMIN)  # the subnormal mantissa field
        if scaled.denominator != 1:
            raise ValueError(f"{mag} is not a float32 subnormal")
        return sign | scaled.numerator
    if e > EMAX:
        raise ValueError(f"{mag} exceeds the float32 range")
    significand = mag * pow2(MAN_BITS - e)
    if significand.denominator != 1:
        raise ValueError(f"{mag} needs more than 24 significant bits")
    return sign | ((e + EXP_BIAS) << MAN_BITS) | (significand.numerator - (1 << MAN_BITS))


def fl32(value: Fraction, negative_if_zero: bool = False) -> Num:
    """IEEE 754 float32 rounding of the exact ``value``, round-to-nearest-even.

    Subnormal results are rounded on the subnormal grid ``2^-149``; a value
    whose rounded magnitude reaches ``2^128`` becomes ±Inf. A result of zero
    keeps the sign of ``value`` (underflow), or ``negative_if_zero`` when
    ``value`` is exactly zero.
    """
    if value == 0:
        return zero(negative_if_zero)
    negative = value < 0
    mag = abs(Fraction(value))
    quantum_exp = max(floor_log2(mag), EMIN) - MAN_BITS
    k = round_half_even(mag / pow2(quantum_exp))
    rounded = k * pow2(quantum_exp)
    if rounded >= pow2(EMAX + 1):
        return inf(negative)
    return Num("finite", negative, rounded)


def exact(value: Fraction, negative_if_zero: bool = False) -> Num:
    """``value`` as a float32 number, checking that no rounding is needed.

    Raises ``AssertionError`` (a reference bug, not a user error) when
    ``value`` is not exactly a finite float32.
    """
    result = fl32(value, negative_if_zero)
    if not result.is_finite or result.value != value:
        raise AssertionError(f"reference bug: {value} is not an exact float32")
    return result


def round_to_float32(value: Fraction | int, negative_zero: bool = False) -> np.float32:
    """``value`` rounded to float32 (RNE, subnormals, overflow to ±Inf), as ``np.float32``.

    The rounding is computed exactly on integers, so it never double-rounds.
    A zero result is ``-0`` when the (nonzero) value was negative and
    underflowed, or when ``value == 0`` and ``negative_zero`` is true.
    """
    bits = encode_bits(fl32(Fraction(value), negative_zero))
    return np.array(bits, dtype=np.uint32).view(np.float32)[()]
