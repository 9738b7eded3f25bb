"""Reference OCP Microscaling floating point ``MXFP{p}[E{e}M{m}]{b,d}(M)``, one block at a time.

Per block: any NaN or ±Inf makes every element NaN; ``amax == 0`` returns the
(signed) zeros; else the shared exponent ``E`` of the scale mode ``M``
(below), and every element is ``elem_cast(x / 2^E) * 2^E`` with the scaled
value an exact rational (not rounded to float32 first). The element formats
round to nearest-even and saturate (schemes S, E, A).

Scale modes, for the block's largest magnitude ``amax`` (exact):

- ``F`` FLOOR: ``E = floor(log2 amax) - emax_elem``;
- ``C`` CEIL: ``E = ceil(log2 amax) - emax_elem``;
- ``E`` EVEN: ``amax`` first rounded to the element's ``m`` mantissa bits
  the way its float32 bits are (``2^(22-m)`` added to the bit pattern, the
  23 mantissa bits cleared; an exponent field that carries into 0xFF reads
  as 128), then FLOOR of that;
- ``R`` RCEIL: the smallest ``E`` with ``2^E >= fl32(amax / max_elem)``
  (``fl32``: one IEEE float32 division, round to nearest even, subnormals
  kept).

A rounded ``amax`` or quotient of 0 gives ``E = -127``; then ``E`` is clamped
to ``[-127, 127]``.

Overflow: CEIL, EVEN and RCEIL can pick ``E = 128 - emax_elem``, one above
FLOOR's largest; an element that rounds to ``±2^emax_elem`` there is
``±2^128``, which float32 cannot hold: the result is that exact value
rounded to float32, ``±Inf``. Every other result is exactly a float32.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Sequence

from ..formats import MXFloat
from .float32 import EMAX, NAN, Num, decode_bits, encode_bits, exact, fl32, floor_log2, inf, pow2
from .floating import cast_floating_element, largest_exponent, largest_magnitude

SCALE_EXPONENT_MIN = -127
SCALE_EXPONENT_MAX = 127


def _ceil_log2(v: Fraction) -> int:
    """``ceil(log2(v))`` for ``v > 0``, exactly."""
    e = floor_log2(v)
    return e if v == pow2(e) else e + 1


def _round_to_mantissa_bits(amax: Fraction, m: int) -> tuple[Fraction, int]:
    """EVEN's rounding of the float32 ``amax`` on its bits: ``(value, exponent)``,
    ``value`` 0 or ``2^exponent`` (``exponent`` may be 128 after a carry)."""
    bits = encode_bits(Num("finite", False, amax))
    rounded = (bits + (1 << (22 - m))) >> 23  # the exponent field after the carry
    if rounded == 0:
        return Fraction(0), 0
    if rounded <= 0xFE:
        value = decode_bits(rounded << 23).magnitude
        return value, floor_log2(value)
    return pow2(EMAX + 1), EMAX + 1  # 0xFF: 2^128


def shared_exponent(amax: Fraction, fmt: MXFloat) -> int:
    """The shared exponent ``E`` of a block with largest magnitude ``amax > 0``
    (an exact float32 value) under ``fmt``'s scale mode; see the module docstring."""
    element = fmt.element
    emax = largest_exponent(element)
    mode = fmt.scale_mode
    if mode == "F":
        e = floor_log2(amax) - emax
    elif mode == "C":
        e = _ceil_log2(amax) - emax
    elif mode == "E":
        value, exponent = _round_to_mantissa_bits(amax, element.man_bits)
        e = SCALE_EXPONENT_MIN if value == 0 else exponent - emax
    elif mode == "R":
        quotient = fl32(amax / largest_magnitude(element))
        e = SCALE_EXPONENT_MIN if quotient.magnitude == 0 else _ceil_log2(quotient.magnitude)
    else:
        raise ValueError(f"unknown MX scale mode {mode!r}")
    return min(max(e, SCALE_EXPONENT_MIN), SCALE_EXPONENT_MAX)


def cast_mx_block(block: Sequence[Num], fmt: MXFloat) -> list[Num]:
    """Cast one block (a sequence of float32 numbers) to ``fmt``; see the module docstring."""
    if any(not x.is_finite for x in block):
        return [NAN] * len(block)
    if all(x.is_zero for x in block):
        return list(block)
    element = fmt.element
    amax = max(x.magnitude for x in block)
    scale = pow2(shared_exponent(amax, fmt))
    out = []
    for x in block:
        scaled = Num("finite", x.negative, x.magnitude / scale)
        value = cast_floating_element(scaled, element, None).value * scale
        if abs(value) >= pow2(EMAX + 1):  # 2^128: float32 rounds it to ±Inf
            out.append(inf(x.negative))
        else:
            out.append(exact(value, x.negative))
    return out
