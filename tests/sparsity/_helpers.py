"""Shared helpers for the sparsity tests: moving NumPy arrays to each backend and back."""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import ml_dtypes
import numpy as np
import torch

BACKENDS = ("numpy", "jax", "torch")


def to_backend(x: np.ndarray, backend: str) -> Any:
    """A copy of NumPy array ``x`` on ``backend`` (bit-exact; bfloat16 supported)."""
    if backend == "numpy":
        return x.copy()
    if backend == "jax":
        return jnp.asarray(x)
    if x.dtype == ml_dtypes.bfloat16:
        return torch.from_numpy(x.view(np.int16).copy()).view(torch.bfloat16)
    if x.dtype == np.uint32:
        return torch.from_numpy(x.view(np.int32).copy())
    return torch.from_numpy(x.copy())


def to_numpy(x: Any) -> np.ndarray:
    """Back to NumPy, bit-exact."""
    if isinstance(x, torch.Tensor):
        if x.dtype == torch.bfloat16:
            return x.detach().cpu().view(torch.int16).numpy().view(ml_dtypes.bfloat16)
        return x.detach().cpu().numpy()
    return np.asarray(x)


def bits(x: np.ndarray) -> np.ndarray:
    """Bit patterns of a float array, for bit-for-bit comparisons."""
    return x.view({2: np.uint16, 4: np.uint32, 8: np.uint64}[x.dtype.itemsize])
