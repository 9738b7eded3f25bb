"""NVIDIA's NVFP4 ``NVFP4{b,d}`` and two-level ``NVFP4{b,d}(T)`` (SPEC section 3).

Elements are ``FP4_E2M1`` (``FP[1|2|1,1](_NA)``); each block of ``b``
elements (default 16) along axis ``d`` has a scale ``s`` in ``FP8_E4M3FN``
(``FP[1|4|3,7](_NE)``). Every step is one IEEE float32 operation (``fl32``)
or an RNE cast; ``e4m3`` and ``e2m1`` saturate.

Single level, per block: ``s = e4m3(clamp(fl32(amax / 6), 2^-6, 448))``,
``r = fl32(1 / s)``, ``q = e2m1(clamp(fl32(x * r), -6, 6))``, result
``fl32(q * s)``. Two level (``T``): a float32 tensor scale ``g`` (by default
``fl32(amax_tensor / 2688)`` raised to ``2^-120``), ``s = e4m3(clamp(
fl32(fl32(amax / 6) / g), 2^-6, 448))``, ``r = fl32(fl32(1 / g) / s)``,
result ``fl32(q * fl32(g * s))``. A block holding NaN or ±Inf is NaN; an
all-zero block keeps signed zeros.
"""

from __future__ import annotations

from dataclasses import dataclass

from .base import Format
from .block import check_block
from .floating import FloatingPoint

#: the element format FP4_E2M1 and the block-scale format FP8_E4M3FN
ELEMENT = FloatingPoint(True, 2, 1, 1, False, "N", "A")
SCALE = FloatingPoint(True, 4, 3, 7, False, "N", "E")
#: the largest value: 6 (E2M1) times 448 (E4M3)
MAX_VALUE = 2688.0
#: the smallest block scale (E4M3's smallest normal, torchao's E4M3_EPS)
MIN_SCALE = 2.0**-6
#: a two-level tensor scale ``g`` lies in ``[TENSOR_SCALE_MIN, TENSOR_SCALE_MAX]``
TENSOR_SCALE_MIN = 2.0**-120
TENSOR_SCALE_MAX = 2.0**116


@dataclass(frozen=True)
class NVFP4(Format):
    """``NVFP4{block_size,axis}``, with ``(T)`` when ``tensor_scale`` (two level)."""

    block_size: int = 16
    axis: int = -1
    tensor_scale: bool = False

    blocked = True

    def __post_init__(self) -> None:
        check_block(self.block_size, self.axis)
        if not isinstance(self.tensor_scale, bool):
            raise TypeError(f"NVFP4 tensor_scale must be a bool, got {self.tensor_scale!r}")

    @property
    def rounding(self) -> str:
        """NVFP4 rounds to nearest, ties to even."""
        return "N"

    @property
    def element(self) -> FloatingPoint:
        """The element format ``FP[1|2|1,1](_NA)`` (FP4_E2M1)."""
        return ELEMENT

    @property
    def scale_format(self) -> FloatingPoint:
        """The block-scale format ``FP[1|4|3,7](_NE)`` (FP8_E4M3FN)."""
        return SCALE

    @property
    def bits_per_element(self) -> float:
        """``4 + 8 / b`` (the 32-bit tensor scale of ``T`` is not amortized)."""
        return 4 + 8 / self.block_size

    @property
    def max_value(self) -> float:
        """2688 = 6 * 448 (for ``T``: in units of the tensor scale ``g``)."""
        return MAX_VALUE

    @property
    def min_positive(self) -> float:
        """``2^-7`` = 0.5 * 2^-6 (for ``T``: in units of ``g``)."""
        return 2.0**-7

    def __str__(self) -> str:
        return f"NVFP4{{{self.block_size},{self.axis}}}" + ("(T)" if self.tensor_scale else "")
