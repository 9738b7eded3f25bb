"""Float fast paths for eager NumPy and PyTorch (round-to-nearest-even and toward zero).

NumPy and eager PyTorch on CPU honour IEEE subnormals, so multiplying by a
power of two is exact whenever the product is representable, and
``round``/``trunc`` are exact. For ``N`` and ``Z`` rounding a cast is then a
handful of whole-array float operations: ``k = round(x * 2^-qe)``, range
handling on ``k``, ``k * 2^qe``. A product ``x * 2^-qe`` can only be inexact
when it is far below 0.5 (a subnormal), where ``round``/``trunc`` give a
signed zero either way. Each path states when it applies
(:func:`fast_path`); everything else (JAX, ``torch.compile``, stochastic and
directed rounding, the rare subnormal cases named below) takes the integer
pipeline. Tests prove both paths against the reference.
"""

from __future__ import annotations

from typing import Any, Callable

from .. import _backend as B
from ..formats.block import BlockFloatingPoint, MXInt
from ..formats.fixed import FixedPoint
from ..formats.floating import FloatingPoint
from ..formats.mx import MXFloat
from .blocks import blocking_for

Array = Any


def fast_path(x: Array, fmt: Any) -> Callable[[Any, Array], Array | None] | None:
    """The float fast path for ``fmt`` on ``x``, or ``None`` when it does not apply.

    A returned path may still decline (return ``None``) after looking at the
    data (eager only), e.g. when subnormal inputs meet a format whose smallest
    normal lies below float32's.
    """
    name = B.backend_name(x)
    if name not in ("numpy", "torch") or B.is_tracing(x):
        return None
    if isinstance(fmt, MXInt):
        fmt = fmt.as_bfp
    rounding = getattr(fmt, "rounding", "N")
    if rounding not in ("N", "Z"):
        return None
    if isinstance(fmt, FloatingPoint) and fmt.emin >= -126 and fmt.man_bits - fmt.emin <= 127:
        return lambda xp, v: _floating(xp, v, fmt)
    if isinstance(fmt, FixedPoint):
        return lambda xp, v: _fixed(xp, v, fmt)
    if isinstance(fmt, BlockFloatingPoint):
        return lambda xp, v: _bfp(xp, v, fmt)
    if isinstance(fmt, MXFloat):
        return lambda xp, v: _mxfp(xp, v, fmt)
    return None


# ----------------------------------------------------------------------------- helpers
def _pow2(xp: Any, e: Array) -> Array:
    """float32 ``2^e`` for integer arrays ``-149 <= e <= 127`` (built from bits)."""
    normal = xp.bitwise_left_shift(e + 127, xp.full_like(e, 23))
    sub = xp.bitwise_left_shift(xp.ones_like(e), xp.clip(e + 149, 0, 22))
    return B.i32_to_f32(xp.where(e >= -126, normal, sub))


def _round(xp: Any, y: Array, rounding: str) -> Array:
    return xp.round(y) if rounding == "N" else xp.trunc(y)


def _scale(xp: Any, v: Array, c: Array) -> Array:
    """``v * 2^c`` for integer ``c`` in ``-149 .. 276``, as exact as float products allow."""
    c1 = xp.clip(c, -149, 127)
    out = v * _pow2(xp, c1)
    rest = c - c1
    if bool(xp.any(rest != 0)):
        out = out * _pow2(xp, xp.clip(rest, -149, 127))
    return out


def _biased_exponent(xp: Any, v: Array) -> Array:
    return (B.f32_to_i32(v) >> 23) & 0xFF


# ----------------------------------------------------------------------------- FP
def _floating(xp: Any, x: Array, fmt: FloatingPoint) -> Array | None:
    m = fmt.man_bits
    # floor(log2|x|), valid for normals; subnormal inputs read -127 < emin, which
    # is all max(lg, emin) needs because emin >= -126 here
    lg = _biased_exponent(xp, x) - 127
    qe = xp.maximum(lg, xp.full_like(lg, fmt.emin)) - m
    if m == 0 and fmt.rounding == "N":
        return None  # ties go to the even exponent code: integer path
    k = _round(xp, x * _pow2(xp, -qe), fmt.rounding)
    r = k * _pow2(xp, qe)
    return _fp_range(xp, x, r, fmt)


