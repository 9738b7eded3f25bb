"""OCP Microscaling floating point ``MXFP{p}[E{e}M{m}]{b,d}`` (OCP MX v1.0).

Per block: any NaN/±Inf makes the block NaN; an all-zero block keeps signed
zeros; else ``E = max(floor(log2(amax)) - emax_elem, -127)`` and every element
is ``elem_cast(x / 2^E) * 2^E`` (RNE, saturating; both scalings exact).

Scale modes (SPEC section 3, "MX scale modes"), the optional last letter
``(M)``: ``F`` FLOOR (the default, printed without a suffix), ``C`` CEIL,
``E`` EVEN (``amax`` rounded to the element's mantissa width first), ``R``
RCEIL (the smallest ``E`` with ``2^E >= fl32(amax / max_elem)``).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import FormatParameterError
from .block import SHARED_EXPONENT_BITS, check_block
from .floating import FloatingPoint
from .base import Format

#: scale-mode letter -> its name (torchao's ``ScaleCalculationMode``)
SCALE_MODES: dict[str, str] = {"F": "FLOOR", "C": "CEIL", "E": "EVEN", "R": "RCEIL"}

#: (e, m) -> element format, as OCP MX v1.0 defines them.
ELEMENT_FORMATS: dict[tuple[int, int], FloatingPoint] = {
    (4, 3): FloatingPoint(True, 4, 3, 7, False, "N", "E"),
    (5, 2): FloatingPoint(True, 5, 2, 15, False, "N", "S"),
    (3, 2): FloatingPoint(True, 3, 2, 3, False, "N", "A"),
    (2, 3): FloatingPoint(True, 2, 3, 1, False, "N", "A"),
    (2, 1): FloatingPoint(True, 2, 1, 1, False, "N", "A"),
}


@dataclass(frozen=True)
class MXFloat(Format):
    """``MXFP{1+e+m}[E{e}M{m}]{block_size,axis}(scale_mode)``."""

    exp_bits: int
    man_bits: int
    block_size: int = 32
    axis: int = -1
    scale_mode: str = "F"

    blocked = True

    def __post_init__(self) -> None:
        if (self.exp_bits, self.man_bits) not in ELEMENT_FORMATS:
            valid = ", ".join(f"E{e}M{m}" for e, m in ELEMENT_FORMATS)
            raise FormatParameterError(
                f"MXFP element E{self.exp_bits}M{self.man_bits} is not an OCP MX element; valid: {valid}"
            )
        check_block(self.block_size, self.axis)
        if self.scale_mode not in SCALE_MODES:
            valid = ", ".join(f"{k} ({v})" for k, v in SCALE_MODES.items())
            raise FormatParameterError(f"MX scale mode {self.scale_mode!r} is not one of {valid}")

    @property
    def scale_mode_name(self) -> str:
        """``"FLOOR"``, ``"CEIL"``, ``"EVEN"`` or ``"RCEIL"``."""
        return SCALE_MODES[self.scale_mode]

    @property
    def rounding(self) -> str:
        """MX elements always round to nearest, ties to even."""
        return "N"

    @property
    def element(self) -> FloatingPoint:
        """The element format (``FP[...]``)."""
        return ELEMENT_FORMATS[(self.exp_bits, self.man_bits)]

    @property
    def element_emax(self) -> int:
        """Exponent of the element format's largest normal."""
        return self.element.emax

    @property
    def bits_per_element(self) -> float:
        return self.element.bits_per_element + SHARED_EXPONENT_BITS / self.block_size

    @property
    def max_value(self) -> float:
        return self.element.max_value * 2.0**127

    @property
    def min_positive(self) -> float:
        return self.element.min_positive * 2.0**-127

    def __str__(self) -> str:
        p = 1 + self.exp_bits + self.man_bits
        mode = "" if self.scale_mode == "F" else f"({self.scale_mode})"
        return f"MXFP{p}[E{self.exp_bits}M{self.man_bits}]{{{self.block_size},{self.axis}}}{mode}"
