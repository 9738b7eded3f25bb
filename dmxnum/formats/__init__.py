"""Format values: one module per family, tied together by the grammar."""

from .base import Format, ROUNDINGS
from .same import Same
from .fixed import FixedPoint
from .floating import FloatingPoint
from .block import BlockFloatingPoint, MXInt
from .mx import MXFloat
from .scaled import ScaledBFP

__all__ = [
    "Format", "ROUNDINGS", "Same", "FixedPoint", "FloatingPoint",
    "BlockFloatingPoint", "MXInt", "MXFloat", "ScaledBFP",
]
