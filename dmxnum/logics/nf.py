"""Arithmetic rounded to a logic's number format NF, and halving-tree reductions.

Values are carried as float32 arrays holding NF numbers. Each IEEE step is
computed in float32 and rounded once to NF:

* ``float16``: a backend float32 -> float16 conversion (RNE, overflow to
  +-Inf, float16 subnormals kept; they are normal float32 numbers) and back;
* ``bfloat16``: float32 results below 2^-126 flushed to a signed zero (on the
  bit pattern), then a backend float32 -> bfloat16 conversion (RNE) and back;
* ``float32`` and the float steps of ``int``: the flush alone.

For ``+ - * / sqrt`` of NF operands, rounding the float32 result again to
NF equals one rounding of the exact result (float32 carries more than
``2p + 2`` bits for p = 11 and p = 8), so each step is "one IEEE operation
rounded to NF". The explicit conversion or flush after every step is a
rounding point XLA does not fuse through (tested under ``jax.jit``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _backend as B

Array = Any

_SIGN = -(2**31)
_EXP_MASK = 0x7F800000


def ftz(x: Array) -> Array:
    """Flush float32 values below 2^-126 in magnitude (subnormals) to a zero of the same sign."""
    xp = B.namespace(x)
    bits = B.f32_to_i32(x)
    tiny = (bits & _EXP_MASK) == 0
    return xp.where(tiny, B.i32_to_f32(bits & _SIGN), x)


def _convert(x: Array, name: str) -> Array:
    """float32 -> ``name`` (float16 / bfloat16) -> float32 on x's backend (RNE)."""
    backend = B.backend_name(x)
    if backend == "numpy":
        import ml_dtypes

        dt = np.float16 if name == "float16" else ml_dtypes.bfloat16
        with np.errstate(over="ignore", invalid="ignore"):
            return np.asarray(x, dtype=np.float32).astype(dt).astype(np.float32)
    if backend == "jax":
        import jax.numpy as jnp

        return x.astype(getattr(jnp, name)).astype(jnp.float32)
    # PyTorch: inductor removes a float32 -> float16 -> float32 round trip inside
    # fused kernels, so traced code rounds on the bit pattern; eager code uses
    # the native conversion (the same RNE, overflow and subnormals; NaN and Inf
    # are passed through unchanged as the bit path does, keeping NaN payloads).
    import torch

    if B.is_tracing(x) or torch.compiler.is_compiling() or torch.compiler.is_exporting():
        return _round_bits_f16(x) if name == "float16" else _round_bits_bf16(x)
    dtype = torch.float16 if name == "float16" else torch.bfloat16
    return torch.where(torch.isfinite(x), x.to(dtype).to(torch.float32), x)


def _round_bits_bf16(x: Array) -> Array:
    """RNE of float32 ``x`` (no subnormals) to bfloat16, on the bits; NaN/Inf kept, overflow to Inf."""
    xp = B.namespace(x)
    bits = B.f32_to_i32(x)
    r = (bits + (0x7FFF + ((bits >> 16) & 1))) & -65536
    special = (bits & _EXP_MASK) == _EXP_MASK
    return xp.where(special, x, B.i32_to_f32(r))


def _round_bits_f16(x: Array) -> Array:
    """RNE of float32 ``x`` to float16 (subnormals 2^-24 grid, overflow to Inf), returned as float32."""
    xp = B.namespace(x)
    bits = B.f32_to_i32(x)
    mag = bits & 0x7FFFFFFF
    sign = bits & _SIGN
    # normal float16 range: keep 10 mantissa bits
    r = (mag + (0xFFF + ((mag >> 13) & 1))) & ~0x1FFF
    r = xp.where(r > 0x477FE000, xp.full_like(r, 0x7F800000), r)  # above 65504 -> Inf
    normal = B.i32_to_f32(r | sign)
    # float16 subnormal range (|x| < 2^-14): multiples of 2^-24, exact float32 scalings
    sub = xp.round(x * 16777216.0) * (1.0 / 16777216.0)
    special = (bits & _EXP_MASK) == _EXP_MASK
    out = xp.where(mag < 0x38800000, sub, normal)
    return xp.where(special, x, out)


