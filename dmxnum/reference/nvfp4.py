"""Reference NVFP4 ``NVFP4{b,d}`` and two-level ``NVFP4{b,d}(T)``, one block at a time.

Every step is one IEEE float32 operation ``fl32`` (the exact rational
result rounded to float32, RNE, subnormals kept) or an RNE cast to the
element format E2M1 or the scale format E4M3, both saturating
(:func:`.floating.cast_floating_element`). Per block, with ``amax`` its
largest magnitude:

- any NaN or ±Inf: every element NaN;
- single level: ``s = e4m3(clamp(fl32(amax / 6), 2^-6, 448))``,
  ``r = fl32(1 / s)``, ``q = e2m1(clamp(fl32(x * r), -6, 6))``, result
  ``fl32(q * s)`` (an all-zero block gives its signed zeros that way);
- two level, tensor scale ``g``:
  ``s = e4m3(clamp(fl32(fl32(amax / 6) / g), 2^-6, 448))``,
  ``r = fl32(fl32(1 / g) / s)``, ``q`` as above, result ``fl32(q * fl32(g * s))``.

The default ``g`` is ``fl32(amax_tensor / 2688)``, ``amax_tensor`` the largest
finite ``|x|`` of the whole array (0 when there is none), raised to
``2^-120`` when smaller (:func:`default_tensor_scale`).
"""

from __future__ import annotations

from fractions import Fraction
from typing import Iterable, Sequence

from ..formats import FloatingPoint
from .float32 import NAN, Num, fl32, pow2
from .floating import cast_floating_element

#: E2M1 (FP4) elements and E4M3 (FP8, no Inf, saturating) scales
E2M1 = FloatingPoint(True, 2, 1, 1, False, "N", "A")
E4M3 = FloatingPoint(True, 4, 3, 7, False, "N", "E")
SCALE_MIN = pow2(-6)
SCALE_MAX = Fraction(448)
ELEMENT_MAX = Fraction(6)
TENSOR_SCALE_MIN = pow2(-120)


def _clamp(v: Fraction, lo: Fraction, hi: Fraction) -> Fraction:
    """``v`` clamped to ``[lo, hi]``."""
    return min(max(v, lo), hi)


def default_tensor_scale(values: Iterable[Num]) -> Num:
    """``max(fl32(amax / 2688), 2^-120)`` with ``amax`` the largest finite magnitude of ``values`` (0 if none)."""
    amax = max((v.magnitude for v in values if v.is_finite), default=Fraction(0))
    g = fl32(amax / 2688)
    return g if g.magnitude >= TENSOR_SCALE_MIN else Num("finite", False, TENSOR_SCALE_MIN)


def cast_nvfp4_block(block: Sequence[Num], g: Num | None) -> list[Num]:
    """Cast one block of float32 numbers; ``g`` the tensor scale (two level) or ``None``."""
    if any(not x.is_finite for x in block):
        return [NAN] * len(block)
    amax = max(x.magnitude for x in block)
    a = fl32(amax / 6)
    c = a if g is None else fl32(a.magnitude / g.magnitude)
    clamped = SCALE_MAX if c.is_inf else _clamp(c.magnitude, SCALE_MIN, SCALE_MAX)  # a / g may overflow
    s = cast_floating_element(Num("finite", False, clamped), E4M3).magnitude
    if g is None:
        r = fl32(1 / s).magnitude
        gs = s
    else:
        inv_g = fl32(1 / g.magnitude).magnitude
        r = fl32(inv_g / s).magnitude
        gs = fl32(g.magnitude * s).magnitude
    out = []
    for x in block:
        v = fl32(x.value * r, x.negative)  # may overflow to ±Inf (a small static g), clamped next
        v_mag = ELEMENT_MAX if v.is_inf else min(v.magnitude, ELEMENT_MAX)
        q = cast_floating_element(Num("finite", v.negative, v_mag), E2M1)
        out.append(fl32(q.value * gs, q.negative))
    return out
