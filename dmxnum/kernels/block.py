"""Kernels for ``BFP[n|8]{b,d}(XY)``, ``MXINT{n}{b,d}`` and ``MXFP...{b,d}``."""

from __future__ import annotations

from typing import Any

from ..formats.block import BlockFloatingPoint
from ..formats.mx import MXFloat
from . import bits as I
from .blocks import blocking_for
from .floating import cast_float_bits

Array = Any


def block_amax_bits(xp: Any, p: I.Parts, fmt: Any) -> Array:
    """Per element: the int32 bits of its block's ``max |x|`` (NaN > Inf > finite)."""
    blocks = blocking_for(p.bits, fmt)
    return blocks.spread(xp, blocks.reduce_max(xp, p.mag))


def cast_bfp_bits(xp: Any, p: I.Parts, fmt: BlockFloatingPoint, words: Array | None = None) -> Array:
    """int32 bits of the BFP cast of float32 values ``p``."""
    amax = block_amax_bits(xp, p, fmt)
    shared = xp.clip(I.floor_log2_of_mag(xp, amax), -127, 127)
    qe = shared - (fmt.man_bits - 2)
    k, _ = I.round_to_quantum(xp, p, qe, fmt.rounding, words)
    zero = xp.zeros_like(k)
    limit = xp.where(p.neg, zero - fmt.k_min, zero + fmt.k_max)
    k = xp.where(amax == 0, zero, xp.minimum(k, limit))
    out = I.with_sign(xp, I.compose(xp, k, qe), p.neg)
    return xp.where(amax >= I.INF_BITS, xp.full_like(out, I.QNAN_BITS), out)


def cast_mxfp_bits(xp: Any, p: I.Parts, fmt: MXFloat) -> Array:
    """int32 bits of the OCP MX floating-point cast of float32 values ``p``."""
    amax = block_amax_bits(xp, p, fmt)
    shared = xp.maximum(I.floor_log2_of_mag(xp, amax) - fmt.element_emax, xp.full_like(amax, -127))
    shared = xp.where(amax == 0, xp.zeros_like(shared), shared)
    out = cast_float_bits(xp, p, fmt.element, None, scale_exp=shared)
    return xp.where(amax >= I.INF_BITS, xp.full_like(out, I.QNAN_BITS), out)
