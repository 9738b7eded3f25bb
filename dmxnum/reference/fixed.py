"""Reference fixed point ``XP[n,f](ABR)``, one element at a time.

``t = x / 2^-f`` exactly, ``k`` = ``t`` rounded by the letter ``R``. Clamped
(``A = C``): ``k`` is clamped to ``[k_min, k_max]`` and ±Inf give the range
ends; the result ``k * 2^-f`` is an exact float32. Unclamped: the result is
``k * 2^-f`` rounded to float32 (RNE, overflow to ±Inf) and ±Inf stay ±Inf.
A zero result keeps the sign of the input; NaN stays NaN.
"""

from __future__ import annotations

from ..formats import FixedPoint
from .float32 import NAN, Num, exact, fl32, pow2
from .rounding import round_to_integer


def integer_range(bits: int, symmetric: bool) -> tuple[int, int]:
    """``(k_min, k_max)`` of an n-bit two's-complement integer.

    ``k_max = 2^(n-1) - 1``; ``k_min = -k_max`` when symmetric, else ``-2^(n-1)``.
    """
    k_max = 2 ** (bits - 1) - 1
    return (-k_max if symmetric else -(2 ** (bits - 1))), k_max


def cast_fixed_element(x: Num, fmt: FixedPoint, word: int | None = None) -> Num:
    """Cast one exact number ``x`` to ``fmt`` (see the module docstring); float32 result."""
    if x.is_nan:
        return NAN
    k_min, k_max = integer_range(fmt.bits, fmt.symmetric)
    quantum = pow2(-fmt.frac)
    if x.is_inf:
        if not fmt.clamp:
            return x
        k = k_min if x.negative else k_max
    else:
        k = round_to_integer(x.value / quantum, fmt.rounding, word)
        if fmt.clamp:
            k = min(max(k, k_min), k_max)
    if fmt.clamp:
        return exact(k * quantum, x.negative)
    return fl32(k * quantum, x.negative)
