"""SiLU (``x · sigmoid(x)``, the Llama family's MLP activation) on the EXP building block (SPEC section 5)."""

from __future__ import annotations

from typing import Any

from .exp import clamp_int_input, exp_approx
from .nf import Arith, round_nf
from .quake import recip16

Array = Any


def silu_approx(x: Array, algorithm: str, nf: str) -> Array:
    """``SILU(algorithm, NF)`` on float32 ``x``: ``e = EXP(alg,NF)(-x)``, ``d = 1 + e``,
    ``y = x / d`` (``base2quake3``: ``y = x * recip16(d)``, EXP base2), each step rounded to NF.

    ``x`` is converted to NF first (NF ``int``: flushed and clamped to
    [-16384, 16384], so ``y`` uses the clamped value). Edge values follow the
    IEEE steps: float16 ``EXP`` overflows to +Inf for ``-x`` above about 11.1,
    so ``y = x / Inf = -0`` for ``x`` below about -11.1; ``y(±0) = ±0``; NaN -> NaN;
    for a float NF ``±Inf`` -> NaN (``EXP`` of ``∓Inf`` computes ``Inf − Inf``);
    NF ``int`` maps ``+Inf`` to 16384 and ``-Inf`` to -0.
    """
    A = Arith(nf, x)
    x = round_nf(x, nf)
    if nf == "int":
        x = clamp_int_input(x)
    exp_alg = "base2" if algorithm == "base2quake3" else algorithm
    e = exp_approx(-x, exp_alg, nf)
    d = A.add(1.0, e)
    if algorithm == "base2quake3":
        return A.mul(x, recip16(d))
    return A.div(x, d)
