"""Named aliases of common formats (SPEC section 3, "Aliases").

``ALIASES`` maps each alias, upper case, to its format value. Aliases are
read case-insensitively by :func:`dmxnum.parse` and always print as their
canonical shorthand (``str(parse("fp16")) == "FP[1|5|10,15](_NI)"``).

Each alias is defined once, as data; families of aliases (the OCP MX
formats, the ``BFP{16,14,12}[A]_{16,32,64,128}_{LD,FD}`` block formats) are
generated from their parameters rather than typed out one by one.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Mapping

from .base import Format
from .block import BlockFloatingPoint, MXInt
from .fixed import FixedPoint
from .floating import FloatingPoint
from .mx import ELEMENT_FORMATS, MXFloat
from .nvfp4 import NVFP4


def _ieee(exp_bits: int, man_bits: int) -> FloatingPoint:
    """The IEEE-754-like format with the standard bias ``2^(e-1) - 1``."""
    return FloatingPoint(True, exp_bits, man_bits, (1 << (exp_bits - 1)) - 1, False, "N", "I")


def _build() -> dict[str, Format]:
    table: dict[str, Format] = {
        "FP32": _ieee(8, 23),
        "FP16": _ieee(5, 10),
        "BF16": _ieee(8, 7),
        "FP8_E4M3": _ieee(4, 3),
        "FP8_E4M3FN": ELEMENT_FORMATS[(4, 3)],  # FP[1|4|3,7](_NE)
        "FP8_E5M2": _ieee(5, 2),
        "INT8": FixedPoint(8, 0, True, True, "N"),
        "INT4": FixedPoint(4, 0, True, True, "N"),
        "MXINT8": MXInt(8, 32, -1),
    }
    # OCP FP6/FP4 element formats (scheme A) and their MX block formats.
    for (e, m), element in ELEMENT_FORMATS.items():
        width = 1 + e + m
        if element.scheme == "A":
            table[f"FP{width}_E{e}M{m}"] = element
        table[f"MXFP{width}_E{e}M{m}"] = MXFloat(e, m, 32, -1)
    table["NVFP4"] = NVFP4(16, -1, False)
    # BFP{16,14,12}[A]_{16,32,64,128}_{LD,FD}: the number is the total width
    # of an 8-bit exponent and an 8/6/4-bit mantissa; A = asymmetric; LD is
    # the last dimension (axis -1), FD dimension 1.
    for total, man_bits in ((16, 8), (14, 6), (12, 4)):
        for suffix, symmetric in (("", True), ("A", False)):
            for size in (16, 32, 64, 128):
                for where, axis in (("LD", -1), ("FD", 1)):
                    name = f"BFP{total}{suffix}_{size}_{where}"
                    table[name] = BlockFloatingPoint(man_bits, size, axis, symmetric, "N")
    return table


#: alias (upper case) -> format value; read-only.
ALIASES: Mapping[str, Format] = MappingProxyType(_build())

__all__ = ["ALIASES"]
