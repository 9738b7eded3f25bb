"""The NVFP4 family ``NVFP4{b,d}`` and ``NVFP4{b,d}(T)``: kernels and paths.

The format is defined by IEEE float32 operations (SPEC section 3). Per
block, with ``amax`` its largest magnitude: ``a = fl32(amax / 6)``;
``c = a`` (single level) or ``fl32(a / g)`` (two level, tensor scale ``g``);
``s = e4m3(clamp(c, 2^-6, 448))``; ``r = fl32(1 / s)`` or
``fl32(fl32(1 / g) / s)``; ``gs = s`` or ``fl32(g * s)``. Per element
``q = e2m1(clamp(fl32(x * r), -6, 6))`` and the result ``fl32(q * gs)``.
A block holding NaN or ±Inf is NaN.

Paths, in selection order:

- ``nvfp4.float`` (NumPy and PyTorch, eager and compiled; JAX for single
  level): those float operations as written (:func:`cast_float`);
- ``nvfp4.float|integer`` (JAX, two level): the float kernel when every
  tensor scale is at least ``2^-118``, else the integer kernel;
- ``nvfp4.integer`` (always): the per-block scales as above (exact on every
  backend, see :func:`block_scales`), the per-element steps on integers.

Why the float kernel is exact under XLA (which reads float32 subnormals as
zero, flushes subnormal results and rewrites divisions, SPEC section 2):
every divisor is a full-shape run-time value (a ``where`` on the data), and
a rounding point separates chained divisions, so no division becomes a
product by a reciprocal; no product feeds an addition (nothing to fuse). A
subnormal ``a`` or ``a / g`` is clamped up to ``2^-6`` whether read as zero
or not; ``r`` is normal (``2^-125 < r <= 2^126``) and ``gs`` too
(``gs >= g * 2^-6 >= 2^-126``). Single level ``r <= 64``: a subnormal ``x``
gives ``|x * r| < 2^-120``, and any ``|x * r| < 2^-126`` rounds to a
signed zero in E2M1 either way, and ``|q * s| >= 2^-7``. Two level, with
``g >= 2^-118``: ``r <= 2^124``, so a subnormal ``x`` gives ``|x * r| <=
2^-2``, which rounds to zero (a tie to even), and ``|q * gs| >= 2^-125`` is
normal; smaller ``g`` takes the integer kernel.
"""

from __future__ import annotations

from typing import Any

from .. import _backend as B
from ..formats.nvfp4 import ELEMENT, MAX_VALUE, MIN_SCALE, NVFP4, SCALE, TENSOR_SCALE_MIN
from . import bitfields as I
from .blocking import Blocking, blocking_for
from .float_ops import block_maxima, ungroup
from .fp_quantum import cast_fp_quantum
from .guards import choose
from .paths import Ctx, Path, always

Array = Any

#: float32 bits of 2^-118: below it, XLA's flushing could change a two-level result
_XLA_SAFE_G_BITS = I.pow2_bits(-118)
_TENSOR_SCALE_MIN_BITS = I.pow2_bits(-120)
_E4M3_MAX = SCALE.max_value  # 448
_E2M1_MAX = ELEMENT.max_value  # 6


# ----------------------------------------------------------------------------- tensor scale
def tensor_scale(xp: Any, x: Array) -> Array:
    """The default two-level tensor scale of float32 ``x``: the 0-d float32
    ``g = fl32(amax / 2688)`` with ``amax`` the largest finite ``|x|`` over all
    of ``x`` (0 when none, an empty ``x`` included), raised to ``2^-120`` when smaller."""
    if B.size(x) == 0:
        return B.asarray_like(TENSOR_SCALE_MIN, x, "float32")
    mag = B.f32_to_i32(x) & I.MAG_MASK
    top = xp.max(xp.where(mag < I.INF_BITS, mag, xp.zeros_like(mag)))
    return _scale_from_amax(xp, top)


