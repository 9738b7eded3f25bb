"""The SPEC's block rules, each defined once and used by every path.

Block maxima arrive as the int32 bits of ``max |x|`` per block (NaN and
±Inf compare above every finite value). Every path and the encoder call
these functions; ``docs/kernels.md`` lists them.
"""

from __future__ import annotations

from typing import Any

from . import bitfields as I
from .paths import Ctx

Array = Any
SCALE_MODES = ("FLOOR",)


def bfp_shared_exponent(xp: Any, amax: Array) -> Array:
    """BFP/MXINT shared exponent ``clamp(floor(log2 amax), -127, 127)`` (SPEC
    section 3); a subnormal or zero ``amax`` gives -127."""
    return xp.clip((amax >> 23) - 127, -127, 127)


def mx_shared_exponent(xp: Any, amax: Array, element_emax: int, mode: str = "FLOOR") -> Array:
    """MXFP shared exponent ``E = max(floor(log2 amax) - emax_elem, -127)``
    (OCP MX v1.0; scale mode ``FLOOR``), 0 for an all-zero block.

    A subnormal ``amax`` reads as ``floor(log2) = -127`` here, which gives
    the same ``E = -127`` because ``emax_elem >= 0``.
    """
    if mode not in SCALE_MODES:
        raise ValueError(f"MX scale mode {mode!r} is not supported; valid: {', '.join(SCALE_MODES)}")
    if element_emax < 0:
        raise ValueError(f"MX element emax must be >= 0, got {element_emax}")
    e = xp.maximum((amax >> 23) - (127 + element_emax), xp.full_like(amax, -127))
    return xp.where(amax == 0, xp.zeros_like(e), e)


def nan_block(amax: Array) -> Array:
    """Per block: whether it holds a NaN or ±Inf (SPEC: the whole block becomes NaN)."""
    return amax >= I.INF_BITS


def nan_blocks(xp: Any, r: Array, is_nan: Array, ctx: Ctx, nan: Any = float("nan")) -> Array:
    """``r`` with every element of a NaN block replaced by ``nan`` (a float
    NaN, or ``I.QNAN_BITS`` for bit patterns); eager, skipped when no block is NaN."""
    if ctx.eager and not bool(xp.any(is_nan)):
        return r
    return xp.where(is_nan, xp.full_like(r, nan), r)
