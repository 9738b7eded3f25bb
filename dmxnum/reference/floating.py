"""Reference floating point ``FP[s|e|m,b](XYZ)``, one element at a time.

For a finite nonzero input ``x`` (after the sign and flush rules):
``q = 2^(max(floor(log2|x|), 1 - b) - m)``, ``t = x / q`` exactly, ``k`` = ``t``
rounded by the letter ``Y`` with an unbounded exponent (so ``|k|`` may reach
``2^(m+1)``, the next binade). When ``m = 0`` a nearest tie goes to the
neighbour whose exponent code is even. Then the overflow column of the scheme
``Z`` applies when ``|k| * q`` exceeds the largest finite value.

The limits are derived here again from the scheme table, not read from the
format value: finite exponent codes end at ``2^e - 2`` (S, I) or ``2^e - 1``
(E, A); the top code's largest mantissa is ``2^m - 2`` for E, else ``2^m - 1``.
"""

from __future__ import annotations

from fractions import Fraction
from functools import lru_cache

from ..formats import FloatingPoint
from .float32 import NAN, Num, exact, floor_log2, inf, pow2, zero
from .rounding import round_to_integer


def top_exponent_code(fmt: FloatingPoint) -> int:
    """Largest exponent code that holds finite values under the format's scheme."""
    all_ones = 2**fmt.exp_bits - 1
    return all_ones - 1 if fmt.scheme in ("S", "I") else all_ones


def largest_exponent(fmt: FloatingPoint) -> int:
    """Exponent of the largest normal: top finite code minus the bias."""
    return top_exponent_code(fmt) - fmt.bias


def smallest_exponent(fmt: FloatingPoint) -> int:
    """Exponent of the smallest normal, ``1 - b``."""
    return 1 - fmt.bias


@lru_cache(maxsize=256)
def largest_magnitude(fmt: FloatingPoint) -> Fraction:
    """The largest finite value: ``(2^m + top mantissa) * 2^(emax - m)``, exactly."""
    top_mantissa = 2**fmt.man_bits - (2 if fmt.scheme == "E" else 1)
    return (2**fmt.man_bits + top_mantissa) * pow2(largest_exponent(fmt) - fmt.man_bits)


def _overflow(negative: bool, fmt: FloatingPoint) -> Num:
    """The overflow column: result for a rounded magnitude above max (or ±Inf input, not I)."""
    saturated = Num("finite", negative, largest_magnitude(fmt))
    if fmt.scheme != "I":
        return saturated
    # IEEE 754: the direction decides between Inf and max
    to_infinity = {
        "N": True,
        "S": True,
        "Z": False,
        "U": not negative,
        "D": negative,
    }[fmt.rounding]
    return inf(negative) if to_infinity else saturated


def cast_floating_element(x: Num, fmt: FloatingPoint, word: int | None = None) -> Num:
    """Cast one exact number ``x`` to ``fmt``; the result is an exact float32 ``Num``.

    NaN stays NaN. Unsigned formats give ``+0`` for every input <= 0 (``-0``
    and ``-Inf`` included). ±Inf: scheme I keeps it, S/E/A saturate to ±max.
    Flush (``X = F``): ``|x| < 2^(1-b)`` gives a zero of the input's sign
    (decided on the input, before rounding). A zero result keeps the input's
    sign. ``x`` need not itself be a float32 (the MX reference passes exact
    scaled values).
    """
    if x.is_nan:
        return NAN
    if not fmt.signed and x.negative:
        return zero(False)
    if x.is_inf:
        return x if fmt.scheme == "I" else _overflow(x.negative, fmt)
    mag = x.magnitude
    if mag == 0:
        return x
    emin = smallest_exponent(fmt)
    if fmt.flush and mag < pow2(emin):
        return zero(x.negative)
    quantum_exp = max(floor_log2(mag), emin) - fmt.man_bits

    def code(k: int) -> int:
        """Exponent code of the value ``|k| * 2^quantum_exp`` (m = 0 only: |k| in 0, 1, 2)."""
        return 0 if k == 0 else quantum_exp + fmt.bias + abs(k).bit_length() - 1

    def even_code_tie(k0: int) -> int:
        return k0 if code(k0) % 2 == 0 else k0 + 1

    tie = even_code_tie if fmt.man_bits == 0 else None
    k = round_to_integer(x.value / pow2(quantum_exp), fmt.rounding, word, tie)
    rounded = abs(k) * pow2(quantum_exp)
    if rounded > largest_magnitude(fmt):
        return _overflow(x.negative, fmt)
    return exact(rounded if not x.negative else -rounded, x.negative)
