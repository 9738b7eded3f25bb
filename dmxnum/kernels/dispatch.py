"""Dispatch a format value to its kernel on float32 arrays."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _backend as B
from ..formats.block import BlockFloatingPoint, MXInt
from ..formats.fixed import FixedPoint
from ..formats.floating import FloatingPoint
from ..formats.mx import MXFloat
from ..formats.scaled import ScaledBFP
from . import bits as I

Array = Any


def cast_float32(x: Array, fmt: Any, words: Array | None = None) -> Array:
    """Cast a float32 array ``x`` to ``fmt``; ``words`` are the int32 ``r >> 8``
    (JAX: or the raw uint32 words ``r``, see :func:`.._backend.as_top24`)."""
    xp = B.namespace(x)
    if x.ndim == 0 and getattr(fmt, "blocked", False):
        raise ValueError(f"blocked format {fmt} needs an array with ndim >= 1, got a 0-d array")
    if x.size == 0 if B.backend_name(x) != "torch" else x.numel() == 0:
        if getattr(fmt, "blocked", False):
            from .blocks import normalize_axis

            normalize_axis(x.ndim, fmt.axis, fmt)
        return x
    from .fastpath import fast_path

    path = fast_path(x, fmt)
    if path is not None:
        if not getattr(path, "takes_raw_words", False):
            words = B.as_top24(words)
        if B.backend_name(x) == "numpy":
            with np.errstate(all="ignore"):  # Inf/NaN arithmetic is intended here
                out = path(xp, x, words)
        else:
            out = path(xp, x, words)
        if out is not None:
            return out
    return integer_path(xp, x, fmt, words)


def integer_path(xp: Any, x: Array, fmt: Any, words: Array | None) -> Array:
    """The exact integer pipeline for ``fmt`` on float32 ``x`` (every backend)."""
    words = B.as_top24(words)
    p = I.split(xp, B.f32_to_i32(x))
    if isinstance(fmt, FloatingPoint):
        out = _floating(xp, p, fmt, words)
    elif isinstance(fmt, FixedPoint):
        from .fixed import cast_fixed_bits

        out = cast_fixed_bits(xp, p, fmt, words)
    elif isinstance(fmt, BlockFloatingPoint):
        from .block import cast_bfp_bits

        out = cast_bfp_bits(xp, p, fmt, words)
    elif isinstance(fmt, MXInt):
        from .block import cast_bfp_bits

        out = cast_bfp_bits(xp, p, fmt.as_bfp)
    elif isinstance(fmt, MXFloat):
        from .block import cast_mxfp_bits

        out = cast_mxfp_bits(xp, p, fmt)
    elif isinstance(fmt, ScaledBFP):
        from .scaled import cast_sbfp

        return cast_sbfp(xp, x, p, fmt, words)
    else:
        raise TypeError(f"not a format: {fmt!r}")
    return B.i32_to_f32(out)


def _floating(xp: Any, p: I.Parts, fmt: FloatingPoint, words: Array | None) -> Array:
    from .floating import cast_float_bits

    return cast_float_bits(xp, p, fmt, words)
