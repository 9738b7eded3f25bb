"""Kernels for ``BFP[n|8]{b,d}(XY)``, ``MXINT{n}{b,d}`` and ``MXFP...{b,d}``."""

from __future__ import annotations

from typing import Any

from ..formats.block import BlockFloatingPoint
from ..formats.mx import MXFloat
from . import bits as I
from .blocks import blocking_for
from .floating import cast_float_bits

Array = Any


def block_shared(xp: Any, p: I.Parts, fmt: Any, shared_of_amax: Any) -> tuple[Array, Array, Array]:
    """Per element ``(shared, zero_block, nan_block)``: the block's shared value
    ``shared_of_amax(amax_bits)`` (computed once per block), and whether its
    ``max |x|`` is 0 or non-finite (NaN/Inf bits compare above finite ones)."""
    blocks = blocking_for(p.bits, fmt)
    amax = blocks.reduce_max(xp, p.mag)
    packed = shared_of_amax(amax) * 4 + xp.astype(amax == 0, amax.dtype) + 2 * xp.astype(amax >= I.INF_BITS, amax.dtype)
    packed = blocks.spread(xp, packed)
    shared = packed >> 2
    return shared, (packed & 1) == 1, (packed & 2) == 2


def cast_bfp_bits(xp: Any, p: I.Parts, fmt: BlockFloatingPoint, words: Array | None = None) -> Array:
    """int32 bits of the BFP cast of float32 values ``p``."""
    shared, zero_block, nan_block = block_shared(
        xp, p, fmt, lambda amax: xp.clip(I.floor_log2_of_mag(xp, amax), -127, 127)
    )
    qe = shared - (fmt.man_bits - 2)
    k, _ = I.round_to_quantum(xp, p, qe, fmt.rounding, words)
    zero = xp.zeros_like(k)
    limit = xp.where(p.neg, zero - fmt.k_min, zero + fmt.k_max)
    k = xp.where(zero_block, zero, xp.minimum(k, limit))
    out = I.with_sign(xp, I.compose(xp, k, qe), p.neg)
    return xp.where(nan_block, xp.full_like(out, I.QNAN_BITS), out)


def cast_mxfp_bits(xp: Any, p: I.Parts, fmt: MXFloat) -> Array:
    """int32 bits of the OCP MX floating-point cast of float32 values ``p``."""

    def shared_exponent(amax: Array) -> Array:
        e = xp.maximum(I.floor_log2_of_mag(xp, amax) - fmt.element_emax, xp.full_like(amax, -127))
        return xp.where(amax == 0, xp.zeros_like(e), e)

    shared, _, nan_block = block_shared(xp, p, fmt, shared_exponent)
    out = cast_float_bits(xp, p, fmt.element, None, scale_exp=shared)
    return xp.where(nan_block, xp.full_like(out, I.QNAN_BITS), out)
