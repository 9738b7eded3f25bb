"""The BFP family ``BFP[n|8]{b,d}(XY)``: kernels and paths (MXINT reuses them, :mod:`.mxint`).

Paths, in selection order: ``bfp.float`` (IEEE backends: float operations,
rounding N, Z or S), ``bfp.float|integer`` (XLA: the float kernel when every
block passes :func:`.guards.bfp_safe`, else the integer one) and
``bfp.integer``.
"""

from __future__ import annotations

from typing import Any

from .. import _backend as B
from ..formats.block import BlockFloatingPoint
from . import bitfields as I
from .blocking import blocking_for
from .float_ops import block_maxima, pow2, round_to_integer, stochastic_subnormals, ungroup
from .guards import bfp_safe, block_max_and_lowest, choose
from .paths import Ctx, Path, all_of, always, float_rounding, ieee_only, xla_only
from .rules import bfp_shared_exponent, nan_block, nan_blocks

Array = Any


def block_shared(xp: Any, p: I.Parts, fmt: Any, shared_of_amax: Any) -> tuple[Array, Array, Array]:
    """Per element ``(shared, zero_block, nan_block)``: the block's shared value
    ``shared_of_amax(amax_bits)`` (computed once per block), and whether its
    ``max |x|`` is 0 or non-finite (NaN/Inf bits compare above finite ones)."""
    blocks = blocking_for(p.bits, fmt)
    amax = blocks.reduce_max(xp, p.mag)
    packed = shared_of_amax(amax) * 4 + xp.astype(amax == 0, amax.dtype) + 2 * xp.astype(nan_block(amax), amax.dtype)
    packed = blocks.spread(xp, packed)
    shared = packed >> 2
    return shared, (packed & 1) == 1, (packed & 2) == 2


def cast_bfp_bits(xp: Any, p: I.Parts, fmt: BlockFloatingPoint, ctx: Ctx, words: Array | None = None) -> Array:
    """int32 bits of the BFP cast of float32 values ``p``."""
    shared, zero_block, is_nan = block_shared(xp, p, fmt, lambda amax: bfp_shared_exponent(xp, amax))
    qe = shared - (fmt.man_bits - 2)
    k, _ = I.round_to_quantum(xp, p, qe, fmt.rounding, words)
    zero = xp.zeros_like(k)
    limit = xp.where(p.neg, zero - fmt.k_min, zero + fmt.k_max)
    k = xp.where(zero_block, zero, xp.minimum(k, limit))
    out = I.with_sign(xp, I.compose(xp, k, qe), p.neg)
    return nan_blocks(xp, out, is_nan, ctx, I.QNAN_BITS)


def cast_integer(xp: Any, x: Array, fmt: BlockFloatingPoint, words: Array | None, ctx: Ctx) -> Array:
    """``fmt(x)`` by the exact integer pipeline."""
    return B.i32_to_f32(cast_bfp_bits(xp, I.split(xp, B.f32_to_i32(x)), fmt, ctx, B.as_top24(words)))


def cast_float(
    xp: Any, x: Array, fmt: BlockFloatingPoint, words: Array | None, ctx: Ctx,
    amax: Array | None = None, normal_products: bool = False,
) -> Array:
    """``fmt(x)`` by float operations: per block ``k = round(x * 2^-qe)``,
    clamped, times ``2^qe``. ``normal_products``: the caller has checked that
    every nonzero ``x * 2^-min(shared, 126)`` is a normal float (the XLA
    guard for S), so nothing underflowed or was read as zero."""
    blocks, amax = block_maxima(xp, x, fmt, ctx, amax)
    shared = bfp_shared_exponent(xp, amax)
    qe = shared - (fmt.man_bits - 2)
    is_nan = nan_block(amax)
    grouped = blocks.group(xp, x, 0)
    gw = None if words is None else blocks.group(xp, words, 0)
    if ctx.eager and bool(xp.all((qe >= -127) & (qe <= 126) | (amax == 0))):
        # eager, every 2^-qe normal: t = x * 2^-qe in one product (a zero
        # block uses qe = 0). Inexact only where t is a subnormal, far below
        # 1/2; t is 0 for a nonzero x only where x * 2^-qe <= 2^-150 (a tie
        # goes to 0), which needs qe >= 1.
        t = grouped * B.i32_to_f32((127 - xp.where(amax == 0, xp.zeros_like(qe), qe)) << 23)
        underflow = not normal_products and bool(xp.any((qe > 0) & ~is_nan))
        k = round_to_integer(xp, t, fmt.rounding, ctx, gw, grouped if underflow else None)
    else:
        # t = x * 2^-qe as (x * 2^-min(shared, 126)) * 2^(m-2) (halved for
        # shared = 127): one normal per-block power, cheap for inductor to
        # recompute at each use of t. The first product is inexact only below
        # 2^-126, where t < 2^-100 rounds the same way whatever its value
        # (zero, or w == 0 for S, see _round).
        up_scale = float(2 ** (fmt.man_bits - 2))
        down = B.i32_to_f32((127 - xp.minimum(shared, xp.full_like(shared, 126))) << 23)  # per block
        top = up_scale - (up_scale / 2) * xp.astype(shared == 127, down.dtype)  # per block
        if not ctx.ieee:
            # XLA: per-block factors stored once, NaN blocks folded into the
            # last product (k is finite), instead of recomputed per element
            up = xp.where(is_nan, xp.full_like(down, float("nan")), pow2(xp, qe))
            down, top, up = B.materialize((down, top, up))
        k = round_to_integer(xp, grouped * down * top, fmt.rounding, ctx, gw, None if normal_products else grouped)
    if gw is not None and not ctx.ieee and not normal_products:
        k = stochastic_subnormals(xp, grouped, k, qe, gw)
    k = xp.clip(k, float(fmt.k_min), float(fmt.k_max))
    if not ctx.ieee:
        return ungroup(xp, k * up, blocks)
    r = nan_blocks(xp, k * pow2(xp, qe), is_nan, ctx)
    return ungroup(xp, r, blocks)


def cast_guarded(xp: Any, x: Array, fmt: BlockFloatingPoint, words: Array | None, ctx: Ctx) -> Array:
    """XLA: :func:`cast_float` when every block passes :func:`.guards.bfp_safe`,
    else :func:`cast_integer` (``words`` raw, converted in each branch)."""
    if fmt.rounding == "S":
        blocks = blocking_for(x, fmt)
        amax, low = block_max_and_lowest(xp, x, blocks)
    else:
        blocks, amax = block_maxima(xp, x, fmt, ctx)
        low = None
    ok = bfp_safe(fmt.man_bits, fmt.rounding, amax, low)

    def fast(v: Array, a: Array, w: Array | None) -> Array:
        return cast_float(xp, v, fmt, B.as_top24(w), ctx, amax=a, normal_products=True)

    def slow(v: Array, a: Array, w: Array | None) -> Array:
        return cast_integer(xp, v, fmt, w, ctx)

    return choose(ok, fast, slow, x, amax, words)


PATHS = (
    Path("bfp.float", "NumPy and PyTorch (eager and compiled), rounding N, Z or S",
         all_of(ieee_only, float_rounding), cast_float),
    Path("bfp.float|integer", "JAX, rounding N, Z or S: the float kernel when every block's quantum is at "
         "least 2^-124 (S: and every product normal), else the integer kernel",
         all_of(xla_only, float_rounding), cast_guarded, words="raw"),
    Path("bfp.integer", "always (the exact integer pipeline)", always, cast_integer),
)
