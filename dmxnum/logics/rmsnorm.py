"""RMS norm approximations: legacy, quake3 and fallback (SPEC section 5)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .nf import Arith, div_by_count, ftz, rsqrt_f32, tree_sum
from .quake import rsqrt

Array = Any

#: ``finfo(NF).eps``: the smallest epsilon quake3 adds (``max(eps, eps_NF)``)
QUAKE3_MIN_EPS = {"float16": 2.0**-10, "float32": 2.0**-23}

_TINY = 2.0**-126


def eps_nf(eps: float, nf: str) -> float:
    """The module's ``eps`` rounded (RNE) to NF, flushed to 0 below 2^-126 for float32 / bfloat16."""
    from .nf import const_nf

    v = const_nf(eps, nf)
    if nf != "float16" and abs(v) < _TINY:
        return 0.0
    return v


def rms_eps(algorithm: str, nf: str, norm: int | None, eps: float) -> float:
    """The epsilon the RMS norm adds to the mean square, in units of the (scaled) input.

    legacy: ``eps`` rounded to NF; quake3: ``max(eps_NF_rounded, finfo(NF).eps)``;
    fallback: ``eps`` rounded to float16 then scaled exactly by ``4^-NORM`` (a float32 number).
    """
    e = eps_nf(eps, nf)
    if algorithm == "quake3":
        return max(e, QUAKE3_MIN_EPS[nf])
    if algorithm == "fallback":
        return float(np.float32(e * 4.0**-norm))
    return e


def rmsnorm_rows(x: Array, algorithm: str, nf: str, norm: int | None, w: Array | None, eps: float) -> Array:
    """RMS norm over the last axis of float32 ``x`` (``n`` = its length), every step rounded to NF.

    ``w``: float32 array of shape ``(n,)`` or ``None`` (step skipped); ``eps``: the
    module's epsilon (a Python float). ``x``, ``w`` -> NF; fallback first
    ``x = x / 2^NORM``. ``ms = sum(x*x) / n`` (halving tree); legacy and fallback:
    ``rs = 1/sqrt(ms + eps')`` in float32 (flushed), rounded to NF, with ``eps'`` of
    :func:`rms_eps`; quake3: ``rs = rsqrtNF(ms + max(eps, eps_NF))``. ``y = w * (x * rs)``.
    A float16 sum of squares above 65504 is +Inf: legacy/fallback then give
    ``rs = 0`` (``y = ±0``, NaN for an infinite ``x``), quake3 gives ±Inf/NaN.
    A NaN in a row makes the row NaN.
    """
    A = Arith(nf, x)
    n = x.shape[-1]
    x = A.r(x)
    if w is not None:
        w = A.r(w)
    if algorithm == "fallback":
        x = A.r(x / A.c(2.0**norm))
    ms = div_by_count(A, tree_sum(A.mul(x, x), nf), n)
    e = rms_eps(algorithm, nf, norm, eps)
    if algorithm == "quake3":
        rs = rsqrt(A.add(ms, e), nf)
    else:
        rs = A.r(rsqrt_f32(ftz(ms + e)))
    y = A.mul(x, rs)
    if w is not None:
        y = A.mul(w, y)
    return y
