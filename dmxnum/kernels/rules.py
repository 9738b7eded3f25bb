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
#: the MX scale-mode letters :func:`mx_shared_exponent` computes
SCALE_MODES = ("F", "C", "E", "R")


def bfp_shared_exponent(xp: Any, amax: Array) -> Array:
    """BFP/MXINT shared exponent ``clamp(floor(log2 amax), -127, 127)`` (SPEC
    section 3); a subnormal or zero ``amax`` gives -127."""
    return xp.clip((amax >> 23) - 127, -127, 127)


def mx_shared_exponent(xp: Any, amax: Array, fmt: Any) -> Array:
    """MXFP shared exponent ``E`` of blocks with maxima ``amax`` (int32 bits of
    ``max |x|``) under the scale mode of ``fmt`` (an ``MXFloat``: its element
    format and ``scale_mode`` letter; SPEC section 3, "MX scale modes").

    For a finite nonzero ``amax``, with the element's ``emax``, mantissa
    width ``m`` and largest value ``max_elem``:

    - ``F`` FLOOR: ``floor(log2 amax) - emax``;
    - ``C`` CEIL: ``ceil(log2 amax) - emax``;
    - ``E`` EVEN: ``floor(log2 r) - emax`` with ``r`` = ``amax`` rounded to
      ``m`` mantissa bits (``2^(22-m)`` added to its bits, the mantissa field
      cleared; an exponent field carried to 0xFF reads as 128);
    - ``R`` RCEIL: the smallest ``E`` with ``2^E >= fl32(amax / max_elem)``;

    a rounded ``amax`` or quotient of 0 gives -127; then ``E`` is clamped to
    ``[-127, 127]``. All-zero blocks give 0; NaN blocks (``amax >=
    0x7F800000``) an unspecified value in that range. Integer operations
    only: no float ``log2`` and no division, so XLA's rewrites and flushed
    subnormals cannot change it.

    RCEIL without dividing: ``fl32(amax / max_elem)`` rounds monotonically,
    so ``E`` is the smallest ``k`` with ``amax <= max_elem * 2^k``, except
    that a quotient in ``(2^-127, 2^-127 + 2^-150]`` rounds down to the
    subnormal ``2^-127`` (``E = -127``: ``amax`` at most one ulp above
    ``max_elem * 2^-127``). A normal quotient just above ``2^k`` never rounds
    down to it: ``amax - max_elem * 2^k`` is at least one ulp of ``amax``,
    over ``max_elem`` that exceeds half an ulp of ``2^k``.
    """
    el = fmt.element
    mode = fmt.scale_mode
    if mode not in SCALE_MODES:
        raise ValueError(f"MX scale mode {mode!r} is not supported; valid: {', '.join(SCALE_MODES)}")
    a = xp.minimum(amax, xp.full_like(amax, I.INF_BITS))  # NaN blocks: no int32 overflow below
    field = a >> 23  # biased exponent: floor(log2 a) + 127 for normals, 0 below
    if mode == "F":
        e = field - (127 + el.emax)
    elif mode == "C":
        e = field - (127 + el.emax) + xp.astype((a & 0x7FFFFF) != 0, a.dtype)
    elif mode == "E":
        e = ((a + (1 << (22 - el.man_bits))) >> 23) - (127 + el.emax)  # 0xFF: 128
    else:  # "R"
        top = I.value_bits(el.max_value)  # max_elem's bits; max_elem * 2^k has exponent field top>>23 + k
        k = field - (top >> 23)
        k = k + xp.astype((a & 0x7FFFFF) > (top & 0x7FFFFF), a.dtype)
        # max_elem * 2^-127 is normal (max_elem >= 4): its bits are top - (127 << 23)
        e = xp.where(a <= top - (127 << 23) + 1, xp.full_like(k, -127), k)
    e = xp.clip(e, -127, 127)
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
