"""Reference scaled BFP ``SBFP<XP[n,0](CXY)><FP[...]>{b,d}``, one block at a time.

Per block: any NaN or ±Inf makes every element NaN; otherwise
``s = scaler_cast(fl32(amax / (2^(n-1) - 1)))`` where ``fl32`` is one IEEE
float32 operation (the exact quotient rounded to float32, RNE); ``s == 0``
gives zeros with the inputs' signs; else each element is
``k = XP[n,0](CXY)(fl32(x / s))`` (the block format's rounding letter and
range; an infinite quotient goes to the range end) and the result is
``fl32(k * s)``, a zero keeping the input's sign.
"""

from __future__ import annotations

from typing import Sequence

from ..formats import ScaledBFP
from .fixed import cast_fixed_element, integer_range
from .float32 import NAN, Num, fl32, zero
from .floating import cast_floating_element


def block_scale(block: Sequence[Num], fmt: ScaledBFP) -> Num:
    """The scale ``s = scaler_cast(fl32(amax / (2^(n-1) - 1)))`` of a finite block."""
    _, k_max = integer_range(fmt.block.bits, symmetric=True)
    amax = max(x.magnitude for x in block)
    return cast_floating_element(fl32(amax / k_max), fmt.scaler, None)


def cast_sbfp_block(block: Sequence[Num], fmt: ScaledBFP, words: Sequence[int | None]) -> list[Num]:
    """Cast one block (a sequence of float32 numbers) to ``fmt``; see the module docstring."""
    if any(not x.is_finite for x in block):
        return [NAN] * len(block)
    s = block_scale(block, fmt)
    if s.is_zero:
        return [zero(x.negative) for x in block]
    out = []
    for x, word in zip(block, words):
        quotient = fl32(x.value / s.value, x.negative)
        k = cast_fixed_element(quotient, fmt.block, word)
        out.append(fl32(k.value * s.value, x.negative))
    return out
