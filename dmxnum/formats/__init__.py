"""Format values: one module per family, tied together by the grammar."""

from .base import Format, ROUNDINGS
from .same import Same
from .fixed import FixedPoint
from .floating import FloatingPoint
from .block import BlockFloatingPoint, MXInt
from .mx import MXFloat
from .scaled import ScaledBFP
from .nvfp4 import NVFP4
from .catalogue import FormatInfo, catalogue

__all__ = [
    "Format", "ROUNDINGS", "Same", "FixedPoint", "FloatingPoint",
    "BlockFloatingPoint", "MXInt", "MXFloat", "ScaledBFP", "NVFP4",
    "FormatInfo", "catalogue",
]