def _scale_from_amax(xp: Any, top: Array) -> Array:
    """``max(fl32(amax / 2688), 2^-120)`` from the int32 bits of a finite ``amax >= 0``."""
    a = B.i32_to_f32(top)
    # a run-time divisor (top < 0 never holds): XLA turns a division by a
    # constant into a product by its reciprocal. A subnormal amax (read as 0
    # by XLA) gives a quotient below 2^-120 either way
    den = xp.where(top < 0, xp.ones_like(a), xp.full_like(a, MAX_VALUE))
    g = a / den
    return xp.where(B.f32_to_i32(g) < _TENSOR_SCALE_MIN_BITS, xp.full_like(g, TENSOR_SCALE_MIN), g)


def _default_scale(xp: Any, x: Array, amax: Array, ctx: Ctx) -> Array:
    """The default ``g`` of ``x`` from its block maxima ``amax`` (bits): their
    largest finite value, unless a block holds NaN/Inf, whose finite elements
    then need a pass over ``x`` (skipped when no block does: eager by looking,
    JAX by a ``cond``; compiled PyTorch always makes that pass)."""
    finite = xp.where(amax < I.INF_BITS, amax, xp.zeros_like(amax))
    if ctx.compiled and ctx.ieee:  # torch.compile: no data-dependent branch in the graph
        return tensor_scale(xp, x)
    any_nan = xp.any(amax >= I.INF_BITS)
    return B.cond(any_nan, lambda v, f: tensor_scale(xp, v),
                  lambda v, f: _scale_from_amax(xp, xp.max(f)), x, finite)


def _per_block(xp: Any, g: Array, blocks: Blocking) -> Array:
    """A tensor scale (0-d, or broadcastable to ``x`` with extent 1 along the
    block axis) shaped to broadcast against per-block arrays ``pre + (nb, 1) + post``."""
    nd = len(blocks.shape)
    if g.ndim > nd:
        raise ValueError(f"the tensor scale has {g.ndim} dims, more than the input's {nd}")
    g = xp.reshape(g, (1,) * (nd - g.ndim) + tuple(g.shape))
    return xp.expand_dims(g, axis=blocks.axis + 1)


# ----------------------------------------------------------------------------- block scales
def e4m3_bits(xp: Any, c: Array) -> Array:
    """int32 bits of E4M3's RNE rounding of float32 ``c`` in ``[2^-6, 448]``
    (a normal value: keep 3 of float32's 23 fraction bits)."""
    bits = B.f32_to_i32(c)
    return (bits + (0x7FFFF + ((bits >> 20) & 1))) & ~0xFFFFF


def block_scales(xp: Any, amax: Array, g: Array | None, ctx: Ctx) -> tuple[Array, Array, Array]:
    """Per block ``(s, r, gs)`` as float32 from the int32 bits of the block
    maxima ``amax`` and the tensor scale ``g`` (per-block shaped; ``None``:
    single level), exactly on every backend; ``r`` is NaN for NaN blocks.

    Single level ``s = e4m3(clamp(fl32(amax / 6), 2^-6, 448))``, ``r = fl32(1 /
    s)``, ``gs = s``; two level ``s = e4m3(clamp(fl32(fl32(amax / 6) / g),
    2^-6, 448))``, ``r = fl32(fl32(1 / g) / s)``, ``gs = fl32(g * s)``.
    Under XLA the divisors are run-time values of the quotient's shape (a
    ``where`` on the data) and a rounding point separates two divisions, so
    that none becomes a reciprocal product; every operand and result that
    matters is normal (module docstring).
    """
    nan_block = amax >= I.INF_BITS
    a_max = B.i32_to_f32(xp.where(nan_block, xp.zeros_like(amax), amax))
    six = xp.where(nan_block, xp.ones_like(a_max), xp.full_like(a_max, _E2M1_MAX))
    c = a_max / six
    if g is not None:
        den = xp.where(nan_block, xp.ones_like(c), xp.broadcast_to(g, c.shape))
        c = B.rounding_point(c) / den
    c = xp.clip(c, MIN_SCALE, _E4M3_MAX)
    s = B.i32_to_f32(e4m3_bits(xp, c))
    if g is None:
        r, gs = 1.0 / s, s
    else:
        inv_g = B.rounding_point(1.0 / g)
        r, gs = inv_g / s, g * s
    r = xp.where(nan_block, xp.full_like(r, float("nan")), r)
    return s, r, gs


