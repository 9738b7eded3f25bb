"""The SBFP family ``SBFP<XP[n,0](CXY)><FP[...]>{b,d}``: kernels and paths.

Paths, in selection order: ``sbfp.float`` (IEEE backends: the format's own
float operations, :func:`cast_float`), ``sbfp.float|integer`` (XLA: the float
kernel behind :func:`.guards.sbfp_safe`, else the integer one) and
``sbfp.integer`` (below).

The integer kernel: per block ``s = scaler(fl32(amax / C))`` with ``C = 2^(n-1) - 1``; elements
``k = clamp(round(fl32(x / s)))``; result ``fl32(k * s)``. The division by
``C`` is an exact integer long division (per block, so cheap). ``x / s`` and
``k * s`` are float operations made exact on every backend by scaling ``s``
into ``[1, 2)`` with an exact power of two ``2^K`` (computed on bits): then
``x * 2^K``, the quotient and the product are normal floats, and the cases
where the true quotient or product is subnormal are decided with integers.
"""

from __future__ import annotations

from typing import Any

from .. import _backend as B
from ..formats.scaled import ScaledBFP
from . import bitfields as I
from .blocking import blocking_for
from .float_ops import block_maxima, round_magnitude, ungroup
from .fp import cast_float_bits, cast_unguarded
from .guards import block_max_and_lowest, choose, sbfp_safe
from .paths import Ctx, Path, always, ieee_only, xla_only
from .rules import nan_block, nan_blocks

Array = Any


def div_by_int_f32_bits(xp: Any, p: I.Parts, divisor: int) -> Array:
    """int32 bits of ``fl32(|x| / divisor)`` (RNE, subnormals kept) for finite ``x``.

    Long division: ``q = floor(sig * 2^j / divisor)`` is grown bit by bit until
    it holds 26 bits; the remainder gives the sticky bit; one RNE rounding.
    """
    if divisor == 1:
        return p.mag
    steps = 26 + divisor.bit_length()  # enough for q >= 2^25 from any sig >= 1
    q = p.sig // divisor
    r = p.sig - q * divisor

    def step(state: tuple) -> tuple:
        q, r, shift = state
        grow = q < (1 << 25)
        r2 = r * 2
        bit = r2 >= divisor
        q = xp.where(grow, q * 2 + xp.astype(bit, q.dtype), q)
        r = xp.where(grow, r2 - xp.where(bit, divisor, 0), r)
        return q, r, shift + xp.astype(grow, shift.dtype)

    q, r, shift = B.repeat(steps, step, (q, r, xp.zeros_like(q)))
    sticky = r != 0
    # |x| / divisor = (q + frac) * 2^(e - shift), q in [2^25, 2^26) (or 0 for x = 0)
    exp = p.e - shift
    lg = 25 + exp
    qe = xp.maximum(lg, xp.full_like(lg, -126)) - 23
    s = qe - exp  # >= 2
    sc = xp.clip(s, 0, 31)
    ones = xp.ones_like(sc)
    k0 = xp.bitwise_right_shift(q, sc)
    rem = q - xp.bitwise_left_shift(k0, sc)
    half = xp.bitwise_left_shift(ones, sc - 1)
    up = (rem > half) | ((rem == half) & (sticky | ((k0 & 1) == 1)))
    k = k0 + xp.astype(up, k0.dtype)
    out = I.compose(xp, k, xp.maximum(qe, xp.full_like(qe, -149)))
    return xp.where(p.sig == 0, xp.zeros_like(out), out)


