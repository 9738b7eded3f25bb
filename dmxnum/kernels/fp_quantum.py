"""Eager FP casts to nearest (or toward zero) by a per-element power-of-two quantum.

For a signed, saturating (scheme S, E or A), non-flushing format, the SPEC's
quantum is ``q = 2^(E - m)`` with ``E = max(floor(log2 |x|), emin)``, and
rounding with an unbounded exponent then saturating equals clamping to
``±max`` first (``max`` lies on the grid, rounding is monotonic). So

    v = clip(x, -max, max);  fmt(x) = round(v * 2^(m - E)) * 2^(E - m)

with ``E`` read from the exponent field of ``v`` and both powers built from
bits, so both must be normal float32 values for every ``E`` in
``emin .. emax`` (:func:`why_not`; ``m = 0`` with ``emax = 127``, e.g.
``FP[1|8|0,127](_Z)``, would need ``2^-127``, which those bits give as 0,
and takes :mod:`.fp_pattern` instead). ``v * 2^(m - E)`` is exact (a
power-of-two product with a normal result) unless ``v`` is a float32
subnormal scaled down, which lies far below one half and rounds to a signed
zero either way; ``round`` is half-to-even
and ``k * 2^(E - m)`` is a value of the format, so exact. NaN propagates
through every step. About a dozen whole-array operations with no data-dependent
branch: cheaper in eager PyTorch than rounding the bit pattern and then
treating values below ``2^emin`` apart (:mod:`.fp_pattern`). Eager NumPy and
PyTorch only (XLA reads subnormals as zero; compiled paths use
:mod:`.fp_pattern`).
"""

from __future__ import annotations

from typing import Any

from .. import _backend as B
from ..formats.floating import FloatingPoint

Array = Any


def why_not(fmt: FloatingPoint) -> str | None:
    """``None`` when :func:`cast_fp_quantum` computes ``fmt`` exactly (eager IEEE backends), else the reason."""
    m, emin = fmt.man_bits, fmt.emin
    if not fmt.signed or fmt.flush or fmt.scheme not in ("S", "E", "A"):
        return "needs a signed, non-flushing, saturating (S, E or A) format"
    if fmt.rounding not in ("N", "Z"):
        return f"rounding {fmt.rounding} (rounds by N or Z only)"
    if m == 0 and fmt.rounding == "N":
        return "m = 0 rounding N: ties go to the even exponent code, not the even k"
    # 2^(m - E) and 2^(E - m) are normal float32 values for every E in
    # emin .. emax (built from bits, they must be: 2^-127 would read as 0)
    if m - emin > 127 or emin - m < -126:
        return "2^(m - emin) or 2^(emin - m) is not a normal float32"
    if m - fmt.emax < -126:  # only m = 0, emax = 127 (max in float32's top binade)
        return "2^(m - emax) is below float32's normal range (m = 0, max in the top binade)"
    return None


def cast_fp_quantum(xp: Any, x: Array, fmt: FloatingPoint) -> Array:
    """``fmt(x)`` for float32 ``x`` when :func:`why_not` is ``None`` (see the module docstring)."""
    m = fmt.man_bits
    v = xp.clip(x, -fmt.max_value, fmt.max_value)
    biased = xp.clip((B.f32_to_i32(v) >> 23) & 0xFF, fmt.emin + 127, None)  # E = max(floor(log2 |v|), emin)
    down = B.i32_to_f32((254 + m - biased) << 23)  # 2^(m - E)
    up = B.i32_to_f32((biased - m) << 23)  # 2^(E - m)
    scaled = v * down
    k = xp.round(scaled) if fmt.rounding == "N" else xp.trunc(scaled)
    return k * up

