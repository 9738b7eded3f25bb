"""Kernel for scaled BFP ``SBFP<XP[n,0](CXY)><FP[...]>{b,d}``.

Per block ``s = scaler(fl32(amax / C))`` with ``C = 2^(n-1) - 1``; elements
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
from . import bits as I
from .blocks import blocking_for
from .floating import cast_float_bits

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


def cast_sbfp(xp: Any, x: Array, p: I.Parts, fmt: ScaledBFP, words: Array | None) -> Array:
    """float32 result of the SBFP cast of float32 ``x`` (parts ``p``)."""
    blocks = blocking_for(x, fmt)
    amax = blocks.reduce_max(xp, p.mag)  # per block
    amax_parts = I.split(xp, amax)
    a_bits = div_by_int_f32_bits(xp, amax_parts, fmt.block.k_max)
    s_bits = cast_float_bits(xp, I.split(xp, a_bits), fmt.scaler)  # s >= 0, finite
    # scale s into [1, 2): s = S * 2^lg_s, s' = s * 2^-lg_s
    sp = I.split(xp, s_bits)
    s_unit, lg_s, s_sub_sig = scale_parts(xp, s_bits)
    block_nan = amax >= I.INF_BITS
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
    den = B.rounding_point(B.i32_to_f32(s_unit_e))
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
