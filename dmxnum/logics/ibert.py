"""Integer-only I-BERT softmax, GELU and layer norm (Kim et al., ICML 2021).

Implements the algorithm written in ``docs/logics.md`` ("I-BERT integer
algorithms"): per-tensor power-of-two input scale, 16-bit inputs, every
intermediate an exact int32 (bounds proven there), outputs dequantized to
float32.
"""

from __future__ import annotations

import math
from typing import Any

from .. import _backend as B
from .nf import ftz

Array = Any

IN_MIN, IN_MAX = -32768, 32767
SOFTMAX_F = (4, 14)
GELU_F = (5, 13)
LAYERNORM_F = (-113, 127)
SOFTMAX_MAX_N = 16384
LAYERNORM_MAX_N = 4096

LN2_30 = 744261117  # floor(ln 2 * 2^30)
EXP_B_30 = 1452772687  # floor(1.353 * 2^30)
EXP_C_28 = 257578233  # floor(0.344 / 0.3585 * 2^28)
EXP_RANGE = 30  # I-BERT's bound on the number of halvings
SOFTMAX_OUT_BITS = 8

ERF_B_29 = 1343113471  # floor(sqrt(2 * 1.769^2) * 2^29)
ERF_C_28 = 1858971301  # floor(2 / 0.2888 * 2^28)
GELU_T_BITS = 10
GELU_OUT_SCALE = 0.1444  # float32 constant; times 2^(-f-11)

LN_ROW_BITS = 9
LN_OUT_BITS = 15
ISQRT_ITERATIONS = 8


def _i32(value: int, like: Array) -> Array:
    return B.asarray_like(value, like, "int32")


def _pow2(e: Array) -> Array:
    """float32 ``2^e`` for int32 ``e`` in [-126, 127] (built from bits)."""
    return B.i32_to_f32((e + 127) << 23)


def quantize(x: Array, f_range: tuple[int, int]) -> tuple[Array, Array, Array]:
    """``(q, f, nan)``: 16-bit per-tensor power-of-two quantization of float32 ``x``.

    ``f = clip(14 - e_m, *f_range)`` from the largest exponent field of the
    finite elements; ``q = clip(round(x * 2^f), -32768, 32767)`` as int32;
    NaN elements give ``q = 0`` and ``nan = True``.
    """
    xp = B.namespace(x)
    x = ftz(x)
    nan = xp.isnan(x)
    field = (B.f32_to_i32(x) >> 23) & 0xFF
    field = xp.where(field == 255, xp.zeros_like(field), field)
    E = xp.max(field) if math.prod(x.shape) != 0 else _i32(0, x)
    lo, hi = f_range
    f = xp.clip(14 - (E - 127), lo, hi)
    f = xp.where(E == 0, _i32(hi, x), f)
    f = xp.astype(f, xp.int32)
    xs = xp.where(nan, xp.zeros_like(x), x) * _pow2(f)
    xs = xp.clip(xp.round(xs), float(IN_MIN), float(IN_MAX))
    return xp.astype(xs, xp.int32), f, nan


def _row_sum(v: Array) -> Array:
    xp = B.namespace(v)
    return xp.astype(xp.sum(v, axis=-1, keepdims=True), xp.int32)


def softmax_ibert(x: Array) -> Array:
    """``SOFTMAX(ibert)`` over the last axis of float32 ``x`` (docs/logics.md); float32 multiples of 2^-8."""
    xp = B.namespace(x)
    n = x.shape[-1]
    if n > SOFTMAX_MAX_N:
        raise ValueError(f"SOFTMAX(ibert) rows have at most {SOFTMAX_MAX_N} elements (int32 sums); got {n}")
    q, f, nan = quantize(x, SOFTMAX_F)
    if n == 0:
        return xp.zeros(x.shape, dtype=xp.float32)
    q_ln2 = _i32(LN2_30, q) >> (30 - f)
    q_b = _i32(EXP_B_30, q) >> (30 - f)
    q_c = _i32(EXP_C_28, q) >> (28 - 2 * f)
    s = xp.maximum(2 * f - 15, _i32(0, q))
    delta = q - xp.max(q, axis=-1, keepdims=True)
    delta = xp.maximum(delta, -EXP_RANGE * q_ln2)
    z = (-delta) // q_ln2
    r = delta + z * q_ln2
    L = (r + q_b) * (r + q_b) + q_c
    e = L >> xp.minimum(z + s, _i32(31, q))
    # -Inf is a mask: e = 0, unless the whole row is masked (then the row stays uniform)
    masked = x == float("-inf")
    masked = masked & ~xp.all(masked, axis=-1, keepdims=True)
    e = xp.where(masked, xp.zeros_like(e), e)
    total = _row_sum(e)
    y_int = (e << SOFTMAX_OUT_BITS) // total
    y = B.int_to_f32(y_int) * (2.0**-SOFTMAX_OUT_BITS)
    row_nan = xp.any(nan, axis=-1, keepdims=True)
    return xp.where(row_nan, xp.full_like(y, float("nan")), y)


