"""The seed's layer norm approximations: fallback, legacy, quake3 (SPEC section 5)."""

from __future__ import annotations

from typing import Any

from .nf import Arith, div_by_count, ftz, rsqrt_f32, tree_sum
from .quake import rsqrt

Array = Any

FALLBACK_EPS = 1e-5  # float32 constant
LEGACY_EPS = 2.0**-126
QUAKE3_EPS = {"float16": 2.0**-10, "float32": float(__import__("numpy").float32(1e-5))}


def layernorm_rows(x: Array, algorithm: str, nf: str, norm: int | None, w: Array | None, b: Array | None) -> Array:
    """Layer norm over the last axis of float32 ``x`` (``n`` = its length), every step rounded to NF.

    ``w`` and ``b`` are float32 arrays of shape ``(n,)`` or ``None`` (step skipped).
    fallback: ``x = x / 2^NORM``; ``mean = sum(x)/n``; ``var = sum(x*x)/n - mean*mean``;
    ``rs = 1/sqrt(var + 1e-5)`` in float32 rounded to NF.
    legacy: ``var = sum((x - mean)^2)/n``; ``rs = 1/sqrt(var + 2^-126)`` in float32, rounded to NF.
    quake3: legacy mean/var; ``rs = rsqrtNF(var + max(eps_NF, 1e-5))``.
    Then ``y = ((x - mean) * w) * rs + b``.
    """
    A = Arith(nf, x)
    n = x.shape[-1]
    x = A.r(x)
    if w is not None:
        w = A.r(w)
    if b is not None:
        b = A.r(b)
    if algorithm == "fallback":
        x = A.r(x / A.c(2.0**norm))
        mean = div_by_count(A, tree_sum(x, nf), n)
        m2 = div_by_count(A, tree_sum(A.mul(x, x), nf), n)
        var = A.sub(m2, A.mul(mean, mean))
        rs = A.r(rsqrt_f32(var + float(__import__("numpy").float32(FALLBACK_EPS))))
    else:
        mean = div_by_count(A, tree_sum(x, nf), n)
        dev = A.sub(x, mean)
        var = div_by_count(A, tree_sum(A.mul(dev, dev), nf), n)
        if algorithm == "legacy":
            rs = A.r(rsqrt_f32(ftz(var + LEGACY_EPS)))
        else:
            rs = rsqrt(A.add(var, A.c(QUAKE3_EPS[nf])), nf)
    y = A.sub(x, mean)
    if w is not None:
        y = A.mul(y, w)
    y = A.mul(y, rs)
    if b is not None:
        y = A.add(y, b)
    return y
