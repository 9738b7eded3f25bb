"""``dmxnum.reference.cast``: the slow, exact twin of ``dmxnum.cast`` (NumPy only).

Each float32 element is decoded from its bit pattern to an exact rational,
the format's SPEC rule is applied with ``fractions.Fraction`` arithmetic, and
the result is encoded back to float32 bits exactly. Blocked formats are cut
along their axis into blocks of ``b`` consecutive elements (the last one may
be shorter) and cast one block at a time. No numeric code is shared with the
kernels in ``dmxnum/kernels`` or ``dmxnum/casting.py``.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any, Callable

import numpy as np

from ..errors import MissingRandomnessError, UnsupportedDtypeError
from ..formats import (
    BlockFloatingPoint,
    FixedPoint,
    FloatingPoint,
    Format,
    MXFloat,
    MXInt,
    Same,
    ScaledBFP,
)
from ..formats.families import family_label
from .block import cast_bfp_block, mxint_as_bfp
from .fixed import cast_fixed_element
from .float32 import NAN, Num, decode_bits, encode_bits, fl32, inf
from .floating import cast_floating_element
from .mx import cast_mx_block
from .nvfp4 import cast_nvfp4_block, default_tensor_scale
from .scaled import cast_sbfp_block


def _as_format(fmt: Any) -> Format:
    if isinstance(fmt, Format):
        return fmt
    if isinstance(fmt, str):
        import dmxnum  # lazily: the grammar is optional for the reference

        return dmxnum.parse(fmt)
    raise TypeError(f"expected a dmxnum Format value or a shorthand string, got {fmt!r}")


def _python_float_to_num(v: float) -> Num:
    """A Python float (binary64) rounded to float32 exactly (RNE)."""
    if math.isnan(v):
        return NAN
    if math.isinf(v):
        return inf(v < 0)
    negative = math.copysign(1.0, v) < 0
    return fl32(Fraction(v), negative)


def float32_bits(x: Any) -> np.ndarray:
    """The uint32 bit patterns of ``x`` converted to float32.

    float32 input is taken as is; float16, bfloat16 and float64 are converted
    to float32 exactly (RNE, overflow to ±Inf, NaN stays NaN) from their exact
    values. Integer, bool, complex or object dtypes raise
    ``UnsupportedDtypeError``.
    """
    arr = np.asarray(x)
    dtype = arr.dtype
    if dtype == np.float32:
        return np.array(arr, order="C", copy=True).view(np.uint32)
    is_float = dtype.kind == "f" or dtype.name == "bfloat16"
    if not is_float or dtype.itemsize > 8:
        raise UnsupportedDtypeError(
            f"the reference casts floating arrays (float16, bfloat16, float32, float64); got dtype {dtype}"
        )
    flat = [encode_bits(_python_float_to_num(float(v))) for v in arr.ravel()]
    return np.array(flat, dtype=np.uint32).reshape(arr.shape)


def _word_array(random_bits: Any, shape: tuple[int, ...]) -> np.ndarray:
    """``random_bits`` as uint32 words of ``shape``: uint32, int32 (bits), or any integer array in 0 .. 2^32-1."""
    words = np.asarray(random_bits)
    if words.dtype == np.int32:
        words = words.view(np.uint32)
    elif words.dtype != np.uint32:
        if words.dtype.kind not in "iu":
            raise UnsupportedDtypeError(
                f"random_bits must be a uint32 (or int32 holding the bits) array, got dtype {words.dtype}"
            )
        if words.size and (words.min() < 0 or words.max() > 0xFFFFFFFF):
            raise ValueError(
                f"random_bits of dtype {words.dtype} must lie in 0 .. 2^32 - 1, "
                f"got {words.min()} .. {words.max()}"
            )
        words = words.astype(np.uint32)
    if words.shape != shape:
        raise ValueError(f"random_bits has shape {words.shape}; it must have the input's shape {shape}")
    return words


def _elementwise(bits: np.ndarray, words: np.ndarray | None, fn: Callable[[Num, "int | None"], Num]) -> np.ndarray:
    flat_words = None if words is None else words.ravel()
    out = np.empty(bits.size, dtype=np.uint32)
    for i, b in enumerate(bits.ravel()):
        word = None if flat_words is None else int(flat_words[i])
        out[i] = encode_bits(fn(decode_bits(int(b)), word))
    return out.reshape(bits.shape)


def _blockwise(
    bits: np.ndarray,
    words: np.ndarray | None,
    block_size: int,
    axis: int,
    fn: Callable[[list[Num], list["int | None"]], list[Num]],
) -> np.ndarray:
    ndim = bits.ndim
    if ndim == 0:
        raise ValueError("blocked formats need an array with ndim >= 1, got a 0-d array")
    if not -ndim <= axis < ndim:
        raise ValueError(f"block axis {axis} is out of range for an array with ndim {ndim} (valid: {-ndim}..{ndim - 1})")
    if bits.size == 0:
        return bits.copy()
    moved = np.moveaxis(bits, axis, -1)
    length = moved.shape[-1]
    rows = moved.reshape(-1, length)
    word_rows = None if words is None else np.moveaxis(words, axis, -1).reshape(-1, length)
    out = np.empty_like(rows)
    for r in range(rows.shape[0]):
        for start in range(0, length, block_size):
            stop = min(start + block_size, length)
            block = [decode_bits(int(b)) for b in rows[r, start:stop]]
            if word_rows is None:
                block_words: list[int | None] = [None] * len(block)
            else:
                block_words = [int(w) for w in word_rows[r, start:stop]]
            result = fn(block, block_words)
            out[r, start:stop] = [encode_bits(y) for y in result]
    return np.moveaxis(out.reshape(moved.shape), -1, axis)


def cast(x: Any, fmt: Format | str, random_bits: Any = None, scale: Any = None) -> np.ndarray:
    """Cast ``x`` to ``fmt`` exactly, element by element; returns a float32 NumPy array.

    ``x``: a NumPy float32 array (float16, bfloat16 and float64 are first
    converted to float32 with RNE; integer/bool dtypes raise
    ``UnsupportedDtypeError``), any shape. ``fmt``: a format value or a
    shorthand string (parsed with ``dmxnum.parse``). ``random_bits``: a uint32
    array of ``x``'s shape (int32 holding the bits, or any integer array with
    values in ``0 .. 2^32-1``, also accepted), one word per element; required iff the format rounds stochastically (else
    ``MissingRandomnessError``) and ignored otherwise.

    The result has ``x``'s shape and follows SPEC section 3 bit for bit: NaN
    stays NaN (as the quiet NaN ``0x7FC00000``), zero results keep the input's
    sign (unsigned FP gives ``+0`` for every input <= 0), blocked formats need
    ``ndim >= 1`` and an axis in ``-ndim .. ndim-1`` (else ``ValueError``, checked
    also for empty arrays), and an empty array gives an empty array. ``SAME``
    returns the float32 input unchanged (a copy).

    ``scale``: a static scale ``s`` (a float or a float array broadcasting to
    ``x``'s shape without enlarging it, converted to float32 exactly with
    RNE). The result is then, per element, ``fl32(cast(fl32(x / s)) * s)``
    (exact rational division and product, each rounded once), the inner cast
    seeing the whole array of quotients (blocks, words). For ``NVFP4(T)``
    ``scale`` is the tensor scale ``g`` (extent 1 along the block axis).
    ``SAME`` ignores it.
    """
    fmt = _as_format(fmt)
    bits = float32_bits(x)
    words = None
    if not isinstance(fmt, Same) and fmt.stochastic:
        if random_bits is None:
            raise MissingRandomnessError(
                f"{fmt} rounds stochastically: pass random_bits (a uint32 array of shape {bits.shape})"
            )
        words = _word_array(random_bits, bits.shape)

    if isinstance(fmt, Same):
        out = bits
    elif scale is not None:
        out = _cast_scaled(bits, words, fmt, float32_bits(scale))
    else:
        out = _FAMILY_CASTS[family_label(fmt)](bits, words, fmt)
    return np.array(out, order="C", copy=True).view(np.float32)


def _cast_scaled(bits: np.ndarray, words: np.ndarray | None, fmt: Format, s_bits: np.ndarray) -> np.ndarray:
    """``fl32(cast(fl32(x / s)) * s)`` per element (``s`` broadcast); NVFP4(T): ``g = s``."""
    if np.broadcast_shapes(s_bits.shape, bits.shape) != bits.shape:
        raise ValueError(f"scale of shape {s_bits.shape} does not broadcast to the input's shape {bits.shape}")
    if getattr(fmt, "tensor_scale", False):
        return _FAMILY_CASTS[family_label(fmt)](bits, words, fmt, tensor_scale=s_bits.view(np.float32))
    s_all = np.broadcast_to(s_bits, bits.shape)
    pairs = list(zip(bits.ravel().tolist(), s_all.ravel().tolist()))
    quot = np.array([encode_bits(_scaled(decode_bits(b), decode_bits(s), divide=True)) for b, s in pairs], np.uint32)
    inner = _FAMILY_CASTS[family_label(fmt)](quot.reshape(bits.shape), words, fmt).ravel().tolist()
    out = [encode_bits(_scaled(decode_bits(y), decode_bits(s), divide=False)) for y, (_, s) in zip(inner, pairs)]
    return np.array(out, np.uint32).reshape(bits.shape)


def _scaled(v: Num, s: Num, divide: bool) -> Num:
    """``fl32(v / s)`` or ``fl32(v * s)`` for a positive finite ``s`` (NaN, ±Inf
    and zeros keep their kind and sign)."""
    if not s.is_finite or s.magnitude <= 0 or s.negative:
        raise ValueError(f"a static scale must be positive and finite, got {s}")
    if not v.is_finite or v.is_zero:
        return v
    return fl32(v.value / s.magnitude if divide else v.value * s.magnitude)


def _cast_xp(bits: np.ndarray, words: np.ndarray | None, fmt: FixedPoint) -> np.ndarray:
    return _elementwise(bits, words, lambda v, w: cast_fixed_element(v, fmt, w))


def _cast_fp(bits: np.ndarray, words: np.ndarray | None, fmt: FloatingPoint) -> np.ndarray:
    return _elementwise(bits, words, lambda v, w: cast_floating_element(v, fmt, w))


def _cast_bfp(bits: np.ndarray, words: np.ndarray | None, fmt: BlockFloatingPoint) -> np.ndarray:
    return _blockwise(bits, words, fmt.block_size, fmt.axis, lambda b, w: cast_bfp_block(b, fmt, w))


def _cast_mxint(bits: np.ndarray, words: np.ndarray | None, fmt: MXInt) -> np.ndarray:
    return _cast_bfp(bits, None, mxint_as_bfp(fmt))


def _cast_mxfp(bits: np.ndarray, words: np.ndarray | None, fmt: MXFloat) -> np.ndarray:
    return _blockwise(bits, None, fmt.block_size, fmt.axis, lambda b, w: cast_mx_block(b, fmt))


def _cast_sbfp(bits: np.ndarray, words: np.ndarray | None, fmt: ScaledBFP) -> np.ndarray:
    return _blockwise(bits, words, fmt.block_size, fmt.axis, lambda b, w: cast_sbfp_block(b, fmt, w))


def _cast_nvfp4(bits: np.ndarray, words: np.ndarray | None, fmt: Any, tensor_scale: Any = None) -> np.ndarray:
    """NVFP4 of float32 ``bits``; two level with the tensor scale ``tensor_scale``
    (a float, or an array broadcastable to the input with extent 1 along the
    block axis, converted to float32), by default that of the whole array."""
    if not fmt.tensor_scale:
        return _blockwise(bits, None, fmt.block_size, fmt.axis, lambda b, w: cast_nvfp4_block(b, None))
    if tensor_scale is None:
        g = default_tensor_scale(decode_bits(int(b)) for b in bits.ravel())
        g_bits = np.full(bits.shape, encode_bits(g), dtype=np.uint32)
    else:
        g32 = np.asarray(tensor_scale, dtype=np.float64).astype(np.float32)
        g_bits = np.broadcast_to(g32.view(np.uint32), bits.shape)
    # each element carries its block's tensor scale (bits) in place of a random word
    return _blockwise(bits, g_bits, fmt.block_size, fmt.axis,
                      lambda b, w: cast_nvfp4_block(b, decode_bits(w[0])))


#: family label (``dmxnum.formats.families``' table) -> exact cast of float32 bits
_FAMILY_CASTS: dict[str, Callable[..., np.ndarray]] = {
    "XP": _cast_xp, "FP": _cast_fp, "BFP": _cast_bfp, "MXINT": _cast_mxint, "MXFP": _cast_mxfp, "SBFP": _cast_sbfp,
    "NVFP4": _cast_nvfp4,
}
