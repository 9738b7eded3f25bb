"""Moving arrays between the caller's kind (NumPy, JAX, PyTorch) and NumPy.

The PTQ algorithms compute on NumPy on the host (float32 for every cast
step, float64 for GPTQ's linear algebra) and hand results back in the
kind, device and dtype they were given.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _backend as B

Array = Any


def host(x: Array, what: str = "input") -> np.ndarray:
    """``x`` (a NumPy, JAX or PyTorch float array) as a NumPy float64 copy.

    float16, bfloat16, float32 and float64 values convert exactly. Raises
    ``TypeError`` for anything else, integer and bool arrays included."""
    B.backend_name(x)  # TypeError for anything but a NumPy, JAX or PyTorch array
    B.check_float(x, what)
    if B.backend_name(x) == "torch":
        import torch

        return x.detach().to(torch.float64).cpu().numpy()
    return np.asarray(x).astype(np.float64)


def float32_bits(x: np.ndarray) -> np.ndarray:
    """int32 bit patterns of the float32 values of ``x`` (RNE from wider floats)."""
    return np.ascontiguousarray(x, dtype=np.float32).view(np.int32)


def magnitude_max(x32: np.ndarray, axis: int) -> np.ndarray:
    """int32 bits of ``max |x|`` along ``axis`` of a float32 array (the block
    maxima the block kernels take; NaN and ±Inf compare above finite values)."""
    return np.max(float32_bits(x32) & 0x7FFFFFFF, axis=axis)


def like(y: np.ndarray, x: Array) -> Array:
    """The float32 NumPy array ``y`` in ``x``'s kind, device and dtype (RNE for narrower floats)."""
    out = B.convert_like(np.ascontiguousarray(y, dtype=np.float32), x)
    return out if B.dtype_name(x) == "float32" else B.to_dtype_like(out, x)
