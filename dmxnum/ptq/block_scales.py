"""Held block scales: a block format's shared scale, computed once and reused.

GPTQ quantizes a weight matrix one input column at a time. For a block
format whose blocks run along the input axis, the block's shared scale must
be fixed when the algorithm reaches the block's first column and then held
while its other columns (updated meanwhile by the error feedback) are
rounded. Each block family therefore splits its cast in two, both taken
from the family's kernels (``dmxnum/kernels``) so that nothing is defined
twice:

- :meth:`BlockRule.scale`: the held scale of blocks with maxima ``amax``
  (int32 bits of ``max |x|``, as the kernels take them);
- :meth:`BlockRule.round`: float32 values rounded on the element grid under
  a held scale (values beyond the block maximum saturate or clamp as the
  element format does).

Rounding a whole block under the scale of its own maximum is the format's
cast, bit for bit (:func:`cast_by_held_scales`, tested against
:func:`dmxnum.cast`). Per family:

============  =======================================  =====================================
family        held scale (from ``amax``)               rounding under it
============  =======================================  =====================================
BFP, MXINT    ``E = clamp(floor(log2 amax), ±127)``    ``k = round(x / 2^(E-(n-2)))``, clamped
              (:func:`.rules.bfp_shared_exponent`)     (integer pipeline, any rounding letter)
MXFP          ``E`` of the scale mode F/C/E/R          element cast of ``x / 2^E``, times ``2^E``
              (:func:`.rules.mx_shared_exponent`)      (:func:`.fp.cast_float_bits`)
NVFP4, (T)    ``(r, gs)`` of the E4M3 block scale      ``fl32(e2m1(clamp(fl32(x r))) * gs)``
              (:func:`.nvfp4.block_scales`, with g)    (:func:`.nvfp4.element_bits`, exact)
SBFP          ``s = scaler(fl32(amax / C))``           ``fl32(XP(fl32(x / s)) * s)``; ``s = 0``:
              (:func:`.sbfp.block_scales`)             signed zeros
============  =======================================  =====================================

Everything here runs on NumPy float32/int32 (IEEE arithmetic, so the
kernels' float steps are exact as written). Stochastic rounding is not
supported (GPTQ rounds deterministically).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ..casting import cast
from ..formats.block import BlockFloatingPoint, MXInt
from ..formats.mx import MXFloat
from ..formats.nvfp4 import NVFP4
from ..formats.scaled import ScaledBFP
from ..kernels import bitfields as I
from ..kernels import nvfp4 as nv_kernels
from ..kernels import sbfp as sbfp_kernels
from ..kernels.blocking import blocking_for
from ..kernels.fp import cast_float_bits
from ..kernels.paths import Ctx
from ..kernels.rules import bfp_shared_exponent, mx_shared_exponent
from ._arrays import float32_bits

Held = tuple[np.ndarray, ...]
_CTX = Ctx("numpy", False)


@dataclass(frozen=True)
class BlockRule:
    """A block family's cast split into "scale of a block" and "round under a scale"."""

    family: str
    scale: Callable[[np.ndarray, "np.ndarray | None"], Held]
    round: Callable[[np.ndarray, Held], np.ndarray]


def _f32(bits: np.ndarray) -> np.ndarray:
    return np.asarray(bits, dtype=np.int32).view(np.float32)


def _bfp_rule(fmt: BlockFloatingPoint) -> BlockRule:
    def scale(amax: np.ndarray, g: np.ndarray | None) -> Held:
        return (bfp_shared_exponent(np, amax),)

    def round_(x: np.ndarray, held: Held) -> np.ndarray:
        p = I.split(np, float32_bits(x))
        qe = np.broadcast_to(held[0] - (fmt.man_bits - 2), p.bits.shape).astype(np.int32)
        k, _ = I.round_to_quantum(np, p, qe, fmt.rounding)
        limit = np.where(p.neg, -fmt.k_min, fmt.k_max).astype(k.dtype)
        k = np.minimum(k, limit)
        return _f32(I.with_sign(np, I.compose(np, k, qe), p.neg))

    return BlockRule("BFP", scale, round_)


def _mxfp_rule(fmt: MXFloat) -> BlockRule:
    def scale(amax: np.ndarray, g: np.ndarray | None) -> Held:
        return (mx_shared_exponent(np, amax, fmt),)

    def round_(x: np.ndarray, held: Held) -> np.ndarray:
        p = I.split(np, float32_bits(x))
        e = np.broadcast_to(held[0], p.bits.shape).astype(np.int32)
        return _f32(cast_float_bits(np, p, fmt.element, None, scale_exp=e))

    return BlockRule("MXFP", scale, round_)