def round_nf(x: Array, nf: str) -> Array:
    """Round float32 ``x`` to NF (``"float16"``, ``"bfloat16"``, ``"float32"`` or ``"int"``: float32)."""
    if nf == "float16":
        return _convert(x, "float16")
    if nf == "bfloat16":
        return _convert(ftz(x), "bfloat16")
    return ftz(x)


def const_nf(value: float, nf: str) -> float:
    """A Python float constant rounded (RNE) to NF, as a float exactly representable in float32.

    float16 and float32: NumPy's direct float64 conversion. bfloat16: the
    nearest of the bfloat16 neighbours of the float32 value, by exact
    distance (no double rounding through float32).
    """
    v = np.float64(value)
    if nf == "float16":
        return float(np.float16(v))
    if nf == "bfloat16":
        return float(_f64_to_bf16(float(v)))
    return float(np.float32(v))


def _f64_to_bf16(v: float) -> "np.generic":
    """RNE of a float64 to bfloat16 without an intermediate float32 rounding."""
    from fractions import Fraction

    import ml_dtypes

    f = np.float32(v)
    lo = ml_dtypes.bfloat16(f)
    cand = [lo, np.nextafter(lo, ml_dtypes.bfloat16(np.inf)), np.nextafter(lo, ml_dtypes.bfloat16(-np.inf))]
    exact = Fraction(v)
    best = min(cand, key=lambda c: (abs(Fraction(float(c)) - exact), int(np.asarray(c).view(np.uint16)) & 1))
    return best


class Arith:
    """One-operation-at-a-time arithmetic rounded to ``nf`` on float32 arrays."""

    def __init__(self, nf: str, like: Array):
        self.nf = nf
        self.xp = B.namespace(like)
        self.like = like

    def r(self, x: Array) -> Array:
        return round_nf(x, self.nf)

    def c(self, value: float) -> float:
        return const_nf(value, self.nf)

    def add(self, a: Any, b: Any) -> Array:
        return self.r(a + b)

    def sub(self, a: Any, b: Any) -> Array:
        return self.r(a - b)

    def mul(self, a: Any, b: Any) -> Array:
        return self.r(a * b)

    def div(self, a: Array, b: Array) -> Array:
        """``a / b`` rounded to NF; ``b`` is broadcast to ``a``'s shape behind a rounding point
        (and a ``where`` on ``a``: for a single row XLA moved the rounding point
        before the broadcast and divided by the reciprocal; NaN ``a`` divide by 1)."""
        xp = self.xp
        if tuple(b.shape) != tuple(a.shape):
            b = xp.where(xp.isnan(a), xp.ones_like(a), xp.broadcast_to(b, a.shape))
        b = B.rounding_point(b)
        return self.r(a / b)


def pow2_exact(p: Array, d: Array) -> Array:
    """``p * 2^d`` computed in float32, exact whenever the result is a normal float32.

    ``p`` is finite with ``|p|`` in [2^-24, 4] or Inf/NaN, ``d`` integer valued
    (float32) or +-Inf / NaN: ``2^NaN`` is NaN, ``2^-Inf`` is 0, ``2^+Inf`` is
    Inf. Results below the float32 normal range come out as the hardware's
    float32 product (a subnormal or 0); the caller rounds them to NF.
    """
    xp = B.namespace(p)
    nan = xp.isnan(d)
    dz = xp.where(nan, xp.zeros_like(d), d)
    a = xp.clip(dz, -120.0, 120.0)
    b = xp.clip(dz - a, -126.0, 127.0)
    pa = B.i32_to_f32((xp.astype(a, xp.int32) + 127) << 23)
    pb = B.i32_to_f32((xp.astype(b, xp.int32) + 127) << 23)
    e = (p * pa) * pb
    inf = xp.isinf(d)
    e = xp.where(inf, p * xp.where(d > 0, xp.full_like(d, float("inf")), xp.zeros_like(d)), e)
    return xp.where(nan, xp.full_like(e, float("nan")), e)


