"""Scaled block floating point ``SBFP<XP[n,0](CXY)><FP[...]>{b,d}``.

Per block: non-finite anywhere makes the block NaN;
``s = scaler(fl32(amax / (2^(n-1) - 1)))``; ``s == 0`` gives signed zeros;
elements ``k = clamp(round(fl32(x / s)))`` with the block format's rounding
and range; result ``fl32(k * s)``. ``fl32`` is one IEEE float32 operation.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import FormatParameterError
from .base import Format
from .block import check_block
from .fixed import FixedPoint
from .floating import FloatingPoint


@dataclass(frozen=True)
class ScaledBFP(Format):
    """``SBFP<block><scaler>{block_size,axis}``."""

    block: FixedPoint
    scaler: FloatingPoint
    block_size: int
    axis: int = -1

    blocked = True

    def __post_init__(self) -> None:
        if not isinstance(self.block, FixedPoint) or self.block.frac != 0 or not self.block.clamp:
            raise FormatParameterError(
                f"SBFP block format must be a clamped XP[n,0](C..), got {self.block}"
            )
        if not isinstance(self.scaler, FloatingPoint) or self.scaler.scheme not in ("S", "E", "A"):
            raise FormatParameterError(
                f"SBFP scaler must be an FP format with scheme S, E or A, got {self.scaler}"
            )
        if self.scaler.rounding == "S":
            raise FormatParameterError(
                f"SBFP scaler {self.scaler} must not round stochastically (use N, U, D or Z)"
            )
        check_block(self.block_size, self.axis)

    @property
    def stochastic(self) -> bool:
        return self.block.rounding == "S"

    @property
    def rounding(self) -> str:
        """The elements' rounding letter (the block format's)."""
        return self.block.rounding

    @property
    def bits_per_element(self) -> float:
        return self.block.bits + self.scaler.bits_per_element / self.block_size

    @property
    def max_value(self) -> float:
        return self.block.k_max * self.scaler.max_value

    @property
    def min_positive(self) -> float:
        """Smallest positive value: ``k = 1`` times the scaler's smallest positive value."""
        return self.scaler.min_positive

    def __str__(self) -> str:
        return f"SBFP<{self.block}><{self.scaler}>{{{self.block_size},{self.axis}}}"