def _nvfp4_rule(fmt: NVFP4) -> BlockRule:
    def scale(amax: np.ndarray, g: np.ndarray | None) -> Held:
        if fmt.tensor_scale and g is None:
            raise ValueError(f"{fmt} needs its tensor scale g to compute block scales")
        gg = None if not fmt.tensor_scale else np.asarray(g, dtype=np.float32)
        with np.errstate(all="ignore"):
            _, r, gs = nv_kernels.block_scales(np, amax, gg, _CTX)
        return (np.asarray(r, np.float32), np.asarray(gs, np.float32))

    def round_(x: np.ndarray, held: Held) -> np.ndarray:
        r, gs = held
        x32 = np.asarray(x, np.float32)
        q = nv_kernels.element_bits(np, x32, np.broadcast_to(r, x32.shape))
        gs_bits = np.broadcast_to(float32_bits(gs), q.shape)
        return _f32(nv_kernels.scaled_product_bits(np, q, gs_bits))

    return BlockRule("NVFP4", scale, round_)


def _sbfp_rule(fmt: ScaledBFP) -> BlockRule:
    def scale(amax: np.ndarray, g: np.ndarray | None) -> Held:
        with np.errstate(all="ignore"):
            return (np.asarray(sbfp_kernels.block_scales(np, amax, fmt, _CTX), np.float32),)

    def round_(x: np.ndarray, held: Held) -> np.ndarray:
        s = np.broadcast_to(held[0], np.shape(x))
        with np.errstate(all="ignore"):
            # a zero scale divides by +Inf: signed zeros, as the SBFP kernel does
            q = np.asarray(x, np.float32) / np.where(s == 0, np.float32(np.inf), s)
            return cast(q, fmt.block) * s

    return BlockRule("SBFP", scale, round_)


def block_rule(fmt: Any) -> BlockRule:
    """The :class:`BlockRule` of a block format value (BFP, MXINT, MXFP, NVFP4
    single or two level, SBFP). Raises ``ValueError`` for stochastic
    rounding and ``TypeError`` for an unblocked format."""
    if getattr(fmt, "stochastic", False):
        raise ValueError(f"{fmt} rounds stochastically; held block scales need a deterministic rounding")
    if isinstance(fmt, MXInt):
        return _bfp_rule(fmt.as_bfp)
    if isinstance(fmt, BlockFloatingPoint):
        return _bfp_rule(fmt)
    if isinstance(fmt, MXFloat):
        return _mxfp_rule(fmt)
    if isinstance(fmt, NVFP4):
        return _nvfp4_rule(fmt)
    if isinstance(fmt, ScaledBFP):
        return _sbfp_rule(fmt)
    raise TypeError(f"{fmt} is not a block format (BFP, MXINT, MXFP, NVFP4, SBFP)")


def cast_by_held_scales(x: np.ndarray, fmt: Any, g: Any = None) -> np.ndarray:
    """``fmt``'s cast of finite values ``x`` (NumPy, any float dtype; the
    float32 values are used) recomposed from :func:`block_rule`: each block's
    scale from its own maximum, then its values rounded under that scale.
    Equals ``dmxnum.cast(x, fmt)`` bit for bit on finite inputs (with ``g``,
    ``NVFP4(T)``'s tensor scale, defaulting to the cast's own default; a
    non-finite block is not handled here). Returns float32.
    """
    x32 = np.asarray(x, dtype=np.float32)
    rule = block_rule(fmt)
    blocks = blocking_for(x32, fmt)
    if getattr(fmt, "tensor_scale", False):
        g = nv_kernels.tensor_scale(np, x32) if g is None else np.asarray(g, np.float32)
    if x32.size == 0:
        return x32
    amax = blocks.reduce_max(np, float32_bits(x32) & I.MAG_MASK)
    gg = None if g is None else np.expand_dims(np.reshape(g, (1,) * (x32.ndim - np.ndim(g)) + np.shape(g)),
                                               blocks.axis + 1)
    held = rule.scale(amax, gg)
    return rule.round(x32, tuple(blocks.spread(np, np.broadcast_to(h, amax.shape)) for h in held))
