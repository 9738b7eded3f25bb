"""Fast paths: FP on the bit pattern, float paths for XP and blocked formats.

NumPy, eager PyTorch and inductor on CPU honour IEEE subnormals, so
multiplying by a power of two is exact whenever the product is
representable, and ``round``/``trunc``/``floor`` are exact. A cast is then a
handful of whole-array float operations: ``k = round(x * 2^-qe)`` (or the
exact stochastic decision of :func:`_round`), range handling on ``k``,
``k * 2^qe``. A product ``x * 2^-qe`` can only be inexact when it is far
below 0.5 (a subnormal), where rounding gives a signed zero either way. XLA
on CPU reads subnormals as zero, so JAX paths also require quanta of at
least ``2^-124`` (:func:`_jax_path`). FP formats go through
:mod:`.fp_bits`. Each path states when it applies (:func:`fast_path`);
everything else takes the integer pipeline. Tests prove every path against
the reference.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import numpy as np

from .. import _backend as B
from ..formats.block import BlockFloatingPoint, MXInt
from ..formats.fixed import FixedPoint
from ..formats.floating import FloatingPoint
from ..formats.mx import MXFloat
from ..formats.scaled import ScaledBFP
from . import bits as I
from . import fp_bits, fp_quantum
from .blocks import blocking_for

Array = Any


def fast_path(x: Array, fmt: Any) -> Callable[[Any, Array], Array | None] | None:
    """The float fast path for ``fmt`` on ``x``, or ``None`` when it does not apply.

    A returned path may still decline (return ``None``) after looking at the
    data (eager only), e.g. when subnormal inputs meet a format whose smallest
    normal lies below float32's.
    """
    name = B.backend_name(x)
    if _is_eager(x) and fp_quantum.applies(fmt) and native_dtype(fmt, name) is None:
        return lambda xp, v, w=None: fp_quantum.cast_fp_quantum(xp, v, fmt)
    if fp_bits.applies(fmt, name) and (name == "jax" or B.is_tracing(x) or native_dtype(fmt, name) is None):
        return lambda xp, v, w=None: fp_bits.cast_fp_bits(xp, v, fmt, w)
    if isinstance(fmt, ScaledBFP):
        return _sbfp_path(fmt, name)
    if name == "jax":
        return _jax_path(fmt)
    if B.is_tracing(x):
        return _compiled_path(fmt)
    if isinstance(fmt, MXInt):
        fmt = fmt.as_bfp
    rounding = getattr(fmt, "rounding", "N")
    if rounding not in ("N", "Z") and not (rounding == "S" and isinstance(fmt, STOCHASTIC_FAST)):
        return None
    native = native_dtype(fmt, name)
    if native is not None:
        return lambda xp, v, w=None: _convert_through(xp, v, fmt, native)
    if isinstance(fmt, MXFloat) and native_dtype(fmt.element, name) is not None:
        return lambda xp, v, w=None: _mxfp_native(xp, v, fmt, native_dtype(fmt.element, name))
    if isinstance(fmt, MXFloat) and fp_quantum.applies(fmt.element):
        return lambda xp, v, w=None: _mxfp_eager(xp, v, fmt)
    if isinstance(fmt, FixedPoint):
        return lambda xp, v, w=None: _fixed(xp, v, fmt, w)
    if isinstance(fmt, BlockFloatingPoint):
        return lambda xp, v, w=None: _bfp(xp, v, fmt, words=w)
    if isinstance(fmt, MXFloat):
        return lambda xp, v, w=None: _mxfp(xp, v, fmt)
    return None


def _sbfp_path(fmt: ScaledBFP, backend: str) -> Callable[..., Array]:
    """SBFP by float operations (:mod:`.scaled_fast`): as is on IEEE
    backends, behind a run-time guard on JAX."""
    from . import scaled_fast

    if backend == "jax":
        return takes_raw_words(lambda xp, v, w=None: scaled_fast.jax_sbfp(xp, v, fmt, w))
    return lambda xp, v, w=None: scaled_fast.cast_sbfp_fast(xp, v, fmt, w)


def takes_raw_words(path: Callable[..., Array]) -> Callable[..., Array]:
    """Mark a JAX path that passes the words through ``lax.cond`` and converts
    them in each branch (:func:`.._backend.as_top24`)."""
    path.takes_raw_words = True  # type: ignore[attr-defined]
    return path


#: families whose eager float paths also do stochastic rounding
STOCHASTIC_FAST = (FixedPoint, BlockFloatingPoint)


def _compiled_path(fmt: Any) -> Callable[[Any, Array], Array | None] | None:
    """Paths valid under ``torch.compile`` (inductor on CPU keeps IEEE products,
    subnormals and ``round``, but drops float16/bfloat16 round trips, so no
    native-dtype path), without data-dependent branches."""
    if isinstance(fmt, MXInt):
        fmt = fmt.as_bfp
    rounding = getattr(fmt, "rounding", "N")
    if rounding not in ("N", "Z") and not (rounding == "S" and isinstance(fmt, STOCHASTIC_FAST)):
        return None
    if isinstance(fmt, FixedPoint):
        return lambda xp, v, w=None: _fixed(xp, v, fmt, w)
    if isinstance(fmt, BlockFloatingPoint):
        return lambda xp, v, w=None: _bfp(xp, v, fmt, words=w)
    if isinstance(fmt, MXFloat):
        return lambda xp, v, w=None: _mxfp(xp, v, fmt)
    return None


def _jax_path(fmt: Any) -> Callable[[Any, Array], Array] | None:
    """Float paths that stay exact under XLA on CPU, where float32 subnormal
    operands read as zero and subnormal results flush to zero.

    They apply when every quantum is at least ``2^-124``: then any subnormal
    input or product is below half a quantum and rounds (N or Z) to a signed
    zero anyway, and every nonzero result ``k * 2^qe`` is normal; products by
    powers of two are exact, and no addition follows a product (no FMA).
    Stochastic XP and BFP redo subnormal elements on integers
    (:func:`_jax_subnormal_stochastic`). XP decides this from the format;
    blocked formats check every block's quantum at run time (``lax.cond``)
    and otherwise take the integer pipeline.
    """
    if isinstance(fmt, MXInt):
        fmt = fmt.as_bfp
    rounding = getattr(fmt, "rounding", "N")
    if rounding not in ("N", "Z") and not (rounding == "S" and isinstance(fmt, STOCHASTIC_FAST)):
        return None
    if isinstance(fmt, FixedPoint):
        lowest = -126 if rounding == "S" else -(2**31)  # S: the constant-product branch of _fixed
        return (lambda xp, v, w=None: _fixed(xp, v, fmt, w)) if lowest <= fmt.frac <= 124 else None
    if isinstance(fmt, BlockFloatingPoint):
        stochastic = rounding == "S"
        return takes_raw_words(lambda xp, v, w=None: _jax_guarded(
            xp, v, w, fmt, functools.partial(bfp_jax_safe, fmt),
            lambda v, a, w: _bfp(xp, v, fmt, amax=a, words=B.as_top24(w), normal_products=True),
            lowest=stochastic,
        ))
    if isinstance(fmt, MXFloat):
        el = fmt.element

        def safe_mx(amax: Array) -> Array:
            import jax.numpy as jnp

            shared = jnp.maximum((amax >> 23) - 127 - fmt.element_emax, -127)
            return (el.emin + shared - el.man_bits >= -124) | (amax == 0) | (amax >= 0x7F800000)

        return lambda xp, v, w=None: _jax_guarded(xp, v, w, fmt, safe_mx, lambda v, a, w: _mxfp_quantum(xp, v, fmt, amax=a))
    return None


def bfp_jax_safe(fmt: BlockFloatingPoint, amax: Array, low: Array | None = None) -> Array:
    """Per block: whether JAX's BFP float path is exact there. The quantum
    ``2^qe`` must be at least ``2^-124``; for ``S`` also every nonzero
    element normal with ``x * 2^-min(shared, 126)`` normal (``low``: the
    block's smallest exponent field, :func:`jax_block_max_and_lowest`), so that
    nothing is read as zero or underflows."""
    import jax.numpy as jnp

    shared = xp_clip_shared(amax)
    ok = shared - (fmt.man_bits - 2) >= -124
    if fmt.rounding == "S":
        ok = ok & (low >= 1) & (low - 127 - jnp.minimum(shared, 126) >= -126)
    return ok | (amax == 0) | (amax >= 0x7F800000)


def xp_clip_shared(amax: Array) -> Array:
    """BFP shared exponent ``clamp(floor(log2 amax), -127, 127)`` from amax bits
    (a subnormal amax has ``floor(log2) <= -127``)."""
    import jax.numpy as jnp

    return jnp.clip((amax >> 23) - 127, -127, 127)


def _jax_guarded(
    xp: Any, x: Array, words: Array | None, fmt: Any, safe: Callable[..., Array], fast: Callable[..., Array],
    lowest: bool = False,
) -> Array:
    """``fast(x, amax, words)`` when ``safe(amax)`` (with ``lowest``:
    ``safe(amax, low)``, see :func:`jax_block_max_and_lowest`) holds for every
    block, else the integer pipeline (one ``lax.cond`` per array)."""
    import jax

    from .dispatch import integer_path

    if lowest:
        blocks = blocking_for(x, fmt)
        amax, low = jax_block_max_and_lowest(xp, x, blocks)
        ok = safe(amax, low)
    else:
        blocks, amax = _block_exponents(xp, x, fmt)
        ok = safe(amax)
    slow = lambda v, a, w: integer_path(xp, v, fmt, w)  # noqa: E731
    return jax.lax.cond(xp.all(ok), fast, slow, x, amax, words)


def jax_block_max_and_lowest(xp: Any, x: Array, blocks: Any) -> tuple[Array, Array]:
    """Per block (JAX): the largest magnitude (int32 bits) and the smallest
    exponent field of a nonzero element (0: a subnormal; 255: none), in one
    variadic ``lax.reduce``: a single pass over ``x``, measured 1.0x of
    ``x * 2`` against 2.3x for a strided tree plus a second reduction."""
    import jax
    import jax.numpy as jnp

    mag = B.f32_to_i32(x) & I.MAG_MASK
    inverted = xp.where(mag == 0, xp.zeros_like(mag), 255 - (mag >> 23))
    axis = blocks.axis + 1
    zero = jnp.int32(0)
    top, low_inverted = jax.lax.reduce(
        (blocks.group(xp, mag, 0), blocks.group(xp, inverted, 0)), (zero, zero),
        lambda a, b: (jnp.maximum(a[0], b[0]), jnp.maximum(a[1], b[1])), (axis,),
    )
    return xp.expand_dims(top, axis=axis), 255 - xp.expand_dims(low_inverted, axis=axis)


# ----------------------------------------------------------------------------- native dtypes
# (signed, e, m, bias) -> (dtype name, IEEE overflow to Inf on NumPy/ml_dtypes, ... on torch)
_NATIVE = {
    (5, 10, 15): ("float16", True, True),
    (8, 7, 127): ("bfloat16", True, True),
    (4, 3, 7): ("float8_e4m3fn", False, False),
    (5, 2, 15): ("float8_e5m2", True, False),
    (3, 2, 3): ("float6_e3m2fn", False, None),
    (2, 3, 1): ("float6_e2m3fn", False, None),
    (2, 1, 1): ("float4_e2m1fn", False, None),
}


def native_dtype(fmt: Any, backend: str) -> Any:
    """A backend dtype whose RNE conversion equals ``fmt`` (after clamping to
    ``±fmt.max_value`` for saturating schemes), or ``None``.

    Conversions are exact IEEE round-to-nearest-even on these grids
    (ml_dtypes on NumPy; PyTorch's own float16/bfloat16/float8 casts). Scheme
    I needs the dtype's own overflow to Inf, which PyTorch's float8_e5m2 cast
    lacks; OCP ``fn`` types have no Inf, so they serve saturating schemes
    only. Tests prove every use against the reference.
    """
    if not isinstance(fmt, FloatingPoint) or fmt.rounding != "N" or fmt.flush or not fmt.signed:
        return None
    entry = _NATIVE.get((fmt.exp_bits, fmt.man_bits, fmt.bias))
    if entry is None:
        return None
    name, ieee_np, ieee_torch = entry
    if fmt.scheme == "I" and not (ieee_np if backend == "numpy" else ieee_torch):
        return None
    if fmt.scheme == "E" and name != "float8_e4m3fn":
        return None
    if name == "float8_e4m3fn" and fmt.scheme in ("I", "A"):
        return None
    if backend == "numpy":
        import ml_dtypes

        return np.dtype(name) if name == "float16" else np.dtype(getattr(ml_dtypes, name))
    if ieee_torch is None:
        return None
    import torch

    return getattr(torch, name)


def _convert_through(xp: Any, x: Array, fmt: FloatingPoint, dtype: Any) -> Array:
    """``fmt(x)`` as a round trip through a native dtype (clamped first unless IEEE)."""
    v = x if fmt.scheme == "I" else xp.clip(x, -fmt.max_value, fmt.max_value)
    y = _round_trip(v, dtype)
    if fmt.scheme == "A" and bool(xp.any(xp.isnan(x))):
        y = xp.where(xp.isnan(x), x, y)  # ml_dtypes turns NaN into -0 for FP6/FP4
    return y


def _round_trip(v: Array, dtype: Any) -> Array:
    if B.backend_name(v) == "torch":
        import torch

        return v.to(dtype).to(torch.float32)
    return v.astype(dtype).astype(np.float32)


def _mxfp_native(xp: Any, x: Array, fmt: MXFloat, dtype: Any) -> Array:
    """MXFP with the element cast as a native-dtype round trip: ``x * 2^-E`` is
    exact unless it is a subnormal far below the element's smallest value,
    where the element cast gives a signed zero either way."""
    el = fmt.element
    blocks, amax = _block_exponents(xp, x, fmt)
    shared = xp.maximum((amax >> 23) - 127 - fmt.element_emax, xp.full_like(amax, -127))
    shared = xp.where(amax == 0, xp.zeros_like(shared), shared)
    grouped = blocks.group(xp, x, 0)
    scaled = xp.clip(grouped * _pow2(xp, -shared), -el.max_value, el.max_value)
    y = _round_trip(scaled, dtype) * _pow2(xp, shared)
    nan_block = amax >= 0x7F800000
    if bool(xp.any(nan_block)):
        y = xp.where(nan_block, xp.full_like(y, float("nan")), y)
    return _ungroup(xp, y, blocks)


# ----------------------------------------------------------------------------- helpers
def _pow2(xp: Any, e: Array) -> Array:
    """float32 ``2^e`` for integer arrays ``-149 <= e <= 127``: a normal power
    built from bits, times a second one for ``e < -126`` (an exact subnormal
    on IEEE backends; XLA flushes it, as it would read a subnormal constant as
    zero). Only ``<<`` by a Python constant: inductor scalarizes a shift by a
    tensor, which made stochastic BFP 50x slower under torch.compile."""
    normal = xp.clip(e, -126, 127)
    below = e - normal  # -23 .. 0
    return B.i32_to_f32((normal + 127) << 23) * B.i32_to_f32((below + 127) << 23)


def _round(xp: Any, y: Array, rounding: str, words: Array | None = None, x: Array | None = None) -> Array:
    """Round ``t = y`` (``x * 2^-qe``) to an integer-valued float by the letter
    ``N``, ``Z`` or ``S`` (see :func:`round_magnitude`; given ``x``, a ``t``
    that underflowed to 0 from a nonzero ``x`` rounds up iff ``w == 0`` and
    ``x > 0``)."""
    if rounding == "N":
        return xp.round(y)
    if rounding == "Z":
        return xp.trunc(y)
    a = xp.abs(y)
    return xp.copysign(round_magnitude(xp, a, rounding, words, y < 0, x), y)


def round_magnitude(
    xp: Any, a: Array, rounding: str, words: Array | None = None, neg: Array | None = None,
    x: Array | None = None,
) -> Array:
    """The magnitude of ``t`` rounded by the letter ``N``, ``Z`` or ``S``, from
    ``a = |t|`` and (for ``S``) the boolean ``neg = t < 0``.

    ``S`` (IEEE backends; XLA where ``t`` is normal or zero): with
    ``f = a - floor(a)`` (exact) and ``u = w * 2^-24``, a positive ``t``
    rounds up iff ``f > u`` (given ``x``, where ``t = x * 2^-qe`` may have
    underflowed to 0: also iff ``w == 0`` and ``a == 0 < x``); a negative one
    rounds its magnitude up iff ``f >= 1 - u`` (which implies ``f > 0``). An
    infinite ``t`` is not rounded up (callers clamp it; compiled, ``a`` is
    capped at ``2^24``, above every integer range). Eager, the tests are
    comparisons combined by boolean algebra (``where`` on booleans is 20
    times slower in eager PyTorch); compiled, each is the sign of one IEEE
    subtraction (``fl(b - c)`` has the sign of ``b - c`` and is zero only
    when ``b == c``) read by ``ceil`` on a value in ``(-1, 1]``: boolean
    arithmetic made inductor's kernels up to 15 times slower.
    """
    if rounding == "N":
        return xp.round(a)
    if rounding == "Z":
        return xp.floor(a)
    eager = _is_eager(a)
    if not eager:
        a = xp.minimum(a, xp.full_like(a, 2.0**24))
    k0 = xp.floor(a)
    f = a - k0  # eager: NaN for an infinite t, which then does not round up
    u = xp.astype(words, a.dtype) * (2.0**-24)
    if eager:
        up_pos = f > u
        if x is not None:
            zero_word = words == 0  # rare: look at the rest only when some word is 0
            if bool(xp.any(zero_word)):
                up_pos = up_pos | (zero_word & (a == 0) & (x > 0))
        up = xp.astype(up_pos ^ (neg & ((f >= 1.0 - u) ^ up_pos)), a.dtype)  # neg ? (f >= 1 - u) : up_pos
    else:
        up_pos = xp.ceil(f - u)  # 1 iff f > u, else 0 or -0
        up_neg = 1.0 - xp.ceil((1.0 - u) - f)  # 1 iff f >= 1 - u
        up = xp.where(neg, up_neg, up_pos)
        if x is not None:
            up = xp.where((words == 0) & (a == 0) & (x > 0), xp.ones_like(up), up)
    return k0 + up


def _scale(xp: Any, v: Array, c: Array, two_step: bool | None = None) -> Array:
    """``v * 2^c`` for integer ``c`` in ``-149 .. 276``, as exact as float products allow.

    ``two_step=None`` looks at ``c`` (eager only) to skip the second product."""
    c1 = xp.clip(c, -126, 127)  # a normal multiplier (XLA reads subnormal operands as 0)
    out = v * _pow2(xp, c1)
    rest = c - c1
    if two_step or (two_step is None and bool(xp.any(rest != 0))):
        out = out * _pow2(xp, xp.clip(rest, -149, 127))
    return out


# ----------------------------------------------------------------------------- XP
def _fixed(xp: Any, x: Array, fmt: FixedPoint, words: Array | None = None) -> Array:
    f = fmt.frac
    if -126 <= f <= 126:  # 2^f and 2^-f are normal: constant scalar products
        # f >= 0: x * 2^f is 0 only for x = 0, no underflow to look after
        k = _round(xp, x * (2.0**f), fmt.rounding, words, x if f < 0 else None)
        if words is not None and B.backend_name(x) == "jax":
            k = _jax_subnormal_stochastic(xp, x, k, xp.full_like(words, -f), words)
        down = 2.0**-f
    else:
        c = xp.full(x.shape, f, dtype=xp.int32, **_device(x))
        k = _round(xp, _scale(xp, x, c, two_step=not -149 <= f <= 127), fmt.rounding, words, x)
        down = _pow2(xp, -c)
    if fmt.clamp:
        return xp.clip(k, float(fmt.k_min), float(fmt.k_max)) * down
    r = k * down
    if 24 - f <= 127:
        r = xp.where(xp.abs(x) >= 2.0 ** (24 - f), x, r)  # multiples of 2^-f already
    return r


# ----------------------------------------------------------------------------- blocks
def _block_exponents(xp: Any, x: Array, fmt: Any, amax: Array | None = None):
    """The blocking of ``x`` and each block's largest magnitude as int32 bits
    (NaN blocks: above ``0x7F800000``)."""
    blocks = blocking_for(x, fmt)
    if amax is None:
        if B.backend_name(x) == "torch" and B.is_tracing(x) and blocks.axis == x.ndim - 1:
            # along the last axis inductor vectorizes a float max reduction but
            # not one over bit-cast values (measured 1.3x against 6.9x of x * 2
            # for blocks of 32); |x| keeps the order of magnitudes, NaN propagates
            fmax = blocks.reduce_max(xp, xp.abs(x))
            bits = B.f32_to_i32(fmax)
            amax = xp.where(xp.isnan(fmax), xp.full_like(bits, I.QNAN_BITS), bits)
        else:
            amax = blocks.reduce_max(xp, B.f32_to_i32(x) & 0x7FFFFFFF, tree=True)
    return blocks, amax


def _bfp(
    xp: Any, x: Array, fmt: BlockFloatingPoint, amax: Array | None = None,
    words: Array | None = None, normal_products: bool = False,
) -> Array:
    """BFP by float operations; ``normal_products``: the caller has checked
    that every nonzero ``x * 2^-min(shared, 126)`` is a normal float (JAX's
    stochastic guard), so nothing underflowed or was read as zero."""
    blocks, amax = _block_exponents(xp, x, fmt, amax)
    ex = amax >> 23
    shared = xp.clip(ex - 127, -127, 127)  # subnormal amax: floor(log2) <= -127
    qe = shared - (fmt.man_bits - 2)
    nan_block = amax >= 0x7F800000
    grouped = blocks.group(xp, x, 0)
    gw = None if words is None else blocks.group(xp, words, 0)
    if _is_eager(x) and bool(xp.all((qe >= -127) & (qe <= 126) | (amax == 0))):
        # eager, every 2^-qe normal: t = x * 2^-qe in one product (a zero
        # block uses qe = 0). Inexact only where t is a subnormal, far below
        # 1/2; t is 0 for a nonzero x only where x * 2^-qe <= 2^-150 (a tie
        # goes to 0), which needs qe >= 1.
        t = grouped * B.i32_to_f32((127 - xp.where(amax == 0, xp.zeros_like(qe), qe)) << 23)
        underflow = not normal_products and bool(xp.any((qe > 0) & ~nan_block))
        k = _round(xp, t, fmt.rounding, gw, grouped if underflow else None)
    else:
        # t = x * 2^-qe as (x * 2^-min(shared, 126)) * 2^(m-2) (halved for
        # shared = 127): one normal per-block power, cheap for inductor to
        # recompute at each use of t. The first product is inexact only below
        # 2^-126, where t < 2^-100 rounds the same way whatever its value
        # (zero, or w == 0 for S, see _round).
        up_scale = float(2 ** (fmt.man_bits - 2))
        scaled = grouped * B.i32_to_f32((127 - xp.minimum(shared, xp.full_like(shared, 126))) << 23)
        top = up_scale - (up_scale / 2) * xp.astype(shared == 127, scaled.dtype)  # per block
        k = _round(xp, scaled * top, fmt.rounding, gw, None if normal_products else grouped)
    if gw is not None and B.backend_name(x) == "jax" and not normal_products:
        k = _jax_subnormal_stochastic(xp, grouped, k, qe, gw)
    k = xp.clip(k, float(fmt.k_min), float(fmt.k_max))
    r = k * _pow2(xp, qe)
    if not (_is_eager(x) and not bool(xp.any(nan_block))):
        r = xp.where(nan_block, xp.full_like(r, float("nan")), r)
    return _ungroup(xp, r, blocks)


def _jax_subnormal_stochastic(xp: Any, x: Array, k: Array, qe: Array, words: Array) -> Array:
    """``k`` with the stochastic rounding of float32 subnormal ``x`` redone on
    integers (XLA on CPU reads them as zero). With ``qe >= -124``,
    ``t = mag * 2^(-149 - qe) < 1/4``: ``F = floor(t * 2^24)`` is
    ``mag >> (qe + 125)``, ``sticky`` the bits shifted out; ``x > 0`` rounds up
    iff ``t > w * 2^-24``, ``x < 0`` iff ``t >= 1 - w * 2^-24``."""
    bits = B.f32_to_i32(x)
    mag = bits & I.MAG_MASK
    shift = xp.clip(qe + 125, 1, 31)
    frac = mag >> shift
    sticky = (mag & ((xp.ones_like(shift) << shift) - 1)) != 0
    neg = bits < 0
    up = (neg & (frac >= (1 << 24) - words)) | (~neg & ((frac > words) | ((frac == words) & sticky)))
    k_sub = xp.astype(up, k.dtype)
    k_sub = xp.where(neg, -k_sub, k_sub)
    return xp.where(mag < 0x00800000, k_sub, k)


def _mxfp(xp: Any, x: Array, fmt: MXFloat) -> Array:
    """MXFP on IEEE backends: ``y = x * 2^-E`` per block, the element cast of ``y``
    on the bit pattern (:mod:`.fp_bits`), then ``* 2^E``.

    ``2^-E`` is a normal float (``-127 <= E <= 127 - emax``), so ``y`` is exact
    unless it is a subnormal, far below half the element's smallest quantum,
    where it rounds to a signed zero either way; ``element(y) * 2^E`` is exact
    because its quantum ``2^(E + emin - m)`` is at least ``2^-149``.
    """
    el = fmt.element
    blocks, amax = _block_exponents(xp, x, fmt)
    shared = xp.maximum((amax >> 23) - 127 - fmt.element_emax, xp.full_like(amax, -127))
    grouped = blocks.group(xp, x, 0)
    scaled = grouped * _pow2(xp, -shared)
    if _is_eager(x) and fp_quantum.applies(el):
        y = fp_quantum.cast_fp_quantum(xp, scaled, el)
    else:
        y = fp_bits.cast_fp_bits(xp, scaled, el)
    r = y * _pow2(xp, shared)
    nan_block = amax >= 0x7F800000
    if not (_is_eager(x) and not bool(xp.any(nan_block))):
        r = xp.where(nan_block, xp.full_like(r, float("nan")), r)
    return _ungroup(xp, r, blocks)


def _mxfp_quantum(xp: Any, x: Array, fmt: MXFloat, amax: Array | None = None,
                  lowest_quantum: int | None = None) -> Array | None:
    """MXFP as one pass of float operations: :mod:`.fp_quantum` with the block
    scale folded in. With ``S`` the shared exponent (0 for an all-zero
    block), ``v = clip(x, ±max * 2^S)``, ``E = max(floor(log2 |v|), emin + S)``:
    the result is ``round(v * 2^(m - E)) * 2^(E - m)``, which is
    ``element(x * 2^-S) * 2^S`` (the scalings by ``2^S`` are exact, the
    element cast is fp_quantum's). Needs every nonzero block's quantum
    ``2^(emin + S - m)`` to be at least ``2^-126`` (then both powers are
    normal; XLA: ``2^-124``, so that the subnormals it reads as zero round to
    zero anyway); given ``lowest_quantum`` (eager), returns ``None`` when a
    block falls below it.
    """
    el = fmt.element
    m = el.man_bits
    blocks, amax = _block_exponents(xp, x, fmt, amax)
    shared = xp.maximum((amax >> 23) - 127 - fmt.element_emax, xp.full_like(amax, -127))
    shared = xp.where(amax == 0, xp.zeros_like(shared), shared)
    if lowest_quantum is not None and not bool(xp.all(shared + (el.emin - m) >= lowest_quantum)):
        return None
    grouped = blocks.group(xp, x, 0)
    bound = el.max_value * _pow2(xp, shared)  # per block
    v = xp.minimum(xp.maximum(grouped, -bound), bound)
    biased = xp.maximum((B.f32_to_i32(v) >> 23) & 0xFF, shared + (el.emin + 127))
    down = B.i32_to_f32((254 + m - biased) << 23)  # 2^(m - E)
    up = B.i32_to_f32((biased - m) << 23)  # 2^(E - m)
    r = xp.round(v * down) * up
    nan_block = amax >= 0x7F800000
    if not (_is_eager(x) and not bool(xp.any(nan_block))):
        r = xp.where(nan_block, xp.full_like(r, float("nan")), r)
    return _ungroup(xp, r, blocks)


def _mxfp_eager(xp: Any, x: Array, fmt: MXFloat) -> Array:
    """Eager MXFP: the one-pass form where every block's quantum is normal,
    else the element cast on the scaled values."""
    out = _mxfp_quantum(xp, x, fmt, lowest_quantum=-126)
    return _mxfp(xp, x, fmt) if out is None else out


def _is_eager(x: Array) -> bool:
    """NumPy or PyTorch outside tracing: data-dependent shortcuts are allowed."""
    return B.backend_name(x) in ("numpy", "torch") and not B.is_tracing(x)


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