def sqrt_f32(x: Array) -> Array:
    """Correctly rounded float32 square root (PyTorch's vectorized CPU float32 sqrt is not:
    there it is computed in float64 and rounded once, which is exact rounding)."""
    if B.backend_name(x) == "torch":
        import torch

        return torch.sqrt(x.to(torch.float64)).to(torch.float32)
    return B.namespace(x).sqrt(x)


def div_by_count(A: Arith, s: Array, n: int) -> Array:
    """``s / n`` rounded to NF (``n`` a count converted to NF), with ``n`` a full-shape runtime
    array behind a rounding point, so the compiler cannot rewrite it as a multiplication
    by a broadcast reciprocal (NaN ``s`` divides by itself)."""
    xp = A.xp
    nn = xp.where(xp.isnan(s), s, xp.full_like(s, A.c(float(n))))
    return A.r(s / B.rounding_point(nn))


def rsqrt_f32(v: Array) -> Array:
    """``1 / sqrt(v)`` as two float32 operations (each flushed), kept apart from XLA's rsqrt rewrite."""
    t = B.rounding_point(ftz(sqrt_f32(v)))
    return ftz(1.0 / t)


def _pad_last(x: Array, fill: float) -> Array:
    xp = B.namespace(x)
    n = x.shape[-1]
    size = 1
    while size < n:
        size *= 2
    if size == n:
        return x
    pad = xp.full(tuple(x.shape[:-1]) + (size - n,), fill, dtype=x.dtype, device=array_device(x))
    return xp.concat([x, pad], axis=-1)


def array_device(x: Array) -> Any:
    """The device of ``x`` (``None`` for NumPy and JAX, where the default device is used)."""
    return x.device if B.backend_name(x) == "torch" else None


def tree_sum(x: Array, nf: str) -> Array:
    """Halving-tree sum over the last axis (kept with length 1), each addition rounded to NF.

    The axis is padded with +0 to a power of two; the upper half is added onto
    the lower half until one element is left. An empty axis sums to +0.
    """
    xp = B.namespace(x)
    if x.shape[-1] == 0:
        return xp.zeros(tuple(x.shape[:-1]) + (1,), dtype=x.dtype, device=array_device(x))
    v = _pad_last(x, 0.0)
    while v.shape[-1] > 1:
        h = v.shape[-1] // 2
        v = round_nf(v[..., :h] + v[..., h:], nf)
    return v


def tree_max(x: Array) -> Array:
    """Halving-tree maximum over the last axis (kept with length 1), NaN propagating; pad -Inf."""
    xp = B.namespace(x)
    v = _pad_last(x, float("-inf"))
    while v.shape[-1] > 1:
        h = v.shape[-1] // 2
        v = xp.maximum(v[..., :h], v[..., h:])
    return v


# ----------------------------------------------------------------------------- float16 bits
def f16_bits(x: Array) -> Array:
    """The float16 bit pattern (int32 in [0, 65535]) of float32 values that are float16 numbers."""
    backend = B.backend_name(x)
    if backend == "numpy":
        return np.asarray(x, np.float32).astype(np.float16).view(np.uint16).astype(np.int32)
    if backend == "jax":
        import jax
        import jax.numpy as jnp

        return jax.lax.bitcast_convert_type(x.astype(jnp.float16), jnp.uint16).astype(jnp.int32)
    import torch

    return x.to(torch.float16).view(torch.int16).to(torch.int32) & 0xFFFF


def f16_from_bits(b: Array) -> Array:
    """float32 values of float16 bit patterns ``b`` (int32 in [0, 65535])."""
    backend = B.backend_name(b)
    if backend == "numpy":
        return np.asarray(b).astype(np.uint16).view(np.float16).astype(np.float32)
    if backend == "jax":
        import jax
        import jax.numpy as jnp

        return jax.lax.bitcast_convert_type(b.astype(jnp.uint16), jnp.float16).astype(jnp.float32)
    import torch

    signed = ((b + 32768) & 0xFFFF) - 32768
    return signed.to(torch.int16).view(torch.float16).to(torch.float32)
