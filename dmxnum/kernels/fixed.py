"""Kernel for ``XP[n,f](ABR)`` fixed-point casts."""

from __future__ import annotations

from typing import Any

from ..formats.fixed import FixedPoint
from . import bits as I

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