def _scales_of(xp: Any, x: Array, fmt: NVFP4, ctx: Ctx, scale: Array | None, default: bool = True):
    """``(blocks, amax, g)``: the blocking of ``x``, its block maxima (bits)
    and the per-block shaped tensor scale: ``scale``, else (with ``default``)
    the default one; ``None`` for single level."""
    if not ctx.ieee:
        # XLA: one reduction, stored once: measured 2.1x of x * 2 under jax.jit,
        # against 14x for the strided tree of Ctx.block_max
        blocks = blocking_for(x, fmt)
        (amax,) = B.materialize((blocks.reduce_max(xp, B.f32_to_i32(x) & I.MAG_MASK),))
    else:
        blocks, amax = block_maxima(xp, x, fmt, ctx)
    if not fmt.tensor_scale:
        return blocks, amax, None
    if scale is None and not default:
        return blocks, amax, None
    g = _default_scale(xp, x, amax, ctx) if scale is None else scale
    return blocks, amax, _per_block(xp, g, blocks)


# ----------------------------------------------------------------------------- float kernel
def cast_float(
    xp: Any, x: Array, fmt: NVFP4, words: Array | None, ctx: Ctx, scale: Array | None = None,
    parts: tuple | None = None, scales: tuple | None = None, clamp: bool = True,
) -> Array:
    """NVFP4 of float32 ``x`` by the format's own float operations (exact on
    IEEE backends; under XLA see the module docstring): ``q = e2m1(x * r)``
    (:func:`.fp_quantum.cast_fp_quantum`, which clamps to ``±6``), ``q * gs``.
    ``parts``: ``(blocks, amax, g)`` when already computed; ``scales``: ``(r, gs)`` too;
    ``clamp=False`` (XLA, the default tensor scale, no NaN block): ``|x * r| < 7``
    holds, so the clamp to ``±6`` may be left out (:func:`cast_guarded`)."""
    blocks, amax, g = _scales_of(xp, x, fmt, ctx, scale) if parts is None else parts
    if scales is None:
        _, r, gs = block_scales(xp, amax, g, ctx)
        if not ctx.ieee:
            r, gs = B.materialize((r, gs))  # per-block values stored once, not recomputed per element
    else:
        r, gs = scales
    grouped = blocks.group(xp, x, 0)
    if ctx.eager:
        return ungroup(xp, _elements_in_place(xp, grouped, r, gs), blocks)
    if not ctx.ieee:
        return ungroup(xp, _e2m1_xla(xp, grouped * r, clamp) * gs, blocks)
    q = cast_fp_quantum(xp, grouped * r, ELEMENT)
    return ungroup(xp, q * gs, blocks)


def _e2m1_xla(xp: Any, v: Array, clamp: bool) -> Array:
    """``e2m1(clamp(v, -6, 6))`` for XLA: :func:`.fp_quantum.cast_fp_quantum`'s
    steps (``E = max(floor(log2 |v|), 0)``, ``round(v * 2^(1 - E)) * 2^(E - 1)``)
    on the exponent field in place (no shifts: ``2^(1 - E)`` and ``2^(E - 1)``
    are one subtraction each from it), and without the clamp when ``clamp``
    is false: the caller guarantees ``|v| < 7`` (or NaN), which rounds to at
    most 6 (``E = 2``: ``round(v / 2) <= 3``). 11 operations per element
    with ``x * r`` and ``* gs``, against 16 for ``cast_fp_quantum``."""
    if clamp:
        v = xp.clip(v, -_E2M1_MAX, _E2M1_MAX)
    field = xp.maximum(B.f32_to_i32(v) & 0x7F800000, 127 << 23)  # the biased E, in place
    down = (255 << 23) - field  # bits of 2^(1 - E)
    up = field - (1 << 23)  # bits of 2^(E - 1)
    return xp.round(v * B.i32_to_f32(down)) * B.i32_to_f32(up)


