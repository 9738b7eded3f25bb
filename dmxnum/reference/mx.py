"""Reference OCP Microscaling floating point ``MXFP{p}[E{e}M{m}]{b,d}``, one block at a time.

Per block: any NaN or ±Inf makes every element NaN; ``amax == 0`` returns the
(signed) zeros; else ``E = max(floor(log2(amax)) - emax_elem, -127)`` and
every element is ``elem_cast(x / 2^E) * 2^E``, both scalings exact (the
scaled value is an exact rational, not rounded to float32 first). The element
formats round to nearest-even and saturate (schemes S, E, A).
"""

from __future__ import annotations

from typing import Sequence

from ..formats import MXFloat
from .float32 import NAN, Num, exact, floor_log2, pow2
from .floating import cast_floating_element, largest_exponent

SCALE_EXPONENT_MIN = -127


def cast_mx_block(block: Sequence[Num], fmt: MXFloat) -> list[Num]:
    """Cast one block (a sequence of float32 numbers) to ``fmt``; see the module docstring."""
    if any(not x.is_finite for x in block):
        return [NAN] * len(block)
    if all(x.is_zero for x in block):
        return list(block)
    element = fmt.element
    amax = max(x.magnitude for x in block)
    scale_exp = max(floor_log2(amax) - largest_exponent(element), SCALE_EXPONENT_MIN)
    scale = pow2(scale_exp)
    out = []
    for x in block:
        scaled = Num("finite", x.negative, x.magnitude / scale)
        y = cast_floating_element(scaled, element, None)
        out.append(exact(y.value * scale, x.negative))
    return out
