"""The seed's GELU approximation: poly2 in float16 (SPEC section 5)."""

from __future__ import annotations

from typing import Any

from .. import _backend as B
from .nf import Arith, round_nf

Array = Any

GELU_A1 = -0.1444
GELU_A2 = 0.1444
GELU_B = 1.769
GELU_C = 0.70711


def gelu_poly2(x: Array) -> Array:
    """``GELU(poly2,float16)`` on float32 ``x``: ``t = x*c``; ``q = (min(|t|, b) - b)^2``;
    ``L = a1*q + 1`` if ``t >= 0`` else ``a2*q``; ``y = x*L``; each step rounded to float16.

    NaN -> NaN; +Inf -> +Inf; -Inf -> NaN (``-Inf * 0``); |x| > 65504 is Inf after the
    input conversion.
    """
    xp = B.namespace(x)
    A = Arith("float16", x)
    x = round_nf(x, "float16")
    t = A.mul(x, A.c(GELU_C))
    b = A.c(GELU_B)
    m = xp.minimum(xp.abs(t), xp.full_like(t, b))
    u = A.sub(m, b)
    q = A.mul(u, u)
    pos = A.add(A.mul(A.c(GELU_A1), q), 1.0)
    neg = A.mul(A.c(GELU_A2), q)
    L = xp.where(t >= 0, pos, neg)
    return A.mul(x, L)
