"""``encode``/``decode``: the integer codes a device stores for a format.

Layouts (see ``docs/formats.md``):

* FP: ``sign | exponent | mantissa`` (IEEE order; no sign bit when unsigned),
  exponent code 0 for zeros and subnormals. Scheme I: Inf = all-ones
  exponent with mantissa 0, NaN = all-ones exponent with all-ones mantissa;
  scheme S: the reserved top code is NaN (all-ones exponent and mantissa);
  scheme E: NaN = all-ones exponent and mantissa (OCP E4M3); scheme A: no NaN.
* XP: the n-bit two's-complement integer ``k`` (as unsigned ``k mod 2^n``).
* BFP / MXINT: element codes as XP with ``n`` bits; one shared exponent per
  block as an E8M0 code ``E + 127`` (0xFF: NaN block).
* MXFP: element codes in the element FP layout; E8M0 scales as above.
* SBFP: element codes as XP; one scaler code per block in the scaler's FP
  layout (a NaN block stores the scaler's NaN code).

Codes are unsigned ints of the element width (uint8 up to 8 bits, uint16 up
to 16, uint32 beyond; PyTorch uses uint8 / int16 / int32 holding the same
bits). Per-block codes have the input's shape with the block axis replaced
by the number of blocks.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import numpy as np

from . import _backend as B
from .casting import cast
from .formats.base import Format
from .formats.block import BlockFloatingPoint, MXInt
from .formats.families import LABELS, family_label
from .formats.fixed import FixedPoint
from .formats.floating import FloatingPoint
from .formats.grammar import parse
from .formats.mx import MXFloat
from .formats.same import Same
from .formats.scaled import ScaledBFP
from .kernels import bitfields as I
from .kernels.blocking import Blocking, blocking_for
from .kernels.fp import cast_float_bits
from .kernels.rules import bfp_shared_exponent, mx_shared_exponent, nan_block
from .kernels.sbfp import div_by_int_f32_bits, product_bits, scale_parts
from .kernels import static_scale
from .kernels.packing import pack_codes, unpack_codes
from .kernels.static_scale import as_scale
from .kernels import nvfp4 as nvfp4_kernels
from .kernels.float_ops import ungroup
from .kernels.paths import Ctx

Array = Any


class Encoded(NamedTuple):
    """Device codes: ``codes`` per element and ``scales`` per block (``None`` if unblocked).

    ``scale``: the float32 per-tensor scale of ``NVFP4(T)`` (the ``g`` used),
    or the static scale ``s`` given to ``encode(..., scale=s)``, else ``None``.
    ``packed``: whether ``codes`` are packed sub-byte codes along the last
    axis (``encode(..., packed=True)``); ``length``: then the unpacked length
    of that axis (``None`` when not packed).
    """

    codes: Array
    scales: Array | None
    fmt: Format
    scale: Array | None = None
    packed: bool = False
    length: int | None = None


def encode(
    x: Array, fmt: Format | str, key: Any = None, random_bits: Array | None = None,
    *, scale: Any = None, packed: bool = False,
) -> Encoded:
    """Integer codes of ``cast(x, fmt)`` as a device would store them.

    ``decode(encode(x, fmt))`` equals ``cast(x, fmt)`` bit for bit, except that
    integer-code formats (XP, BFP, MXINT, SBFP elements) have no -0 (+0 comes
    back) and NaN blocks are stored with the NaN scale code. Unclamped XP has
    no fixed width (``ValueError``); formats without a NaN code (XP, FP scheme
    A, FP scheme I with ``m = 0``, SBFP with a scheme-A scaler) reject NaN
    inputs with ``ValueError`` in eager mode (under ``jax.jit`` those codes
    are unspecified).

    ``scale``: a static scale ``s`` as for ``cast(x, fmt, scale=s)``; the codes
    are those of the inner cast ``cast(fl32(x / s), fmt)`` and ``s`` (float32,
    on ``x``'s backend) is recorded in ``Encoded.scale``, so that
    ``decode(encode(x, fmt, scale=s)) == cast(x, fmt, scale=s)`` (same -0
    caveat). For ``NVFP4(T)`` it is the tensor scale ``g`` (by default the
    array's own, recorded as well).

    ``packed=True``: element codes narrower than 8 bits are packed along the
    last axis (:func:`dmxnum.kernels.packing.pack_codes`: a little-endian
    bit stream per row, two 4-bit codes per byte low nibble first, rows
    padded to whole bytes) into uint8 with ``Encoded.packed`` True and
    ``Encoded.length`` the unpacked length. Codes of 8 bits or more are
    left as they are (``packed`` stays False); per-block scale codes are
    never packed. A 0-d ``x`` raises ``ValueError`` (no axis to pack along).
    """
    fmt = parse(fmt) if not isinstance(fmt, Format) else fmt
    if isinstance(fmt, Same):
        raise ValueError("SAME has no storage codes; encode with a concrete format")
    if isinstance(fmt, FixedPoint) and not fmt.clamp:
        raise ValueError(f"{fmt} is unclamped and has no fixed code width; use a clamped XP[n,f](C..)")
    B.check_float(x)
    if packed and x.ndim == 0:
        raise ValueError("encode(..., packed=True) packs along the last axis and needs ndim >= 1, got a 0-d array")
    s = None if scale is None else as_scale(x, scale, fmt)
    two_level = getattr(fmt, "tensor_scale", False)
    if s is not None and not two_level:
        x = _static_divide(B.to_float32(x), s)
    y = cast(x, fmt, key=key, random_bits=random_bits, scale=s if two_level else None)
    y32 = B.to_float32(y)
    xp = B.namespace(y32)
    p = I.split(xp, B.f32_to_i32(y32))
    if two_level:
        enc = _ENCODERS[family_label(fmt)](xp, x, p, fmt, scale=s)
    else:
        enc = _ENCODERS[family_label(fmt)](xp, x, p, fmt)._replace(scale=s)
    width = code_width(fmt)
    if packed and width < 8:
        enc = enc._replace(codes=pack_codes(enc.codes, width), packed=True, length=int(x.shape[-1]))
    return enc


def code_width(fmt: Format | str) -> int:
    """Bits per element code of ``fmt`` (before packing): XP ``n``, FP ``s + e + m``,
    BFP/MXINT ``n``, MXFP and NVFP4 the element's width, SBFP the block's ``n``."""
    fmt = parse(fmt) if not isinstance(fmt, Format) else fmt
    label = family_label(fmt)
    if label == "XP":
        return fmt.bits
    if label == "FP":
        return _fp_width(fmt)
    if label in ("BFP", "MXINT"):
        return _as_bfp(fmt).man_bits
    if label == "SBFP":
        return fmt.block.bits
    return _fp_width(fmt.element)  # MXFP, NVFP4


def _static_divide(x32: Array, s: Array) -> Array:
    """``fl32(x / s)`` exactly (:func:`dmxnum.kernels.static_scale.divide`)."""
    with np.errstate(all="ignore"):
        return static_scale.divide(B.namespace(x32), x32, s, Ctx.of(x32))


def _static_multiply(y: Array, s: Array) -> Array:
    """``fl32(y * s)`` exactly (:func:`dmxnum.kernels.static_scale.multiply`)."""
    s = s if B.backend_name(s) == B.backend_name(y) else B.convert_like(s, y)
    with np.errstate(all="ignore"):
        return static_scale.multiply(B.namespace(y), y, s, Ctx.of(y))


def _encode_fp(xp: Any, x: Array, p: I.Parts, fmt: FloatingPoint) -> Encoded:
    # scheme I with m = 0: NaN's code (all-ones exponent and mantissa) is Inf's
    _reject_nan(p, fmt, fmt.scheme == "A" or (fmt.scheme == "I" and fmt.man_bits == 0))
    return Encoded(_store(xp, _fp_codes(xp, p, fmt, 0), _fp_width(fmt)), None, fmt)


def _encode_xp(xp: Any, x: Array, p: I.Parts, fmt: FixedPoint) -> Encoded:
    _reject_nan(p, fmt, True)
    k = _int_codes(xp, p, xp.zeros_like(p.lg) - fmt.frac, fmt.bits)
    return Encoded(_store(xp, k, fmt.bits), None, fmt)


def _input_block_maxima(xp: Any, x: Array, fmt: Any) -> tuple[Blocking, Array]:
    """The blocking of ``x`` and its block maxima (bits): shared exponents
    come from the input, not from the cast values."""
    blocks = blocking_for(x, fmt)
    return blocks, blocks.reduce_max(xp, B.f32_to_i32(B.to_float32(x)) & I.MAG_MASK)


def _scale_codes(xp: Any, shared: Array, amax: Array, blocks: Blocking) -> Array:
    """E8M0 codes ``E + 127`` per block (0xFF for a NaN block)."""
    return _store(xp, _squeeze(xp, xp.where(nan_block(amax), xp.full_like(shared, 255), shared + 127), blocks), 8)


def _encode_bfp(xp: Any, x: Array, p: I.Parts, fmt: BlockFloatingPoint | MXInt) -> Encoded:
    bfp = _as_bfp(fmt)
    blocks, xamax = _input_block_maxima(xp, x, fmt)
    shared = bfp_shared_exponent(xp, xamax)
    qe = blocks.spread(xp, shared) - (bfp.man_bits - 2)
    k = _int_codes(xp, p, qe, bfp.man_bits)
    return Encoded(_store(xp, k, bfp.man_bits), _scale_codes(xp, shared, xamax, blocks), fmt)


def _encode_mxfp(xp: Any, x: Array, p: I.Parts, fmt: MXFloat) -> Encoded:
    blocks, xamax = _input_block_maxima(xp, x, fmt)
    shared = mx_shared_exponent(xp, xamax, fmt)
    el = fmt.element
    codes = _fp_codes(xp, p, el, blocks.spread(xp, shared))
    # a cast value ±Inf in a finite block is ±2^emax * 2^E = ±2^128 (CEIL,
    # EVEN, RCEIL overflow float32 there): stored as the element's ±2^emax,
    # which decodes to ±Inf again
    power = (el.emax + el.bias) << el.man_bits
    sign_bit = 1 << (el.exp_bits + el.man_bits)
    inf_codes = xp.where(p.neg, xp.full_like(codes, power | sign_bit), xp.full_like(codes, power))
    codes = xp.where(p.mag == I.INF_BITS, inf_codes, codes)
    return Encoded(_store(xp, codes, _fp_width(fmt.element)), _scale_codes(xp, shared, xamax, blocks), fmt)


def _as_bfp(fmt: BlockFloatingPoint | MXInt) -> BlockFloatingPoint:
    """MXINT codes are BFP codes of its BFP twin."""
    return fmt.as_bfp if isinstance(fmt, MXInt) else fmt


def decode(enc: Encoded | tuple, fmt: Format | str | None = None) -> Array:
    """float32 values of device codes produced by :func:`encode`.

    Accepts packed (``enc.packed``: unpacked with ``enc.length`` first) and
    unpacked codes; with a static scale (``enc.scale``, not ``NVFP4(T)``,
    whose decoder uses its tensor scale itself) the decoded inner values
    ``y`` become ``fl32(y * s)``, computed exactly on every backend. A plain
    tuple ``(codes, scales)`` is read as unpacked and unscaled.
    """
    if isinstance(enc, Encoded):
        codes, scales, efmt = enc.codes, enc.scales, enc.fmt
    else:
        codes, scales = enc[0], enc[1]
        efmt = None
    fmt = efmt if fmt is None else (parse(fmt) if not isinstance(fmt, Format) else fmt)
    if fmt is None:
        raise ValueError("decode needs the format: pass an Encoded value or fmt=")
    packed = isinstance(enc, Encoded) and enc.packed
    if packed:
        if enc.length is None:
            raise ValueError("a packed Encoded value needs its unpacked length (Encoded.length), got None")
        codes = unpack_codes(codes, code_width(fmt), enc.length)
    xp = B.namespace(codes)
    scale = enc.scale if isinstance(enc, Encoded) else None
    if B.backend_name(codes) == "jax":  # one compiled function, not hundreds of eager ops
        out = _jax_decoder(fmt)(codes, scales, scale)
    else:
        out = _decode_codes(xp, codes, scales, fmt, scale)
    if scale is not None and not getattr(fmt, "tensor_scale", False):
        out = _static_multiply(out, scale)
    return out


def _decode_codes(xp: Any, codes: Array, scales: Array | None, fmt: Format, scale: Array | None) -> Array:
    """float32 values of unpacked codes (before any static scale)."""
    c = _load(xp, codes)
    if family_label(fmt) == "NVFP4":  # two level: the tensor scale g travels in Encoded.scale
        return _decode_nvfp4(xp, c, scales, fmt, scale)
    return _DECODERS[family_label(fmt)](xp, c, scales, fmt)


@functools.lru_cache(maxsize=256)
def _jax_decoder(fmt: Format) -> Any:
    import jax
    import jax.numpy as jnp

    xp = B.namespace(jnp.zeros(0))
    return jax.jit(lambda codes, scales, scale: _decode_codes(xp, codes, scales, fmt, scale))


def _decode_fp(xp: Any, c: Array, scales: Array | None, fmt: FloatingPoint) -> Array:
    return B.i32_to_f32(_fp_decode(xp, c, fmt, 0))


def _decode_xp(xp: Any, c: Array, scales: Array | None, fmt: FixedPoint) -> Array:
    return B.i32_to_f32(_int_decode(xp, c, fmt.bits, xp.zeros_like(c) - fmt.frac))


def _per_element_scales(xp: Any, c: Array, scales: Array, fmt: Any) -> tuple[Blocking, Array]:
    """The blocking of the codes and the per-block scale codes, shape ``pre + (nb, 1) + post``."""
    blocks = blocking_for(c, fmt)
    return blocks, xp.expand_dims(_load(xp, scales), axis=blocks.axis + 1)


def _decode_bfp(xp: Any, c: Array, scales: Array, fmt: BlockFloatingPoint | MXInt) -> Array:
    bfp = _as_bfp(fmt)
    blocks, sc = _per_element_scales(xp, c, scales, fmt)
    qe = blocks.spread(xp, sc - 127) - (bfp.man_bits - 2)
    return _nan_where(xp, _int_decode(xp, c, bfp.man_bits, qe), blocks.spread(xp, sc == 255))


def _decode_mxfp(xp: Any, c: Array, scales: Array, fmt: MXFloat) -> Array:
    blocks, sc = _per_element_scales(xp, c, scales, fmt)
    out = _fp_decode(xp, c, fmt.element, blocks.spread(xp, sc - 127))
    return _nan_where(xp, out, blocks.spread(xp, sc == 255))


def _decode_sbfp(xp: Any, c: Array, scales: Array, fmt: ScaledBFP) -> Array:
    blocks, sc = _per_element_scales(xp, c, scales, fmt)
    s_bits = _fp_decode(xp, sc, fmt.scaler, 0)
    s_e = B.i32_to_f32(blocks.spread(xp, s_bits))
    prod = _exact_product(xp, _signed(xp, c, fmt.block.bits), s_e)
    return _nan_where(xp, prod, blocks.spread(xp, s_bits == I.QNAN_BITS))


def _nan_where(xp: Any, out: Array, nan_e: Array) -> Array:
    return B.i32_to_f32(xp.where(nan_e, xp.full_like(out, I.QNAN_BITS), out))


# ----------------------------------------------------------------------------- FP codes
def _fp_width(fmt: FloatingPoint) -> int:
    return int(fmt.signed) + fmt.exp_bits + fmt.man_bits


def _fp_codes(xp: Any, p: I.Parts, fmt: FloatingPoint, scale_exp: Any) -> Array:
    """FP codes of values ``p`` that are exactly representable (times ``2^scale_exp``)."""
    m, bias = fmt.man_bits, fmt.bias
    lg = p.lg - scale_exp
    normal = lg >= fmt.emin
    # value / 2^scale_exp = M * 2^(lg - m), M in [2^m, 2^(m+1)) for normals
    shift = (lg - m) - (p.e - scale_exp)
    full = _shift(xp, p.sig, shift)
    ecode = xp.where(normal, lg + bias, xp.zeros_like(lg))
    # subnormal: value / 2^scale_exp = mant * 2^(emin - m)
    sub_shift = (fmt.emin - m) - (p.e - scale_exp)
    mant = xp.where(normal, full - (1 << m), _shift(xp, p.sig, sub_shift))
    mag_code = xp.bitwise_left_shift(ecode, xp.full_like(ecode, m)) | mant
    mag_code = xp.where(p.sig == 0, xp.zeros_like(mag_code), mag_code)
    top = (1 << fmt.exp_bits) - 1
    all_ones = (top << m) | ((1 << m) - 1)
    mag_code = xp.where(p.mag == I.INF_BITS, xp.full_like(mag_code, top << m), mag_code)
    mag_code = xp.where(p.mag > I.INF_BITS, xp.full_like(mag_code, all_ones), mag_code)
    if fmt.signed:
        sign_bit = 1 << (fmt.exp_bits + m) if fmt.exp_bits + m < 31 else I.SIGN_BIT
        sign = xp.where(p.neg, xp.full_like(mag_code, sign_bit), xp.zeros_like(mag_code))
        return mag_code | sign
    return mag_code


def _fp_decode(xp: Any, c: Array, fmt: FloatingPoint, scale_exp: Any) -> Array:
    m = fmt.man_bits
    width = fmt.exp_bits + m
    neg = ((c >> width) & 1) == 1 if fmt.signed else xp.zeros_like(c) != 0
    ecode = (c >> m) & ((1 << fmt.exp_bits) - 1)
    mant = c & ((1 << m) - 1)
    normal = ecode > 0
    k = xp.where(normal, mant + (1 << m), mant)
    qe = xp.where(normal, ecode, xp.ones_like(ecode)) - fmt.bias - m + scale_exp
    mag = I.compose(xp, k, xp.maximum(qe, xp.full_like(qe, -149)))
    top = (1 << fmt.exp_bits) - 1
    if fmt.scheme in ("I", "S"):
        special = ecode == top
        if fmt.scheme == "I":
            mag = xp.where(special & (mant == 0), xp.full_like(mag, I.INF_BITS), mag)
            mag = xp.where(special & (mant != 0), xp.full_like(mag, I.QNAN_BITS), mag)
        else:
            mag = xp.where(special, xp.full_like(mag, I.QNAN_BITS), mag)
    elif fmt.scheme == "E":
        mag = xp.where((ecode == top) & (mant == (1 << m) - 1), xp.full_like(mag, I.QNAN_BITS), mag)
    return xp.where(mag == I.QNAN_BITS, mag, I.with_sign(xp, mag, neg))


# ----------------------------------------------------------------------------- integer codes
def _int_codes(xp: Any, p: I.Parts, qe: Array, width: int) -> Array:
    """n-bit two's-complement codes of ``k = value / 2^qe`` (exact integers)."""
    k = _shift(xp, p.sig, qe - p.e)
    k = xp.where(p.neg, -k, k)
    return k & ((1 << width) - 1)


def _signed(xp: Any, c: Array, width: int) -> Array:
    half = 1 << (width - 1)
    return xp.where(c >= half, c - (1 << width), c)


def _int_decode(xp: Any, c: Array, width: int, qe: Array) -> Array:
    k = _signed(xp, c, width)
    mag = I.compose(xp, xp.abs(k), xp.maximum(qe, xp.full_like(qe, -149)))
    return I.with_sign(xp, mag, k < 0)


def _shift(xp: Any, v: Array, right: Array) -> Array:
    """``v * 2^-right`` for exact shifts (right may be negative)."""
    r = xp.clip(right, -31, 31)
    return xp.where(r >= 0, xp.bitwise_right_shift(v, xp.maximum(r, xp.zeros_like(r))),
                    xp.bitwise_left_shift(v, xp.maximum(-r, xp.zeros_like(r))))


# ----------------------------------------------------------------------------- SBFP
def _encode_sbfp(xp: Any, x: Array, p: I.Parts, fmt: ScaledBFP) -> Encoded:
    blocks, xamax = _input_block_maxima(xp, x, fmt)
    is_nan = nan_block(xamax)  # the input's NaN/Inf blocks (a cast value may be Inf: k * s overflows)
    a_bits = div_by_int_f32_bits(xp, I.split(xp, xamax), fmt.block.k_max)
    s_bits = cast_float_bits(xp, I.split(xp, a_bits), fmt.scaler)
    if fmt.scaler.scheme == "A" and _eager_any(xp, is_nan):
        raise ValueError(f"{fmt} has a scheme-A scaler with no NaN code; the input holds NaN/Inf blocks")
    s_bits = xp.where(is_nan, xp.full_like(s_bits, I.QNAN_BITS), s_bits)
    s_code = _fp_codes(xp, I.split(xp, s_bits), fmt.scaler, 0)
    # k = y / s exactly (y = fl32(k * s) with |k| < 2^24): recover k by rounding y / s
    s_e = blocks.spread(xp, s_bits)
    k = _recover_k(xp, p, s_e, fmt)
    codes = k & ((1 << fmt.block.bits) - 1)
    return Encoded(
        _store(xp, codes, fmt.block.bits),
        _store(xp, _squeeze(xp, s_code, blocks), _fp_width(fmt.scaler)),
        fmt,
    )


def _recover_k(xp: Any, p: I.Parts, s_bits: Array, fmt: ScaledBFP) -> Array:
    """The integer ``k`` with ``fl32(k * s) == y``, searched among the candidates
    near ``y / s`` (fl32 products are monotonic in ``k``)."""
    s = B.i32_to_f32(s_bits)
    lo, hi = fmt.block.k_min, fmt.block.k_max
    target = p.bits & I.MAG_MASK
    # binary search on |k| in [0, 2^(n-1)]: smallest k with fl32(k*s) >= |y|
    lo_k = xp.zeros_like(target)
    hi_k = xp.full_like(target, max(-lo, hi))
    for _ in range(fmt.block.bits + 1):
        mid = (lo_k + hi_k) >> 1
        prod = _exact_product(xp, mid, s)
        ge = prod >= target
        hi_k = xp.where(ge, mid, hi_k)
        lo_k = xp.where(ge, lo_k, mid + 1)
    k = xp.where(s_bits == 0, xp.zeros_like(lo_k), lo_k)
    return xp.where(p.neg, -k, k)


def _exact_product(xp: Any, k: Array, s: Array) -> Array:
    """int32 bits of ``fl32(k * s)`` for integer ``k`` and float32 ``s >= 0`` (sign of k kept)."""
    unit, lg_s, sub_sig = scale_parts(xp, B.f32_to_i32(s))
    return I.with_sign(xp, product_bits(xp, xp.abs(k), unit, lg_s, sub_sig), k < 0)


# ----------------------------------------------------------------------------- NVFP4
def _encode_nvfp4(xp: Any, x: Array, p: I.Parts, fmt: Any, scale: Array | None = None) -> Encoded:
    """E2M1 element codes, E4M3 block-scale codes (a NaN block stores 0x7F)
    and, for two level, the float32 tensor scale ``g`` used (``scale``, or the
    default of the whole array) as ``Encoded.scale``. Computed from the input
    (the kernel's exact integer pipeline), so NaN input is fine: its block's
    scale code says NaN."""
    x32 = B.to_float32(x)
    g = None
    if fmt.tensor_scale:
        g = nvfp4_kernels.tensor_scale(xp, x32) if scale is None else scale
    if B.backend_name(x32) == "jax":  # one compiled function, not hundreds of eager ops
        codes, s_code = _jax_nvfp4_codes(fmt)(x32, g)
    else:
        codes, s_code = _nvfp4_codes(xp, x32, fmt, g)
    return Encoded(_store(xp, codes, 4), _store(xp, s_code, 8), fmt, scale=g)


def _nvfp4_codes(xp: Any, x32: Array, fmt: Any, g: Array | None) -> tuple[Array, Array]:
    """int32 element codes and per-block scale codes of NVFP4 (0x7F: NaN block)."""
    blocks, q, s, _, nan_block, _ = nvfp4_kernels.integer_parts(xp, x32, fmt, Ctx.of(x32), g)
    codes = ungroup(xp, _fp_codes(xp, I.split(xp, q), fmt.element, 0), blocks)
    s_code = _fp_codes(xp, I.split(xp, B.f32_to_i32(s)), fmt.scale_format, 0)
    s_code = xp.where(nan_block, xp.full_like(s_code, 0x7F), s_code)
    return codes, _squeeze(xp, s_code, blocks)


@functools.lru_cache(maxsize=64)
def _jax_nvfp4_codes(fmt: Any) -> Any:
    import jax
    import jax.numpy as jnp

    return jax.jit(lambda x32, g: _nvfp4_codes(B.namespace(jnp.zeros(0)), x32, fmt, g))


def _decode_nvfp4(xp: Any, c: Array, scales: Array, fmt: Any, scale: Array | None = None) -> Array:
    """``fl32(q * gs)`` per element (``gs = s``, or ``fl32(g * s)`` with the
    tensor scale ``g = scale``), exactly on every backend; scale code 0x7F: NaN block."""
    blocks, sc = _per_element_scales(xp, c, scales, fmt)
    s_bits = _fp_decode(xp, sc, fmt.scale_format, 0)
    nan_block = s_bits == I.QNAN_BITS
    s = B.i32_to_f32(xp.where(nan_block, xp.full_like(s_bits, 0x3F800000), s_bits))
    if fmt.tensor_scale:
        if scale is None:
            raise ValueError(f"decoding {fmt} needs its tensor scale g: pass the Encoded value that encode returned")
        g = scale if B.backend_name(scale) == B.backend_name(c) else B.convert_like(scale, c)
        s = nvfp4_kernels._per_block(xp, B.to_float32(g), blocks) * s
    q = blocks.group(xp, _fp_decode(xp, c, fmt.element, 0), 0)
    out = nvfp4_kernels.scaled_product_bits(xp, q, xp.broadcast_to(B.f32_to_i32(s), q.shape))
    out = xp.where(nan_block, xp.full_like(out, I.QNAN_BITS), out)
    return ungroup(xp, B.i32_to_f32(out), blocks)


# ----------------------------------------------------------------------------- storage
def _squeeze(xp: Any, per_block: Array, blocks: Any) -> Array:
    return xp.squeeze(per_block, axis=blocks.axis + 1)


def _store(xp: Any, codes: Array, width: int) -> Array:
    name = B.backend_name(codes)
    if name == "torch":
        import torch

        dt = torch.uint8 if width <= 8 else (torch.int16 if width <= 16 else torch.int32)
        if width <= 16 and width > 8:
            codes = xp.where(codes >= 1 << 15, codes - (1 << 16), codes)
        return codes.to(dt)
    dt = "uint8" if width <= 8 else ("uint16" if width <= 16 else "uint32")
    if name == "numpy":
        return np.asarray(codes).astype(np.uint32).astype(dt) if width > 16 else np.asarray(codes).astype(dt)
    import jax.numpy as jnp

    return codes.astype(jnp.uint32).astype(dt) if width > 16 else codes.astype(dt)


def _load(xp: Any, codes: Array) -> Array:
    name = B.backend_name(codes)
    if name == "torch":
        import torch

        if codes.dtype == torch.int16:
            return codes.to(torch.int32) & 0xFFFF
        if codes.dtype == torch.uint32:
            return codes.view(torch.int32)
        return codes.to(torch.int32)
    if name == "numpy":
        return np.asarray(codes).astype(np.uint32).view(np.int32) if codes.dtype == np.uint32 else np.asarray(codes).astype(np.int32)
    import jax
    import jax.numpy as jnp

    if codes.dtype == jnp.uint32:
        return jax.lax.bitcast_convert_type(codes, jnp.int32)
    return codes.astype(jnp.int32)


def _reject_nan(p: I.Parts, fmt: Format, no_nan_code: bool) -> None:
    if not no_nan_code:
        return
    xp = B.namespace(p.bits)
    if _eager_any(xp, p.mag > I.INF_BITS):
        raise ValueError(f"{fmt} has no NaN code; encode needs NaN-free input")


def _eager_any(xp: Any, cond: Array) -> bool:
    if B.is_tracing(cond):
        return False
    return bool(xp.any(cond))


#: family label -> encoder / decoder (a test checks they cover the family table)
_ENCODERS = {"XP": _encode_xp, "FP": _encode_fp, "BFP": _encode_bfp, "MXINT": _encode_bfp,
             "MXFP": _encode_mxfp, "SBFP": _encode_sbfp, "NVFP4": _encode_nvfp4}
_DECODERS = {"XP": _decode_xp, "FP": _decode_fp, "BFP": _decode_bfp, "MXINT": _decode_bfp,
             "MXFP": _decode_mxfp, "SBFP": _decode_sbfp, "NVFP4": _decode_nvfp4}
assert set(_ENCODERS) == set(_DECODERS) == set(LABELS)
