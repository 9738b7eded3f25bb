"""Run-time guards of the guarded paths (``"bfp.float|integer"`` and kin).

Under XLA on CPU float32 subnormal operands read as zero and subnormal
results flush to zero (SPEC section 2). A blocked float path is exact there
when every block's quantum is at least ``2^-124``: then any subnormal input
or product lies below half a quantum and rounds (``N`` or ``Z``) to a
signed zero anyway, and every nonzero result is normal. Stochastic rounding
also needs every nonzero product normal. Whether that holds depends on the
data, so a guarded path computes the block maxima once, evaluates its
predicate over all blocks, and runs the float branch or the exact integer
branch (one ``cond`` per array, :func:`.._backend.cond`).
"""

from __future__ import annotations

from typing import Any, Callable

from .. import _backend as B
from . import bitfields as I
from .blocking import Blocking
from .rules import bfp_shared_exponent, mx_shared_exponent

Array = Any


def block_max_and_lowest(xp: Any, x: Array, blocks: Blocking) -> tuple[Array, Array]:
    """Per block: the largest magnitude (int32 bits) and the smallest exponent
    field of a nonzero element (0: a subnormal; 255: none), in one pass over
    ``x`` (:func:`.._backend.max_pair_along`)."""
    mag = B.f32_to_i32(x) & I.MAG_MASK
    inverted = xp.where(mag == 0, xp.zeros_like(mag), 255 - (mag >> 23))
    top, low_inverted = B.max_pair_along(blocks.group(xp, mag, 0), blocks.group(xp, inverted, 0), blocks.axis + 1)
    return top, 255 - low_inverted


def choose(pred: Array, fast: Callable[..., Array], slow: Callable[..., Array], *operands: Array) -> Array:
    """``fast(*operands)`` when the boolean array ``pred`` holds everywhere, else ``slow(*operands)``."""
    return B.cond(B.namespace(pred).all(pred), fast, slow, *operands)


def bfp_safe(man_bits: int, rounding: str, amax: Array, low: Array | None = None) -> Array:
    """Per block: whether the BFP float path is exact under XLA. The quantum
    ``2^qe`` must be at least ``2^-124``; for ``S`` also every nonzero element
    normal with ``x * 2^-min(shared, 126)`` normal (``low``: the block's
    smallest exponent field, :func:`block_max_and_lowest`), so that nothing is
    read as zero or underflows."""
    xp = B.namespace(amax)
    shared = bfp_shared_exponent(xp, amax)
    ok = shared - (man_bits - 2) >= -124
    if rounding == "S":
        ok = ok & (low >= 1) & (low - 127 - xp.minimum(shared, xp.full_like(shared, 126)) >= -126)
    return ok | (amax == 0) | (amax >= I.INF_BITS)


def mx_safe(fmt: Any, amax: Array) -> Array:
    """Per block: whether the one-pass MXFP float path is exact under XLA (every
    quantum ``2^(emin + E - m)`` at least ``2^-124``, with ``E`` the shared
    exponent of ``fmt``'s scale mode)."""
    xp = B.namespace(amax)
    element = fmt.element
    shared = mx_shared_exponent(xp, amax, fmt)
    return (element.emin + shared - element.man_bits >= -124) | (amax >= I.INF_BITS)


def sbfp_safe(k_max: int, rounding: str, amax: Array, s: Array, low: Array | None) -> Array:
    """Whether the SBFP float path is exact under XLA (a boolean scalar).

    Every block's ``a = amax / C`` normal and its scale 0 or at least
    ``2^-124``; for ``S``/``U``/``D`` also no nonzero ``x`` with a quotient
    that may be subnormal (``x`` subnormal, or ``floor(log2 x) - floor(log2 s)
    < -125``), which XLA would flush to zero."""
    xp = B.namespace(amax)
    s_bits = B.f32_to_i32(s)
    a_normal = (amax >> 23) - 127 >= -126 + int(k_max).bit_length()
    safe = (amax >= I.INF_BITS) | (amax == 0) | (a_normal & ((s_bits == 0) | (s_bits >= (3 << 23))))  # s >= 2^-124
    safe = xp.all(safe)
    if rounding in ("S", "U", "D"):
        quotients_normal = (low >= 1) & (low - 127 - ((s_bits >> 23) - 127) >= -125)
        safe = safe & xp.all((s_bits == 0) | quotients_normal)
    return safe