def _fp_range(xp: Any, x: Array, r: Array, fmt: FloatingPoint) -> Array:
    top = fmt.max_value
    if fmt.scheme == "I":
        if fmt.rounding == "N":
            r = xp.where(xp.abs(r) > top, r * float("inf"), r)
        else:  # Z: overflow to max, Inf stays Inf
            r = xp.where(xp.isinf(x), x, xp.clip(r, -top, top))
    else:
        r = xp.clip(r, -top, top)
    if fmt.flush:
        r = xp.where(xp.abs(x) < fmt.min_normal, x * 0, r)
    if not fmt.signed:
        r = xp.where((x > 0) | xp.isnan(x), r, xp.zeros_like(r))
    return r


# ----------------------------------------------------------------------------- XP
def _fixed(xp: Any, x: Array, fmt: FixedPoint) -> Array:
    f = fmt.frac
    c = xp.full(x.shape, f, dtype=xp.int32, **_device(x))
    k = _round(xp, _scale(xp, x, c), fmt.rounding)
    if fmt.clamp:
        k = xp.clip(k, float(fmt.k_min), float(fmt.k_max))
        return k * _pow2(xp, -c)
    r = k * _pow2(xp, -c)
    if 24 - f <= 127:
        r = xp.where(xp.abs(x) >= 2.0 ** (24 - f), x, r)  # multiples of 2^-f already
    return r


# ----------------------------------------------------------------------------- blocks
def _block_exponents(xp: Any, x: Array, fmt: Any):
    blocks = blocking_for(x, fmt)
    mag = B.f32_to_i32(x) & 0x7FFFFFFF
    amax = blocks.reduce_max(xp, mag)
    return blocks, amax


def _bfp(xp: Any, x: Array, fmt: BlockFloatingPoint) -> Array:
    blocks, amax = _block_exponents(xp, x, fmt)
    ex = amax >> 23
    shared = xp.clip(ex - 127, -127, 127)  # subnormal amax: floor(log2) <= -127
    qe = shared - (fmt.man_bits - 2)
    nan_block = amax >= 0x7F800000
    grouped = blocks.group(xp, x, 0)
    k = _round(xp, _scale(xp, grouped, -qe), fmt.rounding)
    k = xp.clip(k, float(fmt.k_min), float(fmt.k_max))
    r = k * _pow2(xp, qe)
    r = xp.where(nan_block, xp.full_like(r, float("nan")), r)
    return _ungroup(xp, r, blocks)


def _mxfp(xp: Any, x: Array, fmt: MXFloat) -> Array | None:
    el = fmt.element
    blocks, amax = _block_exponents(xp, x, fmt)
    shared = xp.maximum((amax >> 23) - 127 - fmt.element_emax, xp.full_like(amax, -127))
    shared = xp.where(amax == 0, xp.zeros_like(shared), shared)
    emin_eff = el.emin + shared
    grouped = blocks.group(xp, x, 0)
    lg = _biased_exponent(xp, grouped) - 127
    if bool(xp.any(emin_eff < -126)) and bool(xp.any((lg == -127) & (grouped != 0))):
        return None  # subnormal inputs below a sub-float32 emin: integer path
    qe = xp.maximum(lg, emin_eff) - el.man_bits
    k = _round(xp, _scale(xp, grouped, -qe), el.rounding)
    r = k * _pow2(xp, qe)
    top = el.max_value * _pow2(xp, shared)
    r = xp.minimum(xp.maximum(r, -top), top)
    r = xp.where(amax >= 0x7F800000, xp.full_like(r, float("nan")), r)
    return _ungroup(xp, r, blocks)


def _ungroup(xp: Any, r: Array, blocks: Any) -> Array:
    s = list(blocks.shape)
    s[blocks.axis] = blocks.nblocks * blocks.block
    flat = xp.reshape(r, tuple(s))
    if blocks.padded:
        index = (slice(None),) * blocks.axis + (slice(0, blocks.length),)
        flat = flat[index]
    return flat


def _device(x: Array) -> dict:
    return {"device": x.device} if B.backend_name(x) == "torch" else {}
