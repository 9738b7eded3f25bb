"""Reference block floating point ``BFP[n|8]{b,d}(XY)`` and ``MXINT{n}{b,d}``, one block at a time.

Per block: any NaN or ±Inf makes every element NaN; ``amax == 0`` returns
the (signed) zeros unchanged; else ``E = clamp(floor(log2(amax)), -127, 127)``
(integer bit lengths, never a floating ``log2``), ``q = 2^(E - (n - 2))``,
``k`` = ``x / q`` rounded by the letter ``Y`` and clamped to
``[-(2^(n-1) - 1), 2^(n-1) - 1]`` (``X = S``) or ``[-2^(n-1), 2^(n-1) - 1]``;
result ``k * q`` as a float32 (a zero keeps the input's sign). That is exact
in every case but one: an asymmetric block at ``E = 127`` with ``k = -2^(n-1)``
is ``-2^128``, which IEEE rounding to float32 makes ``-Inf``.
``MXINT{n}{b,d}`` casts exactly as ``BFP[n|8]{b,d}(SN)``.
"""

from __future__ import annotations

from typing import Sequence

from ..formats import BlockFloatingPoint, MXInt
from .fixed import integer_range
from .float32 import NAN, Num, fl32, floor_log2, pow2
from .rounding import round_to_integer

#: The shared exponent is an 8-bit code: ``E`` is clamped to this range.
SHARED_EXPONENT_MIN = -127
SHARED_EXPONENT_MAX = 127


def shared_exponent(amax_block: Sequence[Num]) -> int:
    """``clamp(floor(log2(max |x|)), -127, 127)`` for a finite block with a nonzero element."""
    amax = max(x.magnitude for x in amax_block)
    return min(max(floor_log2(amax), SHARED_EXPONENT_MIN), SHARED_EXPONENT_MAX)


def cast_bfp_block(
    block: Sequence[Num], fmt: BlockFloatingPoint, words: Sequence[int | None]
) -> list[Num]:
    """Cast one block (a sequence of float32 numbers) to ``fmt``; see the module docstring."""
    if any(not x.is_finite for x in block):
        return [NAN] * len(block)
    if all(x.is_zero for x in block):
        return list(block)
    quantum = pow2(shared_exponent(block) - (fmt.man_bits - 2))
    k_min, k_max = integer_range(fmt.man_bits, fmt.symmetric)
    out = []
    for x, word in zip(block, words):
        k = round_to_integer(x.value / quantum, fmt.rounding, word)
        k = min(max(k, k_min), k_max)
        out.append(fl32(k * quantum, x.negative))  # exact unless -2^128 (-> -Inf)
    return out


def mxint_as_bfp(fmt: MXInt) -> BlockFloatingPoint:
    """The BFP format ``BFP[n|8]{b,d}(SN)`` that ``MXINT{n}{b,d}`` casts as."""
    return BlockFloatingPoint(fmt.bits, fmt.block_size, fmt.axis, symmetric=True, rounding="N")
