"""FP casts on the float32 bit pattern, plus one scaled product for small values.

For ``|x| >= 2^emin`` (the format's smallest normal, at least float32's) the
format keeps ``m`` of float32's 23 fraction bits, so rounding ``|x|`` is
rounding its magnitude bits to a multiple of ``2^d``, ``d = 23 - m``: float32
bit patterns of non-negative values are monotonic, and a carry into the
exponent field is the step to the next binade (or to Inf). This is integer
arithmetic only. Below ``2^emin`` the quantum is the constant
``q = 2^(emin - m)``: ``t = |x| / q`` is a product by a constant power of two
(exact when at least 1; below 1 only ``N`` and ``Z`` use it, whose results
do not depend on the lost bits of a tiny ``t``), rounded as a float (``round``, ``floor`` and the
fraction ``t - floor(t)`` are exact), and ``k * q`` is exact.

Exact on NumPy, PyTorch (eager and ``torch.compile``) and JAX. Under XLA on
CPU, float32 subnormal operands read as zero: a subnormal ``x`` (only reached
when ``emin > -126``) is below half of ``q >= 2^-124``, so ``N`` and ``Z``
give zero anyway, and ``S``/``U``/``D`` decide it from the integer bits.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _backend as B
from ..formats.floating import FloatingPoint
from . import bitfields as I
from .paths import Ctx

Array = Any
_F32_MAX = float(np.finfo(np.float32).max)


def why_not(fmt: FloatingPoint, ctx: Ctx) -> str | None:
    """``None`` when :func:`cast_fp_pattern` computes ``fmt`` exactly in ``ctx``, else the reason."""
    if fmt.emin < -126:
        return f"emin {fmt.emin} is below float32's -126"
    if fmt.max_value > _F32_MAX:
        return "the largest value exceeds float32's"
    m = fmt.man_bits
    if m == 0 and fmt.rounding == "N" and fmt.bias % 2 == 0:
        return "m = 0 with an even bias: ties go to the even exponent code, float32's parity differs"
    if fmt.emin == -126:
        return None  # float32's own exponent grid: no small branch
    if m < fmt.emin and fmt.rounding not in ("N", "Z"):
        return f"rounding {fmt.rounding} below 2^emin would need the bits lost by |x| / q < 1"
    if m - fmt.emin > 127:
        return "2^(m - emin) is above float32's range"
    lowest = -149 if ctx.ieee else -124
    if fmt.emin - m < lowest:
        return f"smallest quantum 2^{fmt.emin - m} below 2^{lowest}" + ("" if ctx.ieee else " (XLA flushes subnormals)")
    return None


def cast_fp_pattern(xp: Any, x: Array, fmt: FloatingPoint, ctx: Ctx, words: Array | None = None) -> Array:
    """``fmt(x)`` for float32 ``x`` when :func:`why_not` is ``None`` (SPEC section 3 rules).

    With ``low`` the dropped bits and ``F = low * 2^(24-d)`` the fraction of a
    quantum in 24-bit fixed point, the magnitude rounds up by the letter:
    ``N`` above half or at half with an odd kept part; ``S`` (words ``w``)
    iff ``F > w`` for ``x > 0`` and iff ``F + w >= 2^24`` for ``x < 0``
    (``frac(t) > w * 2^-24`` of the signed ``t``); ``U``/``D`` iff inexact and
    the sign points that way; ``Z`` never.
    """
    r = fmt.rounding
    if r == "S" and words is None:
        raise ValueError("stochastic rounding needs random words")
    if r not in "NSUDZ":
        raise ValueError(f"unknown rounding letter {r!r}")
    bits = B.f32_to_i32(x)
    mag = bits & I.MAG_MASK
    neg = bits < 0
    out = _round_bits(xp, bits, mag, neg, 23 - fmt.man_bits, r, words, ctx.eager)
    if fmt.emin > -126:
        small = mag < I.pow2_bits(fmt.emin)
        where_small = xp.nonzero(small) if ctx.eager else None
        count = int(where_small[0].shape[0]) if ctx.eager else -1
        if 0 <= count <= B.size(x) // 8:
            # eager, few values below 2^emin: round only those (PyTorch's
            # eager ``where`` costs about seven elementwise products); the
            # indices are found once (each boolean index is a search)
            if count:
                out = out + 0 if out is mag else out  # a fresh array to write into
                sub = None if words is None else words[where_small]
                out[where_small] = _round_small(
                    xp, x[where_small], mag[where_small], neg[where_small], fmt, ctx, sub
                )
        elif count >= 0:  # eager, many small values: an integer blend beats ``where`` there
            rounded_small = _round_small(xp, x, mag, neg, fmt, ctx, words)
            out = out + (rounded_small - out) * xp.astype(small, out.dtype)
        else:
            out = xp.where(small, _round_small(xp, x, mag, neg, fmt, ctx, words), out)
    return B.i32_to_f32(_finish(xp, bits, mag, neg, out, fmt, ctx))


def _select_rare(xp: Any, eager: bool, cond: Array, a: Array, b: Array) -> Array:
    """``where(cond, a, b)``; eager, skipped when no element meets ``cond``."""
    if eager and not bool(xp.any(cond)):
        return b
    return xp.where(cond, a, b)


def _round_bits(
    xp: Any, bits: Array, mag: Array, neg: Array, d: int, r: str, words: Array | None, eager: bool
) -> Array:
    """Magnitude bits rounded to a multiple of ``2^d`` by the letter ``r``.

    ``S`` reads the decision as a carry: with ``F < 2^24`` and ``w < 2^24``,
    ``F > w`` iff ``F + (2^24 - 1 - w) >= 2^24`` and ``F + w >= 2^24`` is
    itself a carry, so ``up = (F + (x < 0 ? w : w ^ 0xFFFFFF)) >> 24``:
    integer operations only, no booleans (each a full pass in eager PyTorch).
    """
    if d == 0:
        return mag
    if r == "N":  # add just under half a quantum, plus one when the kept part is odd
        return (mag + ((1 << (d - 1)) - 1) + ((mag >> d) & 1)) & ~((1 << d) - 1)
    low = mag & ((1 << d) - 1)
    kept = mag - low
    if r == "Z":
        return kept
    elif r == "S" and not eager:  # compiled: no updates in place (they keep inductor from fusing)
        positive = ~(bits >> 31) & 0xFFFFFF  # 0 for x < 0, 2^24 - 1 otherwise
        return kept + (((low << (24 - d)) + (words ^ positive)) >> 24 << d)
    elif r == "S":
        # eager: updates in place (NumPy, PyTorch): each new array costs
        # eager PyTorch several times the operation itself
        addend = bits >> 31
        addend ^= -1
        addend &= 0xFFFFFF  # 0 for x < 0, 2^24 - 1 otherwise
        addend ^= words
        low <<= 24 - d
        low += addend
        low >>= 24
        low <<= d
        kept += low
        return kept
    elif r == "U":
        up = (low != 0) & ~neg
    else:  # D
        up = (low != 0) & neg
    return kept + (xp.astype(up, kept.dtype) << d)


def _round_small(
    xp: Any, x: Array, mag: Array, neg: Array, fmt: FloatingPoint, ctx: Ctx, words: Array | None
) -> Array:
    """Magnitude bits of ``|x|`` rounded to the constant quantum ``2^(emin - m)``
    (used where ``|x| < 2^emin``)."""
    qe = fmt.emin - fmt.man_bits
    t = xp.abs(x) * (2.0 ** -qe)
    r = fmt.rounding
    if r == "N":
        k = xp.round(t)
    else:
        k = xp.floor(t)
        if r != "Z":
            f = t - k
            if r == "S":
                u = B.int_to_f32(words) * (2.0**-24)
                up = xp.where(neg, (f > 0) & (f >= 1 - u), f > u)
            else:
                up = (f > 0) & (~neg if r == "U" else neg)
            if not ctx.ieee:  # XLA reads the subnormals as zero
                up = xp.where(mag < 0x00800000, _subnormal_up(xp, mag, neg, qe, r, words), up)
            k = xp.where(up, k + 1, k)
    return B.f32_to_i32(k * (2.0**qe))


def _subnormal_up(xp: Any, mag: Array, neg: Array, qe: int, r: str, words: Array | None) -> Array:
    """Round-up decision for float32 subnormals (read as zero by XLA on CPU),
    from ``t = mag * 2^(-149 - qe) < 1/2``: ``F = floor(t * 2^24)`` is
    ``mag >> (qe + 125)`` and ``sticky`` marks the bits shifted out."""
    if r in ("U", "D"):
        return (mag != 0) & (~neg if r == "U" else neg)
    shift = min(qe + 125, 24)  # mag < 2^23: F, sticky as for 31 (see float_ops.stochastic_subnormals)
    frac = mag >> shift
    sticky = (mag & ((1 << shift) - 1)) != 0
    return xp.where(neg, frac >= (1 << 24) - words, (frac > words) | ((frac == words) & sticky))


def _finish(xp: Any, bits: Array, mag: Array, neg: Array, rounded: Array, fmt: FloatingPoint, ctx: Ctx) -> Array:
    """Overflow by scheme and rounding, flushing, sign, NaN and unsigned
    formats (as the integer pipeline)."""
    eager = ctx.eager
    max_mag = I.value_bits(fmt.max_value)
    r = fmt.rounding
    if fmt.scheme != "I" or r == "Z":
        out = xp.clip(rounded, None, max_mag)  # saturate (Inf bits lie above every finite)
        if fmt.scheme == "I":
            out = _select_rare(xp, eager, mag == I.INF_BITS, xp.full_like(out, I.INF_BITS), out)
    elif r in ("N", "S"):
        out = _select_rare(xp, eager, rounded > max_mag, xp.full_like(rounded, I.INF_BITS), rounded)
    else:  # U, D: overflow goes to Inf one way only; Inf stays Inf
        to_inf = (~neg if r == "U" else neg) | (mag == I.INF_BITS)
        top = xp.full_like(rounded, max_mag)
        out = _select_rare(xp, eager, rounded > max_mag, xp.where(to_inf, xp.full_like(top, I.INF_BITS), top), rounded)
    if fmt.flush:
        out = xp.where(mag < I.pow2_bits(fmt.emin), xp.zeros_like(out), out)
    if not eager:
        out = out | (bits & I.SIGN_BIT)
    else:
        if out is mag:  # (m = 23) never update mag itself: NaN is read from it below
            out = out + 0
        out |= bits & I.SIGN_BIT  # in place
    is_nan = mag > I.INF_BITS
    if not fmt.signed:
        out = xp.where((neg | (mag == 0)) & ~is_nan, xp.zeros_like(out), out)
    return _select_rare(xp, eager, is_nan, bits, out)
