"""The MXFP family ``MXFP{p}[E{e}M{m}]{b,d}`` (OCP MX v1.0): kernels and paths.

Per block the shared exponent ``E`` of the format's scale mode (FLOOR, CEIL,
EVEN, RCEIL: :func:`.rules.mx_shared_exponent`); each element is
``element(x * 2^-E) * 2^E``. CEIL, EVEN and RCEIL can pick ``E = 128 -
emax``, one above FLOOR's largest; an element ``±2^emax`` there is ``±2^128``
and every path gives ``±Inf``, as IEEE float32 rounding of that exact value
(the reference) does: the integer pipeline composes Inf bits, the float
paths' product by ``2^E`` overflows. Paths, in selection order:

- ``mxfp.native`` (eager, a backend dtype with the element's grid): the
  element cast as a round trip through that dtype;
- ``mxfp.quantum|element`` (eager, elements :mod:`.fp_quantum` handles):
  one pass of float operations with the block scale folded in
  (:func:`cast_quantum`) when every block's quantum is normal, else the
  element cast on the scaled values (:func:`cast_element`);
- ``mxfp.element`` (IEEE backends, eager or compiled): the element cast on
  the bit pattern (:mod:`.fp_pattern`) of the scaled values;
- ``mxfp.quantum|integer`` (XLA): the one-pass form when every block passes
  :func:`.guards.mx_safe`, else the integer kernel;
- ``mxfp.integer``: the exact integer pipeline.
"""

from __future__ import annotations

from typing import Any, Callable

from .. import _backend as B
from ..formats.mx import MXFloat
from . import bitfields as I
from . import fp_pattern, fp_quantum
from .bfp import block_shared
from .blocking import Blocking
from .float_ops import block_maxima, pow2, ungroup
from .fp import cast_float_bits
from .guards import choose, mx_safe
from .paths import Ctx, Path, all_of, always, eager_only, ieee_only, xla_only
from .rules import mx_shared_exponent, nan_block, nan_blocks

Array = Any


def cast_mxfp_bits(xp: Any, p: I.Parts, fmt: MXFloat, ctx: Ctx) -> Array:
    """int32 bits of the MXFP cast of float32 values ``p``."""
    shared, _, is_nan = block_shared(xp, p, fmt, lambda amax: mx_shared_exponent(xp, amax, fmt))
    out = cast_float_bits(xp, p, fmt.element, None, scale_exp=shared)
    return nan_blocks(xp, out, is_nan, ctx, I.QNAN_BITS)


def cast_integer(xp: Any, x: Array, fmt: MXFloat, words: Array | None, ctx: Ctx) -> Array:
    """``fmt(x)`` by the exact integer pipeline."""
    return B.i32_to_f32(cast_mxfp_bits(xp, I.split(xp, B.f32_to_i32(x)), fmt, ctx))


def _scaled_blocks(xp: Any, x: Array, fmt: MXFloat, ctx: Ctx, amax: Array | None = None):
    """``(blocks, amax, shared, grouped)``: the blocking, block maxima (bits),
    shared exponents and the grouped values of ``x``."""
    blocks, amax = block_maxima(xp, x, fmt, ctx, amax)
    return blocks, amax, mx_shared_exponent(xp, amax, fmt), blocks.group(xp, x, 0)


def _finish(xp: Any, r: Array, amax: Array, blocks: Blocking, ctx: Ctx) -> Array:
    return ungroup(xp, nan_blocks(xp, r, nan_block(amax), ctx), blocks)


def cast_native(xp: Any, x: Array, fmt: MXFloat, words: Array | None, ctx: Ctx) -> Array:
    """The element cast as a native-dtype round trip: ``x * 2^-E`` is exact
    unless it is a subnormal far below the element's smallest value, where
    the element cast gives a signed zero either way."""
    el = fmt.element
    blocks, amax, shared, grouped = _scaled_blocks(xp, x, fmt, ctx)
    scaled = xp.clip(grouped * pow2(xp, -shared), -el.max_value, el.max_value)
    y = B.round_trip(scaled, B.native_float_dtype(el, ctx.backend)) * pow2(xp, shared)
    return _finish(xp, y, amax, blocks, ctx)


def cast_element(
    xp: Any, x: Array, fmt: MXFloat, words: Array | None, ctx: Ctx,
    element_cast: Callable[[Any, Array], Array] | None = None,
) -> Array:
    """``y = x * 2^-E`` per block, the element cast of ``y`` (by default on the
    bit pattern, :mod:`.fp_pattern`), then ``* 2^E`` (IEEE backends).

    ``2^-E`` is a normal float (``-127 <= E <= 128 - emax``), so ``y`` is exact
    unless it is a subnormal, far below half the element's smallest quantum,
    where it rounds to a signed zero either way; ``element(y) * 2^E`` is exact
    because its quantum ``2^(E + emin - m)`` is at least ``2^-149``, except
    ``±2^emax * 2^(128 - emax)``, which overflows to ``±Inf`` as the SPEC says.
    """
    el = fmt.element
    blocks, amax, shared, grouped = _scaled_blocks(xp, x, fmt, ctx)
    scaled = grouped * pow2(xp, -shared)
    y = fp_pattern.cast_fp_pattern(xp, scaled, el, ctx) if element_cast is None else element_cast(xp, scaled)
    return _finish(xp, y * pow2(xp, shared), amax, blocks, ctx)


