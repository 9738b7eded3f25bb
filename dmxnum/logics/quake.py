"""Quake III style reciprocal and reciprocal square root (SPEC section 5).

A magic-constant initial guess from the bit pattern, then one Newton step,
every operation rounded to NF.
"""

from __future__ import annotations

from typing import Any

from .. import _backend as B
from .nf import Arith, f16_bits, f16_from_bits, ftz, round_nf

Array = Any

RECIP16_MAGIC = 0x77A8
RSQRT16_MAGIC = 0x59BE
RSQRT32_MAGIC = 0x5F3759DF


def recip16(x: Array) -> Array:
    """``1/x`` for float32 ``x`` holding float16 numbers, as float16 numbers (float32 array).

    ``x0 = bits(0x77A8 - bits(x))`` (uint16, wrapping), ``x1 = x0 + (1 - x*x0)*x0``.
    Valid for positive normal float16 ``x``; other inputs follow the steps
    literally (NaN -> NaN, +0 -> a large finite guess corrected to NaN/Inf by the step).
    """
    A = Arith("float16", x)
    x0 = f16_from_bits((RECIP16_MAGIC - f16_bits(x)) & 0xFFFF)
    a = A.mul(x, x0)
    b = A.sub(1.0, a)
    c = A.mul(b, x0)
    return A.add(x0, c)


def rsqrt(x: Array, nf: str) -> Array:
    """``1/sqrt(x)`` for float32 ``x`` holding NF numbers (NF float16 or float32).

    ``x0 = bits(M - (bits(x) >> 1))`` (unsigned, logical shift, wrapping),
    ``h = (0.5*x)*x0``, ``x1 = (1.5 - h*x0)*x0``; M = 0x59BE (float16) or
    0x5F3759DF (float32). Valid for positive normal ``x``.
    """
    A = Arith(nf, x)
    if nf == "float16":
        x0 = f16_from_bits((RSQRT16_MAGIC - (f16_bits(x) >> 1)) & 0xFFFF)
    else:
        x0 = ftz(B.i32_to_f32(RSQRT32_MAGIC - ((B.f32_to_i32(x) >> 1) & 0x7FFFFFFF)))
    a = A.mul(0.5, x)
    h = A.mul(a, x0)
    g = A.mul(h, x0)
    b = A.sub(1.5, g)
    return A.mul(b, x0)


def recip_approx(x: Array) -> Array:
    """``RECIP(quake3,float16)`` on float32 ``x`` (converted to float16 first)."""
    return recip16(round_nf(x, "float16"))


def rsqrt_approx(x: Array, nf: str) -> Array:
    """``RSQRT(quake3,NF)`` on float32 ``x`` (converted to NF first)."""
    return rsqrt(round_nf(x, nf), nf)