def cast_integer(xp: Any, x: Array, fmt: ScaledBFP, words: Array | None, ctx: Ctx) -> Array:
    """``fmt(x)`` by the exact integer pipeline (``words`` raw or top-24)."""
    words = B.as_top24(words)
    p = I.split(xp, B.f32_to_i32(x))
    blocks = blocking_for(x, fmt)
    amax = blocks.reduce_max(xp, p.mag)  # per block
    amax_parts = I.split(xp, amax)
    a_bits = div_by_int_f32_bits(xp, amax_parts, fmt.block.k_max)
    s_bits = cast_float_bits(xp, I.split(xp, a_bits), fmt.scaler)  # s >= 0, finite
    # scale s into [1, 2): s = S * 2^lg_s, s' = s * 2^-lg_s
    sp = I.split(xp, s_bits)
    s_unit, lg_s, s_sub_sig = scale_parts(xp, s_bits)
    block_nan = nan_block(amax)
    block_zero = s_bits == 0

    # per element
    lg_s_e = blocks.spread(xp, lg_s)
    s_unit_e = blocks.spread(xp, s_unit)
    s_sub_e = blocks.spread(xp, s_sub_sig)
    nan_e = blocks.spread(xp, block_nan)
    zero_e = blocks.spread(xp, block_zero)
    s_sig_e = blocks.spread(xp, sp.sig)

    # x' = |x| * 2^-lg_s exactly (when it is >= 2^-125; else the quotient is tiny)
    qx = p.e - lg_s_e
    tiny = (p.lg - lg_s_e) < -125
    xs_bits = I.compose(xp, p.sig, xp.maximum(qx, xp.full_like(qx, -149)))
    xs_bits = xp.where(tiny | (p.sig == 0), xp.full_like(xs_bits, 0x3F800000), xs_bits)
    num = B.i32_to_f32(xs_bits)
    den = B.i32_to_f32(s_unit_e)
    if not ctx.ieee:
        # a where on the data keeps the divisor full-shape: for a single block
        # XLA moved the rounding point before the broadcast of the scalar scale
        # and divided by its reciprocal (inexact). Where num is the stand-in 1,
        # any divisor will do
        den = xp.where(tiny | (p.sig == 0), xp.ones_like(den), den)
    den = B.rounding_point(den)
    quot = num / den  # normal / [1, 2): exact IEEE, no subnormals involved
    qp = I.split(xp, B.f32_to_i32(quot))
    qp = I.Parts(qp.bits, p.neg, qp.mag, qp.sig, qp.e, qp.lg)
    k, _ = I.round_to_quantum(xp, qp, xp.zeros_like(qp.lg), fmt.block.rounding, words)
    # tiny quotients: fl32(x / s) != 0 iff |x / s| > 2^-150
    d = p.lg - lg_s_e + 150
    x_norm = _normalized_sig(xp, p.sig)
    s_norm = _normalized_sig(xp, s_sig_e)
    nonzero_q = (d >= 1) | ((d == 0) & (x_norm > s_norm))
    nonzero_q = nonzero_q & (p.sig != 0)
    r = fmt.block.rounding
    pos = ~p.neg
    if r in ("N", "Z"):
        k_tiny = xp.zeros_like(k)
    elif r == "U":
        k_tiny = xp.astype(nonzero_q & pos, k.dtype)
    elif r == "D":
        k_tiny = xp.astype(nonzero_q & p.neg, k.dtype)
    else:
        k_tiny = xp.astype(nonzero_q & pos & (words == 0), k.dtype)
    k = xp.where(tiny | (p.sig == 0), k_tiny, k)
    zero = xp.zeros_like(k)
    limit = xp.where(p.neg, zero - fmt.block.k_min, zero + fmt.block.k_max)
    k = xp.minimum(k, limit)

    out = product_bits(xp, k, s_unit_e, lg_s_e, s_sub_e)
    out = xp.where((k == 0) | zero_e, zero, out)
    out = I.with_sign(xp, out, p.neg)
    out = xp.where(nan_e | (p.mag > I.INF_BITS), xp.full_like(out, I.QNAN_BITS), out)
    return B.i32_to_f32(out)


