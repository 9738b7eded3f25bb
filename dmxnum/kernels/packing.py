"""Sub-byte packing of element codes along the last axis (SPEC section 3).

In each row (all axes but the last), code ``i`` of width ``w`` bits
occupies bits ``[i*w, (i+1)*w)`` of a little-endian bit stream: bit ``j``
of the stream is bit ``j mod 8`` of byte ``j // 8``. So two 4-bit codes
share a byte (code 0 in the low nibble), four 6-bit codes fill 3 bytes,
and each row is padded with zero bits to whole bytes: a row of ``n`` codes
takes ``ceil(n * w / 8)`` bytes.

Vectorized over the array API (NumPy, JAX under ``jit``, PyTorch eager and
compiled) with no loop over elements: codes are expanded to bits, the bits
of a row are laid end to end and padded, and every 8 of them are weighted
by powers of two and summed (unpacking does the reverse).
"""

from __future__ import annotations

from typing import Any

from .. import _backend as B

Array = Any


def _check_width(width: Any) -> int:
    if not isinstance(width, int) or isinstance(width, bool) or not 1 <= width <= 7:
        raise ValueError(f"code width must be an integer 1..7 bits to pack, got {width!r}")
    return width


def _bits(xp: Any, v: Array, width: int) -> Array:
    """Bits ``0 .. width-1`` of int32 ``v`` on a new last axis (int32 0/1)."""
    shifts = xp.arange(width, dtype=xp.int32, **B.device_kwargs(v))
    return xp.bitwise_right_shift(xp.expand_dims(v, axis=-1), shifts) & 1


def _weigh(xp: Any, bits: Array) -> Array:
    """Sum ``bits[..., j] * 2^j`` over the last axis (int32)."""
    width = bits.shape[-1]
    weights = xp.bitwise_left_shift(xp.ones(width, dtype=xp.int32, **B.device_kwargs(bits)),
                                    xp.arange(width, dtype=xp.int32, **B.device_kwargs(bits)))
    return xp.sum(bits * weights, axis=-1, dtype=xp.int32)


def packed_length(length: int, width: int) -> int:
    """Bytes per packed row of ``length`` codes of ``width`` bits: ``ceil(length * width / 8)``."""
    return -(-length * width // 8)


def pack_codes(codes: Array, width: int) -> Array:
    """Pack ``width``-bit codes (1..7 bits) along the last axis into uint8 bytes.

    ``codes``: an integer array (NumPy, JAX or PyTorch) of shape ``(..., n)``
    whose values lie in ``0 .. 2^width - 1`` (higher bits are ignored).
    Returns uint8 of shape ``(..., ceil(n * width / 8))``: code ``i`` of a
    row is bits ``[i*width, (i+1)*width)`` of that row's little-endian bit
    stream, the row padded with zero bits. ``n = 0`` gives zero bytes per
    row. Raises ``ValueError`` for a width outside 1..7 and for a 0-d
    array (there is no last axis to pack along), ``TypeError`` for a
    non-integer dtype.
    """
    width = _check_width(width)
    _check_integer(codes, "codes")
    if codes.ndim == 0:
        raise ValueError(
            "pack_codes needs an array with ndim >= 1 (codes are packed along the last axis), got a 0-d array"
        )
    xp = B.namespace(codes)
    lead, n = tuple(codes.shape[:-1]), int(codes.shape[-1])
    nbytes = packed_length(n, width)
    bits = _bits(xp, xp.astype(codes, xp.int32), width)  # (..., n, width)
    stream = xp.reshape(bits, lead + (n * width,))
    pad = nbytes * 8 - n * width
    if pad:
        zeros = xp.zeros(lead + (pad,), dtype=xp.int32, **B.device_kwargs(codes))
        stream = xp.concat((stream, zeros), axis=-1)
    out = _weigh(xp, xp.reshape(stream, lead + (nbytes, 8)))
    return xp.astype(out, xp.uint8)


def unpack_codes(packed: Array, width: int, length: int) -> Array:
    """The inverse of :func:`pack_codes`: ``length`` codes of ``width`` bits per row.

    ``packed``: uint8 bytes of shape ``(..., m)`` with ``m`` at least
    ``ceil(length * width / 8)`` (bytes and bits beyond those are ignored).
    Returns uint8 codes of shape ``(..., length)``. Raises ``ValueError`` for
    a width outside 1..7, a negative ``length``, too few bytes or a 0-d
    array, ``TypeError`` for a non-integer dtype.
    """
    width = _check_width(width)
    _check_integer(packed, "packed")
    if packed.ndim == 0:
        raise ValueError("unpack_codes needs an array with ndim >= 1 (bytes along the last axis), got a 0-d array")
    if not isinstance(length, int) or isinstance(length, bool) or length < 0:
        raise ValueError(f"length must be a non-negative int (codes per row), got {length!r}")
    xp = B.namespace(packed)
    lead, m = tuple(packed.shape[:-1]), int(packed.shape[-1])
    nbytes = packed_length(length, width)
    if m < nbytes:
        raise ValueError(f"{length} codes of {width} bits need {nbytes} bytes per row; the last axis has {m}")
    bits = _bits(xp, xp.astype(packed[..., :nbytes], xp.int32) & 0xFF, 8)  # (..., nbytes, 8)
    stream = xp.reshape(bits, lead + (nbytes * 8,))[..., : length * width]
    out = _weigh(xp, xp.reshape(stream, lead + (length, width)))
    return xp.astype(out, xp.uint8)


def _check_integer(a: Array, what: str) -> None:
    name = B.dtype_name(a)
    if not (name.startswith("int") or name.startswith("uint")):
        raise TypeError(f"{what} must be an integer array (uint8 codes), got dtype {name}")