def _elements_in_place(xp: Any, grouped: Array, r: Array, gs: Array) -> Array:
    """Eager NumPy/PyTorch: ``fl32(e2m1(clamp(fl32(x * r), -6, 6)) * gs)`` in
    two new arrays (a new array costs eager PyTorch more than the operation):
    :func:`.fp_quantum.cast_fp_quantum`'s steps with ``E = max(floor(log2 |v|),
    0)``, ``k = round(v * 2^(1 - E))``, ``q = k / 2^(1 - E)`` (exact), ``q * gs``.
    NaN (``r`` of a NaN block) stays NaN: its ``2^(1 - E)`` reads 0."""
    v = grouped * r
    xp.clip(v, -_E2M1_MAX, _E2M1_MAX, out=v)
    e = B.f32_to_i32(v) >> 23
    e &= 0xFF
    xp.maximum(e, 127, out=e)  # the biased E
    e -= 255
    e *= -1  # 255 - biased: the biased exponent of 2^(1 - E)
    e <<= 23
    down = B.i32_to_f32(e)
    v *= down
    xp.round(v, out=v)
    v /= down
    v *= gs
    return v


# ----------------------------------------------------------------------------- integer kernel
def scaled_product_bits(xp: Any, q_bits: Array, gs_bits: Array) -> Array:
    """int32 bits of ``fl32(q * gs)`` for E2M1 values ``q`` (float32 bits, any
    sign) and positive normal float32 ``gs`` (bits), on integers: ``q = k *
    2^eq`` with ``k`` 2 or 3, the product ``k * sig(gs)`` (below ``2^26``) is
    rounded to float32 once (RNE, subnormals on their own grid). Zeros keep
    ``q``'s sign. Powers of two are built from bits (no shift by an array:
    inductor scalarizes those)."""
    qp = I.split(xp, q_bits)
    gp = I.split(xp, gs_bits)
    prod = (qp.sig // (1 << 22)) * gp.sig
    e0 = qp.e + 22 + gp.e  # |q * gs| = prod * 2^e0
    fb = B.f32_to_i32(B.int_to_f32(prod))  # one RNE rounding to 24 bits (prod >= 1)
    new_exp = (fb >> 23) + e0
    normal = fb + (e0 << 23)
    normal = xp.where(new_exp >= 255, xp.full_like(normal, I.INF_BITS), normal)
    # subnormal result: prod * 2^e0 on the grid 2^-149, rounded from the exact product
    drop = -149 - e0
    unit = _int_pow2(xp, xp.clip(drop, 0, 27))
    k0 = prod // unit
    rem = prod - k0 * unit
    half = unit // 2
    up = (rem > half) | ((rem == half) & ((k0 & 1) == 1) & (half > 0))
    sub = xp.where(drop >= 0, k0 + xp.astype(up, k0.dtype), prod * _int_pow2(xp, xp.clip(-drop, 0, 23)))
    mag = xp.where(new_exp >= 1, normal, sub)
    mag = xp.where(prod == 0, xp.zeros_like(mag), mag)
    return I.with_sign(xp, mag, qp.neg)


def _int_pow2(xp: Any, n: Array) -> Array:
    """int32 ``2^n`` for int32 ``0 <= n <= 30``, through the float32 bits of ``2^n``."""
    return xp.astype(B.i32_to_f32((n + 127) << 23), n.dtype)


def element_bits(xp: Any, grouped: Array, r: Array) -> Array:
    """int32 bits of ``q = e2m1(clamp(fl32(x * r), -6, 6))`` for grouped float32
    ``x`` and per-block normal ``r``, exactly on every backend: ``|x| = u *
    2^lg`` with ``u`` in ``[1, 2)``; ``fl32(u * r)`` is a product of normal
    floats with a normal result, scaled by ``2^lg`` on the exponent field (a
    result below ``2^-126`` rounds to a signed zero in E2M1, one beyond
    float32 saturates); the E2M1 rounding on the bits (:func:`e2m1_magnitude_bits`)."""
    p = I.split(xp, B.f32_to_i32(grouped))
    # the fraction bits of float(sig) (exact, sig < 2^24) under the exponent of 1
    unit = (B.f32_to_i32(B.int_to_f32(p.sig)) & 0x7FFFFF) | 0x3F800000
    prod = B.f32_to_i32(B.i32_to_f32(unit) * r)
    new_exp = (prod >> 23) + p.lg
    v = prod + (p.lg << 23)
    v = xp.where(new_exp >= 255, xp.full_like(v, I.INF_BITS), v)
    v = xp.where((new_exp <= 0) | (p.sig == 0), xp.zeros_like(v), v)
    return I.with_sign(xp, e2m1_magnitude_bits(xp, v), p.neg)


def e2m1_magnitude_bits(xp: Any, v: Array) -> Array:
    """int32 bits of E2M1's saturating RNE rounding of float32 magnitudes ``v``
    (bits of a value ``>= 0``, +Inf included): from 1 up, keep one of float32's
    23 fraction bits (RNE on the bits), at most 6; below 1 the quantum is 1/2:
    ``<= 0.25`` gives 0, ``< 0.75`` gives 0.5, else 1 (0.25 and 0.75 are ties
    to the even multiple of 1/2)."""
    one = I.value_bits(1.0)
    up = (v + (0x1FFFFF + ((v >> 22) & 1))) & ~0x3FFFFF
    up = xp.minimum(up, xp.full_like(up, I.value_bits(6.0)))
    half = xp.where(v < I.value_bits(0.75), xp.full_like(v, I.value_bits(0.5)), xp.full_like(v, one))
    low = xp.where(v <= I.value_bits(0.25), xp.zeros_like(v), half)
    return xp.where(v >= one, up, low)


def integer_parts(xp: Any, x: Array, fmt: NVFP4, ctx: Ctx, scale: Array | None = None,
                  parts: tuple | None = None) -> tuple:
    """``(blocks, q_bits, s, gs, nan_block, g)`` of float32 ``x``, exactly on
    every backend: the grouped E2M1 values (int32 bits), the per-block scales
    and NaN flags and the tensor scale (``None`` for single level). Used by
    the integer kernel and the encoder."""
    blocks, amax, g = _scales_of(xp, x, fmt, ctx, scale) if parts is None else parts
    s, r, gs = block_scales(xp, amax, g, ctx)
    nan_block = amax >= I.INF_BITS
    r = xp.where(nan_block, xp.ones_like(r), r)
    q = element_bits(xp, blocks.group(xp, x, 0), r)
    return blocks, q, s, gs, nan_block, g


def cast_integer(xp: Any, x: Array, fmt: NVFP4, words: Array | None, ctx: Ctx, scale: Array | None = None,
                 parts: tuple | None = None) -> Array:
    """NVFP4 of float32 ``x``, exact on every backend: :func:`integer_parts`,
    then ``fl32(q * gs)`` by :func:`scaled_product_bits`; NaN blocks NaN."""
    blocks, q, _, gs, nan_block, _ = integer_parts(xp, x, fmt, ctx, scale, parts)
    out = scaled_product_bits(xp, q, xp.broadcast_to(B.f32_to_i32(gs), q.shape))
    out = xp.where(nan_block, xp.full_like(out, I.QNAN_BITS), out)
    return ungroup(xp, B.i32_to_f32(out), blocks)


def cast_guarded(xp: Any, x: Array, fmt: NVFP4, words: Array | None, ctx: Ctx, scale: Array | None = None) -> Array:
    """XLA, two level: :func:`cast_float` when every tensor scale is at least
    ``2^-118`` (module docstring), else :func:`cast_integer`. The default
    ``g`` comes from the largest block maximum (one small reduction: when it
    is below +Inf's bits, no block is NaN and it is the largest finite
    ``|x|``); one ``cond`` takes the float kernel when no block is NaN and that
    ``g`` is safe, else (rare) computes ``g`` over every finite element and
    chooses again (one ``cond`` instead of two in the common case: measured
    2.0x of ``x * 2`` against 2.6x). The per-block ``r`` and ``gs`` enter the
    ``cond`` as operands, which stores them once (XLA fused them, through
    :func:`.._backend.materialize`'s barrier, into every element), and with
    the default ``g`` the float kernel leaves out the clamp of ``x * r`` to
    ``±6``: then ``c = fl32(fl32(amax / 6) / g)`` is at most ``448 (1 + 2^-22)``,
    so ``|x * r| <= 6 c / s`` is below ``6 (1 + 2^-4) (1 + 2^-20) < 7`` (E4M3's
    rounding of ``c`` loses at most a factor ``1 + 2^-4``), which E2M1 rounds to
    at most 6 (measured 3-12% less time than before, paired)."""
    blocks, amax, g = _scales_of(xp, x, fmt, ctx, scale, default=False)

    def fast(v: Array, a: Array, t: Array, r: Array, gs: Array, clamp: bool = True) -> Array:
        return cast_float(xp, v, fmt, None, ctx, parts=(blocks, a, t), scales=(r, gs), clamp=clamp)

    def fast_default(v: Array, a: Array, t: Array, r: Array, gs: Array) -> Array:
        return fast(v, a, t, r, gs, clamp=False)

    def exact(v: Array, a: Array, t: Array, r: Array, gs: Array) -> Array:
        return cast_integer(xp, v, fmt, None, ctx, parts=(blocks, a, t))

    def run(pred: Array, first: Any, slow: Any, t: Array) -> Array:
        # the per-block r and gs are computed here and enter the branches as
        # operands: a branch is a computation of its own, so XLA cannot fuse
        # (recompute) them into every element of the cast, which it did
        # through the optimization barrier of B.materialize (measured ~10
        # more operations per element)
        _, r, gs = block_scales(xp, amax, t, ctx)
        return choose(pred, first, slow, x, amax, t, r, gs)

    if g is not None:  # a static scale
        return run(B.f32_to_i32(g) >= _XLA_SAFE_G_BITS, fast, exact, g)
    # one reduction over the block maxima: below +Inf's bits, no block is NaN
    # and it is the largest finite |x| (a finite-masked maximum and an ``any``
    # were two more passes over the block maxima)
    top = xp.max(amax)
    g = _per_block(xp, _scale_from_amax(xp, xp.minimum(top, I.INF_BITS - 1)), blocks)
    safe = (B.f32_to_i32(g) >= _XLA_SAFE_G_BITS) & (top < I.INF_BITS)

    def slow(v: Array, a: Array, t: Array, r: Array, gs: Array) -> Array:
        t = _per_block(xp, tensor_scale(xp, v), blocks)
        _, r, gs = block_scales(xp, a, t, ctx)
        return choose(B.f32_to_i32(t) >= _XLA_SAFE_G_BITS, fast, exact, v, a, t, r, gs)

    return run(safe, fast_default, slow, g)


def _float_applies(fmt: NVFP4, ctx: Ctx) -> str | None:
    if ctx.ieee or not fmt.tensor_scale:
        return None
    return "XLA, two level: a tensor scale below 2^-118 needs the guarded path"


def _guarded_applies(fmt: NVFP4, ctx: Ctx) -> str | None:
    if ctx.ieee:
        return "a guard for XLA's float arithmetic; IEEE backends take the unguarded path"
    if not fmt.tensor_scale:
        return "single level: the float kernel is exact under XLA unguarded"
    return None


PATHS = (
    Path("nvfp4.float", "NumPy and PyTorch (eager and compiled), and JAX for single level: the format's own "
         "float operations", _float_applies, cast_float),
    Path("nvfp4.float|integer", "JAX, two level: the float kernel when every tensor scale g is at least "
         "2^-118, else the integer kernel", _guarded_applies, cast_guarded),
    Path("nvfp4.integer", "always (float block scales exact on every backend, integer element steps)",
         always, cast_integer),
)
