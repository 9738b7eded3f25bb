"""The FP family ``FP[s|e|m,b](XYZ)``: its integer kernel (also the MX
element cast with a shared scale) and its paths.

Paths, in selection order: ``fp.native`` (eager: a round trip through a
backend dtype with the same grid), ``fp.quantum`` (eager: one rounding by a
per-element power-of-two quantum, :mod:`.fp_quantum`), ``fp.pattern``
(rounding the float32 bit pattern, :mod:`.fp_pattern`; every backend and
mode where it is exact), ``fp.integer`` (the exact integer pipeline).
"""

from __future__ import annotations

from typing import Any

from .. import _backend as B
from ..formats.floating import FloatingPoint
from . import bitfields as I
from . import fp_pattern, fp_quantum
from .paths import Ctx, Path, all_of, always, eager_only

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


def cast_integer(xp: Any, x: Array, fmt: FloatingPoint, words: Array | None, ctx: Ctx) -> Array:
    """``fmt(x)`` by the exact integer pipeline (every backend and mode)."""
    return B.i32_to_f32(cast_float_bits(xp, I.split(xp, B.f32_to_i32(x)), fmt, words))


def cast_unguarded(xp: Any, x: Array, fmt: FloatingPoint, ctx: Ctx) -> Array:
    """``fmt(x)`` (not stochastic) by the bit-pattern path where it is exact, else
    the integer pipeline: for FP casts inside another family's path (SBFP
    scales), with no data-dependent branch."""
    if fp_pattern.why_not(fmt, ctx) is None:
        return fp_pattern.cast_fp_pattern(xp, x, fmt, ctx)
    return cast_integer(xp, x, fmt, None, ctx)


def _native(fmt: FloatingPoint, ctx: Ctx) -> str | None:
    if B.native_float_dtype(fmt, ctx.backend) is None:
        return f"{ctx.backend} has no dtype with this grid and overflow rule"
    return None


def _convert_through(xp: Any, x: Array, fmt: FloatingPoint, words: Array | None, ctx: Ctx) -> Array:
    """``fmt(x)`` as a round trip through the native dtype (clamped first unless IEEE)."""
    v = x if fmt.scheme == "I" else xp.clip(x, -fmt.max_value, fmt.max_value)
    y = B.round_trip(v, B.native_float_dtype(fmt, ctx.backend))
    if fmt.scheme == "A" and bool(xp.any(xp.isnan(x))):
        y = xp.where(xp.isnan(x), x, y)  # ml_dtypes turns NaN into -0 for FP6/FP4
    return y


PATHS = (
    Path("fp.native", "eager NumPy/PyTorch, a backend dtype with the format's grid (FP16, BF16, FP8, FP6, FP4), "
         "rounding N", all_of(eager_only, _native), _convert_through),
    Path("fp.quantum", "eager NumPy/PyTorch, signed saturating non-flushing formats rounding N or Z",
         all_of(eager_only, lambda fmt, ctx: fp_quantum.why_not(fmt)),
         lambda xp, x, fmt, words, ctx: fp_quantum.cast_fp_quantum(xp, x, fmt)),
    Path("fp.pattern", "every backend and mode, formats whose grid is float32's above 2^emin (quantum "
         ">= 2^-149; XLA: 2^-124)", fp_pattern.why_not,
         lambda xp, x, fmt, words, ctx: fp_pattern.cast_fp_pattern(xp, x, fmt, ctx, words)),
    Path("fp.integer", "always (the exact integer pipeline)", always, cast_integer),
)
