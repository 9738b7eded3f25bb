"""Kernel for ``FP[s|e|m,b](XYZ)`` casts (and MX element casts with a shared scale)."""

from __future__ import annotations

from typing import Any

from ..formats.floating import FloatingPoint
from . import bits as I

Array = Any


def cast_float_bits(
    xp: Any,
    p: I.Parts,
    fmt: FloatingPoint,
    words: Array | None = None,
    scale_exp: Array | int = 0,
) -> Array:
    """int32 bits of ``fmt`` applied to float32 values ``p`` (see SPEC section 3).

    ``scale_exp`` shifts the format by ``2^scale_exp`` (used by MX: the element
    format applied to ``x / 2^E`` and scaled back by ``2^E``, both exact).
    """
    m = fmt.man_bits
    emin = fmt.emin + scale_exp
    zero = xp.zeros_like(p.lg)
    emin_arr = zero + emin
    qe = xp.maximum(p.lg, emin_arr) - m
    tie_up = None
    if m == 0 and fmt.rounding == "N":
        # m = 0: a tie goes to the even exponent code (IEEE 754), code = lg + b
        code_odd = ((p.lg - scale_exp + fmt.bias) & 1) == 1
        tie_up = xp.where(p.lg >= emin_arr, code_odd, xp.zeros_like(code_odd))
    k, _ = I.round_to_quantum(xp, p, qe, fmt.rounding, words, tie_up)
    mag = I.compose(xp, k, qe)

    max_mag = I.compose(
        xp,
        zero + ((1 << m) + fmt.max_mantissa),
        zero + (fmt.emax - m + scale_exp),
    )
    overflow = mag > max_mag
    is_inf = p.mag == I.INF_BITS
    is_nan = p.mag > I.INF_BITS
    inf = xp.full_like(mag, I.INF_BITS)
    if fmt.scheme == "I":
        r = fmt.rounding
        if r in ("N", "S"):
            to_inf = overflow
        elif r == "Z":
            to_inf = xp.zeros_like(overflow)
        elif r == "U":
            to_inf = overflow & ~p.neg
        else:  # D
            to_inf = overflow & p.neg
        mag = xp.where(overflow, xp.where(to_inf, inf, max_mag), mag)
        mag = xp.where(is_inf, inf, mag)
    else:
        mag = xp.where(overflow | is_inf, max_mag, mag)
    if fmt.flush:
        mag = xp.where(p.lg < emin_arr, zero, mag)
        mag = xp.where(p.sig == 0, zero, mag)  # zeros stay zeros (lg is meaningless there)
    out = I.with_sign(xp, mag, p.neg)
    out = xp.where(is_nan, p.bits, out)
    if not fmt.signed:
        nonpos = p.neg | (p.mag == 0)
        out = xp.where(nonpos & ~is_nan, zero, out)
    return out
