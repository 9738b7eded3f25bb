"""The XP family ``XP[n,f](ABR)``: fixed-point kernels and paths.

Paths, in selection order: ``xp.float`` (float operations; rounding N, Z or
S; under XLA for fractions whose quanta stay normal) and ``xp.integer``.
"""

from __future__ import annotations

from typing import Any

from .. import _backend as B
from ..formats.fixed import FixedPoint
from . import bitfields as I
from .float_ops import pow2, round_to_integer, scale_pow2, stochastic_subnormals
from .paths import Ctx, Path, all_of, always, float_rounding

Array = Any


def cast_fixed_bits(xp: Any, p: I.Parts, fmt: FixedPoint, words: Array | None = None) -> Array:
    """int32 bits of ``fmt`` applied to float32 values ``p``."""
    zero = xp.zeros_like(p.lg)
    qe = zero - fmt.frac
    k, huge = I.round_to_quantum(xp, p, qe, fmt.rounding, words)
    is_nan = p.mag > I.INF_BITS
    if fmt.clamp:
        limit = xp.where(p.neg, zero - fmt.k_min, zero + fmt.k_max)
        k = xp.minimum(k, limit)  # ±Inf are huge and go to the range ends
        out = I.with_sign(xp, I.compose(xp, k, qe), p.neg)
    else:
        exact = huge | (p.mag >= I.INF_BITS)
        out = xp.where(exact, p.bits, I.with_sign(xp, I.compose(xp, k, qe), p.neg))
    return xp.where(is_nan, p.bits, out)


def cast_integer(xp: Any, x: Array, fmt: FixedPoint, words: Array | None, ctx: Ctx) -> Array:
    """``fmt(x)`` by the exact integer pipeline."""
    return B.i32_to_f32(cast_fixed_bits(xp, I.split(xp, B.f32_to_i32(x)), fmt, words))


def cast_float(xp: Any, x: Array, fmt: FixedPoint, words: Array | None, ctx: Ctx) -> Array:
    """``fmt(x)`` by float operations: ``k = round(x * 2^f)`` then ``k * 2^-f``
    (IEEE backends; XLA when :func:`_float_applies` holds, subnormal inputs of
    stochastic rounding redone on integers)."""
    f = fmt.frac
    if -126 <= f <= 126:  # 2^f and 2^-f are normal: constant scalar products
        # f >= 0: x * 2^f is 0 only for x = 0, no underflow to look after
        k = round_to_integer(xp, x * (2.0**f), fmt.rounding, ctx, words, x if f < 0 else None)
        if words is not None and not ctx.ieee:
            k = stochastic_subnormals(xp, x, k, xp.full_like(words, -f), words)
        down = 2.0**-f
    else:
        c = xp.full(x.shape, f, dtype=xp.int32, **B.device_kwargs(x))
        k = round_to_integer(xp, scale_pow2(xp, x, c, two_step=not -149 <= f <= 127), fmt.rounding, ctx, words, x)
        down = pow2(xp, -c)
    if fmt.clamp:
        return xp.clip(k, float(fmt.k_min), float(fmt.k_max)) * down
    r = k * down
    if 24 - f <= 127:
        r = xp.where(xp.abs(x) >= 2.0 ** (24 - f), x, r)  # multiples of 2^-f already
    return r


def _float_applies(fmt: FixedPoint, ctx: Ctx) -> str | None:
    """Under XLA every quantum must be normal and at least ``2^-124`` (any
    subnormal input or product then rounds to a signed zero by N or Z); for
    S the constant-product branch (``f >= -126``), whose subnormal inputs
    are redone on integers."""
    if ctx.ieee:
        return None
    lowest = -126 if fmt.rounding == "S" else -(2**31)
    if lowest <= fmt.frac <= 124:
        return None
    return f"under XLA the fraction f = {fmt.frac} must lie in {max(lowest, -(2**31))}..124"


PATHS = (
    Path("xp.float", "rounding N, Z or S; under XLA also -126 <= f <= 124 (S) or f <= 124 (N, Z)",
         all_of(float_rounding, _float_applies), cast_float),
    Path("xp.integer", "always (the exact integer pipeline)", always, cast_integer),
)
