"""The family table: each format class, its family label and its kernel module.

``cast`` (through ``dmxnum.kernels.families``), ``encode``/``decode``, the
reference dispatch and the test strategies all read this one table; a test
asserts that it covers every format class and that each consumer covers
every family.
"""

from __future__ import annotations

from typing import Any

from .block import BlockFloatingPoint, MXInt
from .fixed import FixedPoint
from .floating import FloatingPoint
from .mx import MXFloat
from .nvfp4 import NVFP4
from .scaled import ScaledBFP

#: format class -> (family label, kernel module in ``dmxnum.kernels``)
FAMILIES: dict[type, tuple[str, str]] = {
    FixedPoint: ("XP", "xp"),
    FloatingPoint: ("FP", "fp"),
    BlockFloatingPoint: ("BFP", "bfp"),
    MXInt: ("MXINT", "mxint"),
    MXFloat: ("MXFP", "mxfp"),
    ScaledBFP: ("SBFP", "sbfp"),
    NVFP4: ("NVFP4", "nvfp4"),
}
#: family labels in table order
LABELS: tuple[str, ...] = tuple(label for label, _ in FAMILIES.values())


def family_entry(fmt: Any) -> tuple[str, str]:
    """``(label, kernel module name)`` of the family of format value ``fmt``
    (``TypeError`` for anything else, ``SAME`` included)."""
    for cls in type(fmt).__mro__:
        if cls in FAMILIES:
            return FAMILIES[cls]
    raise TypeError(f"not a cast format: {fmt!r} (families: {', '.join(LABELS)})")


def family_label(fmt: Any) -> str:
    """The family label of ``fmt``: ``"XP"``, ``"FP"``, ``"BFP"``, ``"MXINT"``, ``"MXFP"``, ``"SBFP"`` or ``"NVFP4"``."""
    return family_entry(fmt)[0]