def product_bits(xp: Any, k: Array, unit: Array, lg_s: Array, sub_sig: Array) -> Array:
    """int32 magnitude bits of ``fl32(k * s)`` for integers ``0 <= k <= 2^24`` and
    ``s = unit * 2^lg_s`` (``unit`` the bits of ``s`` scaled into ``[1, 2)``;
    ``sub_sig`` the bits of a subnormal ``s``, else 0); 0 when ``k`` or ``s`` is 0.

    ``k * unit`` is one exact-rounded product of normal floats; scaling it back
    by ``2^lg_s`` is exact unless the result is subnormal, which only happens
    for a subnormal ``s`` with ``k * sub_sig < 2^23``: an exact integer product.
    """
    prod = B.f32_to_i32(B.int_to_f32(k) * B.i32_to_f32(unit))
    new_exp = (prod >> 23) + lg_s
    out = prod + xp.bitwise_left_shift(lg_s, xp.full_like(lg_s, 23))
    out = xp.where(new_exp >= 255, xp.full_like(out, I.INF_BITS), out)
    small = (sub_sig > 0) & (k <= 0x7FFFFF // xp.maximum(sub_sig, xp.ones_like(sub_sig)))
    out = xp.where(small, k * sub_sig, out)
    return xp.where((k == 0) | (lg_s < -149), xp.zeros_like(out), out)


def scale_parts(xp: Any, s_bits: Array) -> tuple[Array, Array, Array]:
    """``(unit, lg_s, sub_sig)`` of non-negative float32 scales, for :func:`product_bits`."""
    sp = I.split(xp, s_bits)
    sub_sig = xp.where(s_bits < 0x800000, s_bits, xp.zeros_like(s_bits))
    return _unit_bits(xp, sp), sp.lg, sub_sig


def _unit_bits(xp: Any, sp: I.Parts) -> Array:
    """Bits of ``s * 2^-floor(log2 s)`` in ``[1, 2)`` (1.0 for s = 0)."""
    unit = I.compose(xp, sp.sig, sp.e - sp.lg)
    return xp.where(sp.sig == 0, xp.full_like(unit, 0x3F800000), unit)


def _normalized_sig(xp: Any, sig: Array) -> Array:
    """``sig`` shifted so that its leading bit is bit 23 (``2^23 <= v < 2^24``; 0 stays 0)."""
    lgsig = (B.f32_to_i32(B.int_to_f32(sig)) >> 23) - 127
    return xp.bitwise_left_shift(sig, xp.clip(23 - lgsig, 0, 23))


def block_scales(xp: Any, amax: Array, fmt: ScaledBFP, ctx: Ctx) -> Array:
    """float32 per-block scales ``s = scaler(fl32(amax / C))`` from the int32
    bits of the block maxima (0 for NaN blocks)."""
    amax = xp.where(nan_block(amax), xp.zeros_like(amax), amax)
    a_max = B.i32_to_f32(amax)
    c = float(fmt.block.k_max)
    # a runtime divisor (amax < 0 never holds): XLA turns division by a
    # constant into a product by its reciprocal
    den = xp.where(amax < 0, xp.ones_like(a_max), xp.full_like(a_max, c))
    return cast_unguarded(xp, a_max / den, fmt.scaler, ctx)


def cast_float(
    xp: Any, x: Array, fmt: ScaledBFP, words: Array | None, ctx: Ctx,
    amax: Array | None = None, scale: Array | None = None,
) -> Array:
    """The SBFP cast of float32 ``x`` by the format's float operations, given
    optionally its block maxima (int32 bits) and scales (float32).

    Per block ``a = amax / C`` (``C = 2^(n-1) - 1``) and the scaler cast of
    ``a``; per element ``q = x / s``, ``k = round(q)`` by the block format's
    letter (exact float operations, :func:`.float_ops.round_magnitude`),
    clamped (an infinite quotient lands on the range end), and ``k * s``. A
    block whose scale is 0 divides by ``+Inf`` and multiplies by 0 (zeros
    with the inputs' signs); a NaN/Inf block is NaN. IEEE backends do exactly
    that; XLA rewrites a division by a broadcast operand into a reciprocal
    product, so the divisors are full-shape run-time values there (a
    ``where`` on the data), and flushes subnormals, which
    :func:`.guards.sbfp_safe` rules out.
    """
    blocks, amax = block_maxima(xp, x, fmt, ctx, amax)
    s = block_scales(xp, amax, fmt, ctx) if scale is None else scale
    zero_block = B.f32_to_i32(s) == 0  # on bits: XLA compares a subnormal s as zero
    s_div = xp.where(zero_block, xp.full_like(s, float("inf")), s)
    if not ctx.ieee:
        # XLA: NaN blocks folded into the divisor (k, then k * s, are NaN),
        # per-block values stored once instead of recomputed per element
        s_div = xp.where(nan_block(amax), xp.full_like(s, float("nan")), s_div)
        s_div, s = B.materialize((s_div, s))
    grouped = blocks.group(xp, x, 0)
    gw = None if words is None else blocks.group(xp, words, 0)
    divisor = xp.broadcast_to(s_div, grouped.shape)
    if not ctx.ieee:
        # a where on the data makes the divisor a full-shape run-time value,
        # so XLA cannot turn the division by a broadcast scale into a product
        # by its reciprocal (inexact; 0 for s > 2^126, flushed). A rounding
        # point on the broadcast alone was not enough: for a single block XLA
        # moved it before the broadcast; with the where it is not needed
        # (1.5x instead of 2.4x of x * 2). NaN elements divide by 1: their
        # block is NaN anyway
        divisor = xp.where(xp.isnan(grouped), xp.ones_like(divisor), divisor)
    r_letter = fmt.block.rounding
    if r_letter in ("U", "D"):
        q = grouped / divisor
        k = xp.ceil(q) if r_letter == "U" else xp.floor(q)
    else:
        # |q| = |x| / s, so that the division has one use (XLA materializes a
        # quotient it would otherwise need several times); the sign from the bits
        neg = (B.f32_to_i32(grouped) < 0) if r_letter == "S" else None
        k = xp.copysign(round_magnitude(xp, xp.abs(grouped) / divisor, r_letter, ctx, gw, neg), grouped)
    k = xp.clip(k, float(fmt.block.k_min), float(fmt.block.k_max))
    r = k * s if not ctx.ieee else nan_blocks(xp, k * s, nan_block(amax), ctx)
    return ungroup(xp, r, blocks)


def cast_guarded(xp: Any, x: Array, fmt: ScaledBFP, words: Array | None, ctx: Ctx) -> Array:
    """XLA: :func:`cast_float` when :func:`.guards.sbfp_safe` allows it, else the
    integer kernel (one ``cond``, which also keeps XLA from recomputing the
    block scales for every element)."""
    if fmt.block.rounding in ("S", "U", "D"):
        amax, low = block_max_and_lowest(xp, x, blocking_for(x, fmt))
    else:
        _, amax = block_maxima(xp, x, fmt, ctx)
        low = None
    s = block_scales(xp, amax, fmt, ctx)
    safe = sbfp_safe(fmt.block.k_max, fmt.block.rounding, amax, s, low)

    def fast(v: Array, a: Array, sc: Array, w: Array | None) -> Array:
        return cast_float(xp, v, fmt, B.as_top24(w), ctx, amax=a, scale=sc)

    def slow(v: Array, a: Array, sc: Array, w: Array | None) -> Array:
        return cast_integer(xp, v, fmt, w, ctx)

    return choose(safe, fast, slow, x, amax, s, words)


PATHS = (
    Path("sbfp.float", "NumPy and PyTorch (eager and compiled): the format's own float operations",
         ieee_only, cast_float),
    Path("sbfp.float|integer", "JAX: the float kernel when every block's a = amax / C is normal and its "
         "scale 0 or at least 2^-124 (S, U, D: every quotient normal), else the integer kernel",
         xla_only, cast_guarded, words="raw"),
    Path("sbfp.integer", "always (the exact integer pipeline)", always, cast_integer),
)
