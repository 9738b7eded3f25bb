"""The seed's softmax approximations: poly2, base2, base2quake3 (SPEC section 5)."""

from __future__ import annotations

from typing import Any

from .. import _backend as B
from .exp import clamp_int_input, exp_parts
from .nf import Arith, pow2_exact, round_nf, tree_max, tree_sum
from .quake import recip16

Array = Any

SOFTMAX_CLAMP = -16384.0


def softmax_last(x: Array, algorithm: str, nf: str) -> Array:
    """Softmax over the last axis of float32 ``x`` with every step rounded to NF.

    ``x`` -> NF; ``x = max(x, -16384)`` (NaN stays; NF int also clamps above
    at 16384); ``(p, k) = exp(x)``; ``kmax`` = tree max of ``k``;
    ``d = k - kmax``; ``e = p * 2^d`` rounded once; ``s`` = tree sum of ``e``;
    ``y = e / (s + eps)`` (``base2quake3``: ``e * recip16(s + eps)``),
    ``eps = 2^-24`` for float16 else ``1e-30``. A row of -Inf is a row of
    -16384: uniform ``1/n``. Any NaN or +Inf in a row makes the row NaN.
    """
    xp = B.namespace(x)
    exp_alg = "base2" if algorithm == "base2quake3" else algorithm
    x = round_nf(x, nf)
    if nf == "int":
        x = clamp_int_input(x)
    else:
        x = xp.where(x < SOFTMAX_CLAMP, xp.full_like(x, SOFTMAX_CLAMP), x)
    p, k = exp_parts(x, exp_alg, nf)
    A = Arith(nf, x)
    kmax = tree_max(k)
    d = A.sub(k, kmax)
    e = round_nf(pow2_exact(p, d), nf)
    s = tree_sum(e, nf)
    eps = 2.0**-24 if nf == "float16" else A.c(1e-30)
    se = A.add(s, eps)
    if algorithm == "base2quake3":
        return A.mul(e, recip16(se))
    return A.div(e, se)
