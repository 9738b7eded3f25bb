"""Static (calibrated) scales: ``cast(x, fmt, scale=s)`` (SPEC section 3).

The scaled cast is ``fl32(cast(fl32(x / s), fmt) * s)``: one IEEE float32
division, the format's cast, one IEEE float32 product, with ``s`` a float32
array of positive normal values broadcasting to ``x``'s shape without
enlarging it. :func:`as_scale` checks and converts ``s``; :func:`divide`
and :func:`multiply` are the two float32 operations, exact on every backend.

IEEE backends (NumPy, PyTorch eager and compiled) compute them as written.
Under XLA (JAX on CPU, SPEC section 2) a division by a broadcast operand
becomes a product by its reciprocal and float32 subnormals read as zero:
the divisor is made a full-shape run-time value (a ``where`` on the data)
and a guard (:func:`.guards.choose`, one ``cond`` per array) runs the float
operation only when every operand and result is normal; otherwise the
exact integer operations :func:`div_bits` / :func:`mul_bits` (integer long
division and a 12-bit-limb product of the significands, one RNE rounding
with subnormals) run instead.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _backend as B
from . import bitfields as I
from .guards import choose
from .paths import Ctx

Array = Any

#: the smallest normal float32 (a scale must be at least this)
MIN_NORMAL_BITS = 0x00800000


# ----------------------------------------------------------------------------- checking
def as_scale(x: Array, scale: Any, fmt: Any = None) -> Array:
    """``scale`` checked and converted to a float32 array of ``x``'s backend (and device).

    Accepts a Python int/float, a NumPy scalar or array (any backend), or an
    array of ``x``'s own backend, of a float dtype (converted to float32
    with RNE). Its shape must broadcast to ``x.shape`` without enlarging it
    (per tensor, per channel, per group). In eager mode every value must be
    a positive normal float32 (``2^-126 <= s <= 3.4e38``); for ``NVFP4(T)``
    (where ``scale`` is the tensor scale ``g``) within ``[2^-120, 2^116]``.
    Raises ``TypeError`` for a non-number, an integer/bool array or an array
    of another backend, ``ValueError`` for a bad shape or value. Traced
    values (``jax.jit``, ``torch.compile``) are not inspected: an invalid
    scale gives unspecified results there.
    """
    target = B.backend_name(x)
    if isinstance(scale, bool) or isinstance(scale, np.bool_):
        raise TypeError(f"scale must be a positive float (or a float32 array), got {scale!r}")
    if isinstance(scale, (int, float, np.integer, np.floating)):
        scale = np.asarray(scale, dtype=np.float32)
    try:
        source = B.backend_name(scale)
    except TypeError:
        raise TypeError(
            f"scale must be a float, a NumPy array or a {target} array of floats; got {type(scale).__name__}"
        ) from None
    if source not in ("numpy", target):
        raise TypeError(f"scale is a {source} array but x is a {target} array; pass a {target} or NumPy array")
    name = B.dtype_name(scale)
    if name not in ("float16", "bfloat16", "float32", "float64"):
        raise TypeError(f"scale has dtype {name}; it must be a float array (float32; other floats are converted)")
    shape, xshape = tuple(scale.shape), tuple(x.shape)
    try:
        grown = np.broadcast_shapes(shape, xshape)
    except ValueError:
        grown = None
    if grown != xshape:
        raise ValueError(
            f"scale of shape {shape} does not broadcast to x's shape {xshape} without enlarging it; "
            "valid: () per tensor, or x's shape with some axes of size 1 (per channel, per group)"
        )
    if source != target:
        scale = B.convert_like(np.asarray(scale, dtype=np.float32), x)
    if target == "torch":
        scale = scale.detach()
    s = B.to_float32(scale)
    if not B.is_tracing(s) and not B.is_tracing(x):
        _check_values(s, fmt)
    return s


def _check_values(s: Array, fmt: Any) -> None:
    bits = B.to_numpy(B.f32_to_i32(s)).astype(np.int64)
    if bits.size == 0:
        return
    two_level = getattr(fmt, "tensor_scale", False)
    if two_level:
        from ..formats.nvfp4 import TENSOR_SCALE_MAX, TENSOR_SCALE_MIN

        lo, hi = I.value_bits(TENSOR_SCALE_MIN), I.value_bits(TENSOR_SCALE_MAX)
        valid = f"a tensor scale g of {fmt} in [2^-120, 2^116]"
    else:
        lo, hi = MIN_NORMAL_BITS, I.INF_BITS - 1
        valid = "positive normal float32 values (2^-126 <= s <= 3.4e38, finite)"
    bad = (bits < lo) | (bits > hi)
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        value = B.to_numpy(s)[idx] if s.ndim else B.to_numpy(s)[()]
        where = f" at index {idx}" if idx else ""
        raise ValueError(f"scale{where} is {float(value)!r}; valid: {valid}")


# ----------------------------------------------------------------------------- the two operations
def divide(xp: Any, x: Array, s: Array, ctx: Ctx) -> Array:
    """``fl32(x / s)`` for float32 ``x`` and positive normal float32 ``s``
    broadcasting to ``x`` (result of ``x``'s shape), exactly (RNE, subnormal
    results kept, overflow to ±Inf, NaN stays NaN, zeros keep their sign)."""
    if ctx.ieee:
        return x / s
    sb = xp.broadcast_to(s, x.shape)
    xb, sbits = B.f32_to_i32(x), B.f32_to_i32(sb)
    mag = xb & I.MAG_MASK
    plain = (mag == 0) | (mag >= I.INF_BITS)
    # x normal, and |x / s| >= 2^(lg x - lg s - 1) >= 2^-126: a normal quotient
    safe = plain | (((mag >> 23) > 0) & ((mag >> 23) - (sbits >> 23) >= -125))

    def fast(v: Array, d: Array) -> Array:
        # a where on the data keeps the divisor a full-shape run-time value:
        # XLA turns a division by a broadcast operand into a reciprocal product
        return v / xp.where(xp.isnan(v), xp.ones_like(d), d)

    def slow(v: Array, d: Array) -> Array:
        return B.i32_to_f32(div_bits(xp, B.f32_to_i32(v), B.f32_to_i32(d)))

    return choose(safe, fast, slow, x, sb)


def multiply(xp: Any, y: Array, s: Array, ctx: Ctx) -> Array:
    """``fl32(y * s)`` for float32 ``y`` and positive normal float32 ``s``
    broadcasting to ``y``, exactly (RNE, subnormal results kept, overflow to
    ±Inf, NaN stays NaN, zeros keep their sign)."""
    if ctx.ieee:
        return y * s
    sb = xp.broadcast_to(s, y.shape)
    yb, sbits = B.f32_to_i32(y), B.f32_to_i32(sb)
    mag = yb & I.MAG_MASK
    plain = (mag == 0) | (mag >= I.INF_BITS)
    # y normal and |y * s| >= 2^(lg y + lg s) >= 2^-126: a normal product
    safe = plain | (((mag >> 23) > 0) & ((mag >> 23) + (sbits >> 23) - 254 >= -126))

    def fast(v: Array, d: Array) -> Array:
        return B.rounding_point(v * d)  # no FMA with whatever follows

    def slow(v: Array, d: Array) -> Array:
        return B.i32_to_f32(mul_bits(xp, B.f32_to_i32(v), B.f32_to_i32(d)))

    return choose(safe, fast, slow, y, sb)


# ----------------------------------------------------------------------------- exact integer operations
def div_bits(xp: Any, xb: Array, sb: Array) -> Array:
    """int32 bits of ``fl32(x / s)`` from the int32 bits of float32 ``x`` and of
    a positive normal ``s`` (same shape), with integer operations only.

    The significands (``x``'s normalized) are divided by restoring long
    division into a 26-bit quotient and a sticky remainder, then rounded
    once (:func:`_round_bits`).
    """
    px, ps = I.split(xp, xb), I.split(xp, sb)
    # normalize a subnormal x: its significand into [2^23, 2^24)
    up = xp.where(px.sig > 0, 23 - _ilog2(xp, px.sig), xp.zeros_like(px.sig))
    up = xp.clip(up, 0, 23)
    sig = xp.bitwise_left_shift(px.sig, up)
    e = px.e - up
    d = ps.sig  # in [2^23, 2^24): s is normal
    q = xp.astype(sig >= d, sig.dtype)
    r = sig - q * d

    def step(state: tuple) -> tuple:
        q, r = state
        r = r * 2
        bit = r >= d
        return q * 2 + xp.astype(bit, q.dtype), r - xp.where(bit, d, xp.zeros_like(d))

    q, r = B.repeat(25, step, (q, r))  # q = floor(sig * 2^25 / d) in [2^24, 2^26)
    out = _round_bits(xp, q, r != 0, e - ps.e - 25)
    return _finish(xp, px, out)


def mul_bits(xp: Any, yb: Array, sb: Array) -> Array:
    """int32 bits of ``fl32(y * s)`` from the int32 bits of float32 ``y`` and of
    a positive normal ``s`` (same shape), with integer operations only.

    The 48-bit product of the significands is formed from 12-bit limbs as
    ``H * 2^24 + L`` (every partial product below ``2^25``), cut to at most
    25 bits plus a sticky bit, and rounded once (:func:`_round_bits`).
    """
    py, ps = I.split(xp, yb), I.split(xp, sb)
    a1, a0 = py.sig >> 12, py.sig & 0xFFF
    b1, b0 = ps.sig >> 12, ps.sig & 0xFFF
    mid = a1 * b0 + a0 * b1
    t = a0 * b0 + xp.bitwise_left_shift(mid & 0xFFF, xp.full_like(mid, 12))
    low = t & 0xFFFFFF
    high = a1 * b1 + (mid >> 12) + (t >> 24)
    d = xp.where(high > 0, _ilog2(xp, high), xp.zeros_like(high))  # the product has 24 + d + 1 bits
    q_high = xp.bitwise_left_shift(high, 24 - d) | xp.bitwise_right_shift(low, d)
    sticky = (low & (xp.bitwise_left_shift(xp.ones_like(d), d) - 1)) != 0
    q = xp.where(high > 0, q_high, low)
    sticky = (high > 0) & sticky
    out = _round_bits(xp, q, sticky, py.e + ps.e + xp.where(high > 0, d, xp.zeros_like(d)))
    return _finish(xp, py, out)


def _finish(xp: Any, p: I.Parts, out: Array) -> Array:
    """Attach ``x``'s sign; zeros, ±Inf and NaN of the first operand pass through."""
    out = xp.where(p.sig == 0, xp.zeros_like(out), out)
    out = xp.where(p.mag >= I.INF_BITS, p.mag, out)
    out = I.with_sign(xp, out, p.neg)
    return xp.where(p.mag > I.INF_BITS, xp.full_like(out, I.QNAN_BITS), out)


def _ilog2(xp: Any, v: Array) -> Array:
    """``floor(log2 v)`` of int32 ``0 < v < 2^31`` (from exact int -> float32 conversions of 16-bit halves)."""
    hi = v >> 16

    def lg(u: Array) -> Array:
        return (B.f32_to_i32(B.int_to_f32(u)) >> 23) - 127

    return xp.where(hi > 0, lg(hi) + 16, lg(v & 0xFFFF))


def _round_bits(xp: Any, q: Array, sticky: Array, exp: Array) -> Array:
    """int32 magnitude bits of ``(q + f) * 2^exp`` rounded to float32 (RNE,
    subnormals, overflow to Inf), for ``0 <= q < 2^26`` and ``0 <= f < 1``,
    where ``f > 0`` iff ``sticky`` (only when ``q >= 2^24``)."""
    lg = _ilog2(xp, xp.maximum(q, xp.ones_like(q))) + exp
    qe = xp.maximum(lg, xp.full_like(lg, -126)) - 23
    sh = qe - exp
    left = xp.bitwise_left_shift(q, xp.clip(-sh, 0, 24))
    sc = xp.clip(sh, 1, 30)
    k0 = xp.bitwise_right_shift(q, sc)
    rem = q - xp.bitwise_left_shift(k0, sc)
    half = xp.bitwise_left_shift(xp.ones_like(sc), sc - 1)
    up = (rem > half) | ((rem == half) & (sticky | ((k0 & 1) == 1)))
    k = xp.where(sh <= 0, left, k0 + xp.astype(up, k0.dtype))
    out = I.compose(xp, k, qe)
    return xp.where(q == 0, xp.zeros_like(out), out)
