"""Float fast path for scaled BFP ``SBFP<XP[n,0](CXY)><FP[...]>{b,d}``.

The format is defined by IEEE float32 operations (``fl32(amax / C)``,
``fl32(x / s)``, ``fl32(k * s)``), so on a backend that performs them as
IEEE operations the cast *is* those operations:

- per block, ``a = amax / C`` (``C = 2^(n-1) - 1``) and the scaler cast of
  ``a`` (:mod:`.fp_bits`, or the integer FP kernel on per-block values);
- per element, ``q = x / s``, ``k = round(q)`` by the block format's letter
  (exact float operations, see :func:`.fastpath.round_magnitude`), clamped to the
  block range (an infinite quotient lands on the range end), and ``k * s``.
  A block whose scale is 0 divides by ``+Inf`` and multiplies by 0, which
  gives zeros with the inputs' signs; a block holding NaN or Inf is NaN.

NumPy, eager PyTorch and inductor on CPU do exactly that. XLA needs two
guards: a division by a broadcast operand becomes a reciprocal product, so
every divisor is a runtime value it cannot see through (a ``where`` per
block for ``C``, :func:`.._backend.rounding_point` on the full-shape scale);
and float32 subnormals read as zero, so JAX takes this path only when every
block's ``a`` is normal and its ``s`` is 0 or at least ``2^-124`` (then a
subnormal ``x`` gives ``|x / s| < 1/4``, which ``N`` and ``Z`` round to a
signed zero either way, and every nonzero ``k * s`` is normal), and for
``S``/``U``/``D`` also when no nonzero ``x`` meets a zero or subnormal
quotient; otherwise the exact integer pipeline (one ``lax.cond``).
"""

from __future__ import annotations

from typing import Any

from .. import _backend as B
from ..formats.scaled import ScaledBFP
from . import bits as I
from . import fp_bits
from .blocks import blocking_for
from .fastpath import _block_exponents, _is_eager, _ungroup, jax_block_max_and_lowest, round_magnitude

Array = Any


def block_scales(xp: Any, amax: Array, fmt: ScaledBFP) -> Array:
    """float32 per-block scales ``s = scaler(fl32(amax / C))`` from the int32
    bits of the block maxima (0 for NaN blocks)."""
    amax = xp.where(amax >= I.INF_BITS, xp.zeros_like(amax), amax)
    a_max = B.i32_to_f32(amax)
    c = float(fmt.block.k_max)
    # a runtime divisor (amax < 0 never holds): XLA turns division by a
    # constant into a product by its reciprocal
    den = xp.where(amax < 0, xp.ones_like(a_max), xp.full_like(a_max, c))
    a = a_max / den
    if fp_bits.applies(fmt.scaler, B.backend_name(a)):
        return fp_bits.cast_fp_bits(xp, a, fmt.scaler)
    from .floating import cast_float_bits

    return B.i32_to_f32(cast_float_bits(xp, I.split(xp, B.f32_to_i32(a)), fmt.scaler, None))


def cast_sbfp_fast(
    xp: Any, x: Array, fmt: ScaledBFP, words: Array | None = None,
    amax: Array | None = None, scale: Array | None = None,
) -> Array:
    """The SBFP cast of float32 ``x`` by float operations, given optionally
    its block maxima (int32 bits) and scales (float32)."""
    blocks, amax = _block_exponents(xp, x, fmt, amax)
    nan_block = amax >= I.INF_BITS
    s = block_scales(xp, amax, fmt) if scale is None else scale
    zero_block = B.f32_to_i32(s) == 0  # on bits: XLA compares a subnormal s as zero
    s_div = xp.where(zero_block, xp.full_like(s, float("inf")), s)
    grouped = blocks.group(xp, x, 0)
    gw = None if words is None else blocks.group(xp, words, 0)
    divisor = xp.broadcast_to(s_div, grouped.shape)
    if B.backend_name(x) == "jax":
        divisor = B.rounding_point(divisor)
    r_letter = fmt.block.rounding
    if r_letter in ("U", "D"):
        q = grouped / divisor
        k = xp.ceil(q) if r_letter == "U" else xp.floor(q)
    else:
        # |q| = |x| / s, so that the division has one use (XLA materializes a
        # quotient it would otherwise need several times); the sign from the bits
        neg = (B.f32_to_i32(grouped) < 0) if r_letter == "S" else None
        k = xp.copysign(round_magnitude(xp, xp.abs(grouped) / divisor, r_letter, gw, neg), grouped)
    k = xp.clip(k, float(fmt.block.k_min), float(fmt.block.k_max))
    r = k * s
    if not (_is_eager(x) and not bool(xp.any(nan_block))):
        r = xp.where(nan_block, xp.full_like(r, float("nan")), r)
    return _ungroup(xp, r, blocks)


def jax_guard(xp: Any, x: Array, fmt: ScaledBFP) -> tuple[Array, Array, Array]:
    """``(amax, scales, safe)`` for :func:`jax_sbfp`: block maxima (int32
    bits), block scales, and whether the float path is exact under XLA.

    Safe when every block's ``a = amax / C`` is normal and its scale is 0 or
    at least ``2^-124``, and for ``S``/``U``/``D`` no nonzero ``x`` has a
    quotient that may be subnormal (``x`` subnormal, or
    ``floor(log2 x) - floor(log2 s) < -125``), which XLA would flush to zero.
    """
    stochastic_like = fmt.block.rounding in ("S", "U", "D")
    if stochastic_like:
        blocks = blocking_for(x, fmt)
        amax, low = jax_block_max_and_lowest(xp, x, blocks)
    else:
        blocks, amax = _block_exponents(xp, x, fmt)
    s = block_scales(xp, amax, fmt)
    s_bits = B.f32_to_i32(s)
    a_normal = (amax >> 23) - 127 >= -126 + int(fmt.block.k_max).bit_length()
    safe = (amax >= I.INF_BITS) | (amax == 0) | (a_normal & ((s_bits == 0) | (s_bits >= (3 << 23))))  # s >= 2^-124
    safe = xp.all(safe)
    if stochastic_like:
        quotients_normal = (low >= 1) & (low - 127 - ((s_bits >> 23) - 127) >= -125)
        safe = safe & xp.all((s_bits == 0) | quotients_normal)
    return amax, s, safe


def jax_sbfp(xp: Any, x: Array, fmt: ScaledBFP, words: Array | None) -> Array:
    """The float path under XLA when :func:`jax_guard` allows it, else the
    integer pipeline (one ``lax.cond``, which also keeps XLA from recomputing
    the block scales for every element)."""
    import jax

    from .dispatch import integer_path

    amax, s, safe = jax_guard(xp, x, fmt)

    def fast(v: Array, a: Array, sc: Array, w: Array | None) -> Array:
        return cast_sbfp_fast(xp, v, fmt, B.as_top24(w), amax=a, scale=sc)

    def slow(v: Array, a: Array, sc: Array, w: Array | None) -> Array:
        return integer_path(xp, v, fmt, w)

    return jax.lax.cond(safe, fast, slow, x, amax, s, words)
