"""Float building blocks of the float paths (IEEE backends, and XLA where guarded).

NumPy, eager PyTorch and inductor on CPU honour IEEE subnormals, so a
product by a power of two is exact whenever the result is representable,
and ``round``/``trunc``/``floor`` are exact. A cast is then a handful of
whole-array float operations: ``k = round(x * 2^-qe)`` (or the exact
stochastic decision of :func:`round_magnitude`), range handling on ``k``,
``k * 2^qe``. A product ``x * 2^-qe`` is inexact only when it is a
subnormal far below 1/2, where rounding gives a signed zero either way.
XLA on CPU reads subnormals as zero: the guards of :mod:`.guards` decide
where these helpers are exact there.
"""

from __future__ import annotations

from typing import Any

from .. import _backend as B
from . import bitfields as I
from .blocking import Blocking, blocking_for
from .paths import Ctx

Array = Any


def pow2(xp: Any, e: Array) -> Array:
    """float32 ``2^e`` for integer arrays ``-149 <= e <= 127``: a normal power
    built from bits, times a second one for ``e < -126`` (an exact subnormal
    on IEEE backends; XLA flushes it, as it would read a subnormal constant as
    zero). Only ``<<`` by a Python constant: inductor scalarizes a shift by a
    tensor, which made stochastic BFP 50x slower under torch.compile."""
    normal = xp.clip(e, -126, 127)
    below = e - normal  # -23 .. 0
    return B.i32_to_f32((normal + 127) << 23) * B.i32_to_f32((below + 127) << 23)


def round_to_integer(
    xp: Any, y: Array, rounding: str, ctx: Ctx, words: Array | None = None, x: Array | None = None
) -> Array:
    """Round ``t = y`` (``x * 2^-qe``) to an integer-valued float by the letter
    ``N``, ``Z`` or ``S`` (see :func:`round_magnitude`; given ``x``, a ``t``
    that underflowed to 0 from a nonzero ``x`` rounds up iff ``w == 0`` and
    ``x > 0``)."""
    if rounding == "N":
        return xp.round(y)
    if rounding == "Z":
        return xp.trunc(y)
    a = xp.abs(y)
    return xp.copysign(round_magnitude(xp, a, rounding, ctx, words, y < 0, x), y)


def round_magnitude(
    xp: Any, a: Array, rounding: str, ctx: Ctx, words: Array | None = None, neg: Array | None = None,
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
    eager = ctx.eager
    if not eager:
        a = xp.minimum(a, xp.full_like(a, 2.0**24))
    k0 = xp.floor(a)
    f = a - k0  # eager: NaN for an infinite t, which then does not round up
    if eager:
        u = xp.astype(words, a.dtype, copy=True)
        u *= 2.0**-24
        # augmented assignments update the arrays made here in place (a new
        # array costs eager PyTorch more than the operation itself)
        up_pos = f > u
        if x is not None:
            zero_word = words == 0  # rare: look at the rest only when some word is 0
            if bool(xp.any(zero_word)):
                up_pos |= zero_word & (a == 0) & (x > 0)
        up = f >= 1.0 - u  # neg ? (f >= 1 - u) : up_pos
        up ^= up_pos
        up &= neg
        up ^= up_pos
        k0 += xp.astype(up, a.dtype)
        return k0
    else:  # compiled: no updates in place, which keep inductor from fusing
        u = xp.astype(words, a.dtype) * (2.0**-24)
        up_pos = xp.ceil(f - u)  # 1 iff f > u, else 0 or -0
        up_neg = 1.0 - xp.ceil((1.0 - u) - f)  # 1 iff f >= 1 - u
        up = xp.where(neg, up_neg, up_pos)
        if x is not None:
            up = xp.where((words == 0) & (a == 0) & (x > 0), xp.ones_like(up), up)
    return k0 + up


def scale_pow2(xp: Any, v: Array, c: Array, two_step: bool | None = None) -> Array:
    """``v * 2^c`` for integer ``c`` in ``-149 .. 276``, as exact as float products allow.

    ``two_step=None`` looks at ``c`` (eager only) to skip the second product."""
    c1 = xp.clip(c, -126, 127)  # a normal multiplier (XLA reads subnormal operands as 0)
    out = v * pow2(xp, c1)
    rest = c - c1
    if two_step or (two_step is None and bool(xp.any(rest != 0))):
        out = out * pow2(xp, xp.clip(rest, -149, 127))
    return out


def block_maxima(xp: Any, x: Array, fmt: Any, ctx: Ctx, amax: Array | None = None) -> tuple[Blocking, Array]:
    """The blocking of ``x`` and each block's largest magnitude as int32 bits
    (NaN blocks: above ``0x7F800000``), computed the way :attr:`Ctx.block_max` says."""
    blocks = blocking_for(x, fmt)
    if amax is None:
        if ctx.block_max == "float" and blocks.axis == x.ndim - 1:
            # along the last axis inductor vectorizes a float max reduction but
            # not one over bit-cast values (measured 1.3x against 6.9x of x * 2
            # for blocks of 32); |x| keeps the order of magnitudes, NaN propagates
            fmax = blocks.reduce_max(xp, xp.abs(x))
            bits = B.f32_to_i32(fmax)
            amax = xp.where(xp.isnan(fmax), xp.full_like(bits, I.QNAN_BITS), bits)
        else:
            amax = blocks.reduce_max(xp, B.f32_to_i32(x) & 0x7FFFFFFF, tree=ctx.block_max == "tree")
    return blocks, amax


def stochastic_subnormals(xp: Any, x: Array, k: Array, qe: Array, words: Array) -> Array:
    """``k`` with the stochastic rounding of float32 subnormal ``x`` redone on
    integers (for XLA on CPU, which reads them as zero). With ``qe >= -124``,
    ``t = mag * 2^(-149 - qe) < 1/4``: ``F = floor(t * 2^24)`` is
    ``mag >> (qe + 125)``, ``sticky`` the bits shifted out; ``x > 0`` rounds up
    iff ``t > w * 2^-24``, ``x < 0`` iff ``t >= 1 - w * 2^-24``. The shift is
    capped at 24 (``mag < 2^23``: the same ``F = 0`` and ``sticky``): capped
    at 31, the mask ``2^31 - 1`` made ``sticky`` the test ``|x| bits != 0``,
    which LLVM rewrites to the float ``x != 0``, false for a subnormal."""
    bits = B.f32_to_i32(x)
    mag = bits & I.MAG_MASK
    shift = xp.clip(qe + 125, 1, 24)
    frac = mag >> shift
    sticky = (mag & ((xp.ones_like(shift) << shift) - 1)) != 0
    neg = bits < 0
    up = (neg & (frac >= (1 << 24) - words)) | (~neg & ((frac > words) | ((frac == words) & sticky)))
    k_sub = xp.astype(up, k.dtype)
    k_sub = xp.where(neg, -k_sub, k_sub)
    return xp.where(mag < 0x00800000, k_sub, k)


def ungroup(xp: Any, r: Array, blocks: Blocking) -> Array:
    """Per-element results grouped by :meth:`Blocking.group` back in ``x``'s shape."""
    s = list(blocks.shape)
    s[blocks.axis] = blocks.nblocks * blocks.block
    flat = xp.reshape(r, tuple(s))
    if blocks.padded:
        index = (slice(None),) * blocks.axis + (slice(0, blocks.length),)
        flat = flat[index]
    return flat
