"""Casts to FP formats that share float32's exponent grid, on the bit pattern.

A format ``FP[1|8|m,127]`` has float32's exponent field: its values, the
subnormals included, are exactly the float32 values whose bit pattern has the
low ``d = 23 - m`` bits clear, and float32 bit patterns of non-negative values
are monotonic in the value. Rounding ``|x|`` to the format is then rounding
its magnitude bits to a multiple of ``2^d`` (a carry into the exponent field
is the step to the next binade, or to Inf), with integer operations only.
So this path is exact on every backend and immune to XLA's subnormal flushing,
FMA and reciprocal rewrites; it runs ``BF16`` under ``jax.jit`` and
``torch.compile`` in one fused pass.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _backend as B
from ..formats.floating import FloatingPoint
from . import bits as I

Array = Any


def applies(fmt: Any) -> bool:
    """Whether ``fmt`` is a signed FP format on float32's exponent grid with a
    largest value that float32 can hold."""
    return (
        isinstance(fmt, FloatingPoint)
        and fmt.signed
        and fmt.exp_bits == 8
        and fmt.bias == 127
        and fmt.man_bits <= 23
        and fmt.max_value <= float(np.finfo(np.float32).max)
    )


def cast_f32grid(xp: Any, x: Array, fmt: FloatingPoint, words: Array | None = None) -> Array:
    """``fmt(x)`` for float32 ``x`` when :func:`applies` holds (SPEC section 3 rules).

    With ``low`` the dropped bits and ``F = low * 2^(24-d)`` the fraction of a
    quantum in 24-bit fixed point, the magnitude rounds up by the letter:
    ``N`` above half or at half with an odd kept part; ``S`` (words ``w``)
    iff ``F > w`` for ``x > 0`` and iff ``F + w >= 2^24`` for ``x < 0``
    (``frac(t) > w * 2^-24`` of the signed ``t``); ``U``/``D`` iff inexact and
    the sign points that way; ``Z`` never.
    """
    bits = B.f32_to_i32(x)
    mag = bits & I.MAG_MASK
    neg = bits < 0
    d = 23 - fmt.man_bits
    rounded = mag
    if d > 0:
        low = mag & ((1 << d) - 1)
        kept = mag - low
        r = fmt.rounding
        if r == "N":
            half = 1 << (d - 1)
            odd = (mag & (1 << d)) != 0
            up = (low > half) | ((low == half) & odd)
        elif r == "Z":
            up = None
        elif r == "S":
            if words is None:
                raise ValueError("stochastic rounding needs random words")
            frac = xp.bitwise_left_shift(low, xp.full_like(low, 24 - d))
            up = xp.where(neg, frac + words >= (1 << 24), frac > words)
        elif r == "U":
            up = (low != 0) & ~neg
        elif r == "D":
            up = (low != 0) & neg
        else:
            raise ValueError(f"unknown rounding letter {r!r}")
        rounded = kept if up is None else xp.where(up, kept + (1 << d), kept)
    return B.i32_to_f32(_finish(xp, bits, mag, neg, rounded, fmt))


def _finish(xp: Any, bits: Array, mag: Array, neg: Array, rounded: Array, fmt: FloatingPoint) -> Array:
    """Overflow by scheme and rounding, flushing, NaN and sign (as the integer pipeline)."""
    max_mag = I.value_bits(fmt.max_value)
    inf = xp.full_like(rounded, I.INF_BITS)
    top = xp.full_like(rounded, max_mag)
    overflow = rounded > max_mag
    is_inf = mag == I.INF_BITS
    if fmt.scheme == "I":
        r = fmt.rounding
        if r in ("N", "S"):
            to_inf = overflow
        elif r == "U":
            to_inf = overflow & ~neg
        elif r == "D":
            to_inf = overflow & neg
        else:
            to_inf = None
        capped = top if to_inf is None else xp.where(to_inf, inf, top)
        out = xp.where(is_inf, inf, xp.where(overflow, capped, rounded))
    else:
        out = xp.where(overflow | is_inf, top, rounded)
    if fmt.flush:
        out = xp.where(mag < 0x00800000, xp.zeros_like(out), out)
    out = I.with_sign(xp, out, neg)
    return xp.where(mag > I.INF_BITS, bits, out)
