"""The seed's exponential approximations: poly2 and base2 (SPEC section 5).

Both split ``exp(x) = 2^k * p`` with an integer-valued ``k`` and a mantissa
``p`` near 1; softmax uses the pair, the ``EXP`` building block returns
``p * 2^k`` rounded once to NF.
"""

from __future__ import annotations

from typing import Any

from .. import _backend as B
from .nf import Arith, ftz, pow2_exact, round_nf

Array = Any

# poly2: exp(x) = 2^k p(r), r = x - k ln2, p(r) = c0 + (c1 + c2 r) r
POLY2_LN2 = 0.69315
POLY2_INVLN2 = 1.4427
POLY2_C0 = 1.0
POLY2_C1 = 1.015082
POLY2_C2 = 0.503765
#: int path fixed point: 16631 = round(1.0151 * 2^14); steps are exact integers
POLY2_INT_T1 = 16631
FRAC_BITS = 14

# base2: exp(x) = 2^k 2^v, 2^v ~ v + d
BASE2_LOG2E = 1.4426950408889634
BASE2_D = 0.957
#: int path: log2e and d rounded to 14 fractional bits
BASE2_LOG2E_INT = 23637  # round(1.4426950408889634 * 2^14)
BASE2_D_INT = 15679  # round(0.957 * 2^14) = round(15679.488)

INT_CLAMP = 16384.0


def _round_half_even_shift(m: Array, s: int) -> Array:
    """``round(m / 2^s)`` for int32 ``m``, ties to even, exact (arithmetic shifts)."""
    q = m >> s
    rem = m - (q << s)
    half = 1 << (s - 1)
    up = (rem > half) | ((rem == half) & ((q & 1) == 1))
    return q + B.namespace(m).astype(up, m.dtype)


def clamp_int_input(x: Array) -> Array:
    """Clamp to [-16384, 16384] (NaN stays NaN)."""
    xp = B.namespace(x)
    x = xp.where(x < -INT_CLAMP, xp.full_like(x, -INT_CLAMP), x)
    return xp.where(x > INT_CLAMP, xp.full_like(x, INT_CLAMP), x)


def exp_parts(x: Array, algorithm: str, nf: str) -> tuple[Array, Array]:
    """``(p, k)`` with ``exp(x) ~ p * 2^k`` for float32 ``x`` already rounded to NF.

    NF ``int`` expects ``x`` already clamped to [-16384, 16384]. NaN gives a
    NaN ``p``; the values follow the algorithm literally on every input.
    """
    xp = B.namespace(x)
    if nf == "int":
        return _exp_parts_int(x, algorithm)
    A = Arith(nf, x)
    if algorithm == "poly2":
        t = A.mul(x, A.c(POLY2_INVLN2))
        k = xp.round(t)
        kl = A.mul(k, A.c(POLY2_LN2))
        r = A.sub(x, kl)
        u = A.mul(A.c(POLY2_C2), r)
        u = A.add(A.c(POLY2_C1), u)
        u = A.mul(u, r)
        p = A.add(A.c(POLY2_C0), u)
        return p, k
    z = A.mul(x, A.c(BASE2_LOG2E))
    k = xp.floor(z)
    v = A.sub(z, k)
    p = A.add(v, A.c(BASE2_D))
    return p, k


def _exp_parts_int(x: Array, algorithm: str) -> tuple[Array, Array]:
    xp = B.namespace(x)
    nan = xp.isnan(x)
    xz = xp.where(nan, xp.zeros_like(x), x)
    scale = float(2**FRAC_BITS)
    if algorithm == "poly2":
        t = ftz(xz * POLY2_INVLN2)
        k = xp.round(t)
        kl = ftz(k * POLY2_LN2)
        r = ftz(xz - kl)
        # |x| <= 16384 gives |r| < 0.5, so |ri| <= 8192 and every product below fits int32
        ri = xp.astype(xp.round(r * scale), xp.int32)
        t1 = _round_half_even_shift(2 * POLY2_INT_T1 + ri, 1)
        t2 = (1 << FRAC_BITS) + _round_half_even_shift(t1 * ri, FRAC_BITS)
        p = B.int_to_f32(t2) * (1.0 / scale)
    else:
        z = ftz(xz * (BASE2_LOG2E_INT / scale))
        k = xp.floor(z)
        w = ftz(z - k)
        v = xp.round(w * scale) * (1.0 / scale)
        p = ftz(v + (BASE2_D_INT / scale))
    p = xp.where(nan, xp.full_like(p, float("nan")), p)
    k = xp.where(nan, xp.full_like(k, float("nan")), k)
    return p, k


def exp_approx(x: Array, algorithm: str, nf: str) -> Array:
    """The ``EXP(algorithm, NF)`` building block on float32 ``x``: ``p * 2^k`` rounded once to NF.

    NF ``int`` clamps ``x`` to [-16384, 16384] first. NaN -> NaN; float16
    overflows to +Inf near x = 11.1; large negative inputs give +0.
    """
    x = round_nf(x, nf)
    if nf == "int":
        x = clamp_int_input(x)
    p, k = exp_parts(x, algorithm, nf)
    return round_nf(pow2_exact(p, k), nf)