def gelu_ibert(x: Array) -> Array:
    """``GELU(ibert)`` element-wise on float32 ``x`` (docs/logics.md); NaN -> NaN."""
    xp = B.namespace(x)
    q, f, nan = quantize(x, GELU_F)
    q_b = _i32(ERF_B_29, q) >> (29 - f)
    q_c = _i32(ERF_C_28, q) >> (28 - 2 * f)
    m = xp.minimum(xp.abs(q), q_b)
    L = q_c - (m - q_b) * (m - q_b)
    h = xp.sign(q) * L + q_c
    t = h >> (2 * f - GELU_T_BITS)
    g = q * t
    y = ftz(B.int_to_f32(g) * GELU_OUT_SCALE)
    y = ftz(y * _pow2(-f - 11))
    return xp.where(nan, xp.full_like(y, float("nan")), y)


def bitlen(a: Array, max_bits: int) -> Array:
    """Number of binary digits of nonnegative int32 ``a < 2^max_bits`` (0 for 0)."""
    xp = B.namespace(a)
    count = xp.zeros_like(a)
    for j in range(max_bits):
        count = count + xp.astype(a >= (1 << j), a.dtype)
    return count


def isqrt(v: Array) -> Array:
    """``floor(sqrt(v))`` for int32 ``0 <= v <= 2^30`` by I-BERT's integer Newton iteration."""
    xp = B.namespace(v)
    b = bitlen(v, 31)
    x = xp.ones_like(v) << ((b + 1) >> 1)
    done = v == 0
    for _ in range(ISQRT_ITERATIONS):
        nx = (x + v // xp.maximum(x, xp.ones_like(x))) >> 1
        done_now = done | (nx >= x)
        x = xp.where(done_now, x, nx)
        done = done_now
    return xp.where(v == 0, xp.zeros_like(x), x)


def layernorm_ibert(x: Array, w: Array | None, b: Array | None) -> Array:
    """``LAYERNORM(ibert)`` over the last axis of float32 ``x`` (docs/logics.md)."""
    xp = B.namespace(x)
    n = x.shape[-1]
    if n > LAYERNORM_MAX_N:
        raise ValueError(f"LAYERNORM(ibert) normalizes at most {LAYERNORM_MAX_N} elements (int32 sums); got {n}")
    q, _, nan = quantize(x, LAYERNORM_F)
    if n == 0:
        return xp.zeros(x.shape, dtype=xp.float32)
    mean = (2 * _row_sum(q) + n) // (2 * n)
    y = q - mean
    a = xp.max(xp.abs(y), axis=-1, keepdims=True)
    k = xp.maximum(bitlen(a, 17) - LN_ROW_BITS, xp.zeros_like(a))
    yr = y >> k
    std = isqrt(_row_sum(yr * yr))
    out = (y << LN_OUT_BITS) // xp.maximum(std << k, xp.ones_like(std))
    out = xp.where(std == 0, xp.zeros_like(out), out)
    c_n = float(_sqrt_f32(n)) * 2.0**-LN_OUT_BITS
    res = ftz(B.int_to_f32(out) * c_n)
    if w is not None:
        res = ftz(B.rounding_point(res) * ftz(w))
    if b is not None:
        res = ftz(res + ftz(b))
    row_nan = xp.any(nan, axis=-1, keepdims=True)
    return xp.where(row_nan, xp.full_like(res, float("nan")), res)


def _sqrt_f32(n: int) -> float:
    import numpy as np

    return float(np.sqrt(np.float32(n)))
