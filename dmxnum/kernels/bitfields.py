"""The integer pipeline shared by every cast kernel.

A float32 value is split into ``sign``, an integer significand ``sig < 2^24``
and the exponent ``e`` of its last bit (``|x| = sig * 2^e``). Rounding to a
quantum ``q = 2^qe`` is then a shift of ``sig`` plus a decision on the shifted
out remainder, taken with integer comparisons only; the integer ``k`` is
turned back into float32 bits by :func:`compose`. No float arithmetic is
involved, so neither FMA contraction, reciprocal rewriting nor the
subnormals-are-zero mode of XLA on CPU can change a result.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .. import _backend as B

Array = Any

SIGN_BIT = -(2**31)  # int32 0x80000000
MAG_MASK = 0x7FFFFFFF
INF_BITS = 0x7F800000
QNAN_BITS = 0x7FC00000
#: ``k`` stands for "at least 2^25" when the exact quotient does not fit.
HUGE_K = 1 << 25


@dataclass(frozen=True)
class Parts:
    """A float32 array split into integer fields (all int32 arrays but ``neg``)."""

    bits: Array  # the raw int32 bit pattern
    neg: Array  # bool: sign bit set
    mag: Array  # bits without the sign (monotonic in |x| for non-NaN)
    sig: Array  # integer significand, |x| = sig * 2^e (0 for zeros)
    e: Array  # exponent of the significand's last bit
    lg: Array  # floor(log2 |x|) for finite nonzero x (meaningless otherwise)


def split(xp: Any, bits: Array) -> Parts:
    """Split int32 float32 bit patterns into sign, significand and exponents."""
    mag = bits & MAG_MASK
    neg = bits < 0
    ex = mag >> 23
    frac = mag & 0x7FFFFF
    normal = ex > 0
    sig = xp.where(normal, frac | 0x800000, frac)
    e = xp.where(normal, ex, xp.ones_like(ex)) - 150
    # floor(log2(sig)) of a subnormal: int -> float32 is exact (sig < 2^23) and normal
    lg_sub = (B.f32_to_i32(B.int_to_f32(sig)) >> 23) - 276
    lg = xp.where(normal, ex - 127, lg_sub)
    return Parts(bits, neg, mag, sig, e, lg)


def floor_log2_of_mag(xp: Any, mag: Array) -> Array:
    """``floor(log2(v))`` for positive finite float32 magnitudes given as int32 bits."""
    ex = mag >> 23
    lg_sub = (B.f32_to_i32(B.int_to_f32(mag & 0x7FFFFF)) >> 23) - 276
    return xp.where(ex > 0, ex - 127, lg_sub)


def _shl(xp: Any, a: Array, n: Array) -> Array:
    return xp.bitwise_left_shift(a, n)


def _shr(xp: Any, a: Array, n: Array) -> Array:
    return xp.bitwise_right_shift(a, n)


def round_to_quantum(
    xp: Any,
    p: Parts,
    qe: Array,
    rounding: str,
    words: Array | None = None,
    tie_up: Array | None = None,
) -> tuple[Array, Array]:
    """Round ``|x| / 2^qe`` to an integer magnitude ``k`` by the rounding letter.

    The rounding is of the signed value ``t = x / 2^qe`` (``U``/``D`` depend on
    the sign; ``S`` uses ``k = floor(t) + 1`` iff ``t - floor(t) > w * 2^-24``
    with ``w = words``, the top 24 bits of the element's random word). ``N``
    breaks ties toward even ``k`` unless ``tie_up`` (bool) overrides that choice.
    Returns ``(k, huge)``: ``huge`` marks ``|t| >= 2^25``, where ``k`` is
    ``HUGE_K`` (only exact values, ``qe`` below ``x``'s last bit, can be huge).
    """
    s = qe - p.e  # bits shifted out; s <= 0: |x| is a multiple of 2^qe
    huge = (p.lg - qe) >= 25
    sc = xp.clip(s, 0, 25)
    ones = xp.ones_like(sc)
    k0 = _shr(xp, p.sig, sc)
    rem = p.sig - _shl(xp, k0, sc)
    inexact = rem > 0
    if rounding == "Z":
        up = xp.zeros_like(inexact)
    elif rounding == "U":
        up = inexact & ~p.neg
    elif rounding == "D":
        up = inexact & p.neg
    elif rounding == "N":
        half = _shr(xp, _shl(xp, ones, sc), ones)
        odd = tie_up if tie_up is not None else (k0 & 1) == 1
        up = inexact & ((rem > half) | ((rem == half) & odd))
    elif rounding == "S":
        if words is None:
            raise ValueError("stochastic rounding needs random words")
        # phi = frac(t) of the signed t; magnitude rounds up iff (x > 0 and phi > u)
        # or (x < 0 and not phi > u). With f = rem / 2^s the magnitude fraction:
        # x > 0: phi = f; x < 0: phi = 1 - f, and phi > u <=> f < 1 - u.
        lsh = xp.clip(24 - s, 0, 24)
        scaled = _shl(xp, rem, lsh)  # rem * 2^(24-s) when s <= 24
        tc = xp.clip(s - 24, 0, 25)
        hi = _shr(xp, rem, tc)
        lo = rem - _shl(xp, hi, tc)
        small_s = s <= 24
        w_comp = (1 << 24) - words  # 2^24 - w, in 1 .. 2^24
        pos_gt = xp.where(small_s, scaled > words, (hi > words) | ((hi == words) & (lo > 0)))
        neg_lt = xp.where(small_s, scaled < w_comp, hi < w_comp)
        up = inexact & xp.where(p.neg, ~neg_lt, pos_gt)
    else:
        raise ValueError(f"unknown rounding letter {rounding!r}")
    k_exact = _shl(xp, p.sig, xp.clip(-s, 0, 24))
    k = xp.where(s > 0, k0 + xp.astype(up, k0.dtype), k_exact)
    k = xp.where(huge, xp.full_like(k, HUGE_K), k)
    return k, huge


def compose(xp: Any, k: Array, qe: Array) -> Array:
    """int32 magnitude bits of ``k * 2^qe`` (``0 <= k <= 2^25`` with at most 24
    significant bits, ``qe >= -149``); values beyond float32 give +Inf bits."""
    fk = B.f32_to_i32(B.int_to_f32(k))
    new_exp = (fk >> 23) + qe
    normal_bits = fk + _shl(xp, qe, xp.full_like(qe, 23))
    sub_bits = _shl(xp, k, xp.clip(qe + 149, 0, 23))
    out = xp.where(new_exp >= 1, normal_bits, sub_bits)
    out = xp.where(new_exp >= 255, xp.full_like(out, INF_BITS), out)
    return xp.where(k == 0, xp.zeros_like(out), out)


def with_sign(xp: Any, mag: Array, neg: Array) -> Array:
    """Attach the sign bit to int32 magnitude bits."""
    return xp.where(neg, mag | SIGN_BIT, mag)


def value_bits(value: float) -> int:
    """int32 bit pattern of a float32 constant (a Python float exactly representable)."""
    import struct

    return struct.unpack("<i", struct.pack("<f", value))[0]


def pow2_bits(exponent: int) -> int:
    """Bit pattern of ``2^exponent`` as float32 (``-149 <= exponent <= 127``)."""
    if exponent >= -126:
        return (exponent + 127) << 23
    return 1 << (exponent + 149)