def cast_quantum(xp: Any, x: Array, fmt: MXFloat, ctx: Ctx, amax: Array | None = None) -> Array:
    """MXFP as one pass of float operations: :mod:`.fp_quantum` with the block
    scale folded in. With ``S`` the shared exponent (0 for an all-zero
    block), ``v = clip(x, ±max * 2^S)``, ``E = max(floor(log2 |v|), emin + S)``:
    the result is ``round(v * 2^(m - E)) * 2^(E - m)``, which is
    ``element(x * 2^-S) * 2^S`` (the scalings by ``2^S`` are exact, the
    element cast is fp_quantum's). ``max * 2^S`` overflows to ``+Inf`` when
    ``S = 128 - emax`` (CEIL, EVEN, RCEIL): then no finite ``x`` needs the
    clamp, and a value rounding to ``2^emax * 2^S = 2^128`` overflows to
    ``±Inf`` in the last product, as the SPEC says. Needs every nonzero block's quantum
    ``2^(emin + S - m)`` to be at least ``2^-126`` (then both powers are
    normal; XLA: ``2^-124``, so that the subnormals it reads as zero round to
    zero anyway): the guarded paths check it.
    """
    el = fmt.element
    m = el.man_bits
    blocks, amax, shared, grouped = _scaled_blocks(xp, x, fmt, ctx, amax)
    bound = el.max_value * pow2(xp, shared)  # per block
    lowest = (shared + (el.emin + 127)) << 23  # per block: the exponent field of 2^(emin + S)
    if not ctx.ieee:
        # XLA: a NaN bound for NaN blocks (the clamp propagates it, so every
        # element of the block is NaN), per-block values stored once
        bound = xp.where(nan_block(amax), xp.full_like(bound, float("nan")), bound)
        bound, lowest = B.materialize((bound, lowest))
    v = xp.minimum(xp.maximum(grouped, -bound), bound)
    field = xp.maximum(B.f32_to_i32(v) & I.INF_BITS, lowest)  # E + 127, in the exponent field
    # 2^(m - E): (254 + m - (E + 127)) << 23, the constant wrapped to int32
    # (the difference is in range, since the quantum is normal)
    down = B.i32_to_f32(_wrap_i32((254 + m) << 23) - field)
    up = B.i32_to_f32(field - (m << 23))  # 2^(E - m)
    r = xp.round(v * down) * up
    return ungroup(xp, r, blocks) if not ctx.ieee else _finish(xp, r, amax, blocks, ctx)


def _wrap_i32(c: int) -> int:
    """``c`` as the int32 with the same low 32 bits."""
    return c - (1 << 32) if c >= 1 << 31 else c


def cast_quantum_or_element(xp: Any, x: Array, fmt: MXFloat, words: Array | None, ctx: Ctx) -> Array:
    """Eager: :func:`cast_quantum` when every block's quantum is at least
    ``2^-126``, else :func:`cast_element` with the :mod:`.fp_quantum` element cast."""
    el = fmt.element
    blocks, amax = block_maxima(xp, x, fmt, ctx)
    ok = mx_shared_exponent(xp, amax, fmt) + (el.emin - el.man_bits) >= -126
    return choose(
        ok,
        lambda v: cast_quantum(xp, v, fmt, ctx, amax=amax),
        lambda v: cast_element(xp, v, fmt, None, ctx, lambda xp_, y: fp_quantum.cast_fp_quantum(xp_, y, el)),
        x,
    )


def cast_guarded(xp: Any, x: Array, fmt: MXFloat, words: Array | None, ctx: Ctx) -> Array:
    """XLA: :func:`cast_quantum` when every block passes :func:`.guards.mx_safe`, else the integer kernel."""
    blocks, amax = block_maxima(xp, x, fmt, ctx)
    return choose(
        mx_safe(fmt, amax),
        lambda v, a: cast_quantum(xp, v, fmt, ctx, amax=a),
        lambda v, a: cast_integer(xp, v, fmt, None, ctx),
        x, amax,
    )


def _native(fmt: MXFloat, ctx: Ctx) -> str | None:
    if B.native_float_dtype(fmt.element, ctx.backend) is None:
        return f"{ctx.backend} has no dtype with the element's grid"
    return None


PATHS = (
    Path("mxfp.native", "eager NumPy/PyTorch where the backend has the element dtype (NumPy: all five; "
         "PyTorch: FP8)", all_of(eager_only, _native), cast_native),
    Path("mxfp.quantum|element", "eager NumPy/PyTorch: one pass with the block scale folded in when every "
         "block's quantum is normal, else the element cast on the scaled values",
         all_of(eager_only, lambda fmt, ctx: fp_quantum.why_not(fmt.element)), cast_quantum_or_element),
    Path("mxfp.element", "NumPy and PyTorch (eager and compiled): the element cast on the bit pattern of "
         "the scaled values", ieee_only, cast_element),
    Path("mxfp.quantum|integer", "JAX: the one-pass form when every block's quantum is at least 2^-124, "
         "else the integer kernel", xla_only, cast_guarded),
    Path("mxfp.integer", "always (the exact integer pipeline)", always, cast_integer),
)
