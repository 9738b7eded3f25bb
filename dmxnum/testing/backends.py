"""Move NumPy test data to each backend, for tests that run on all three."""

from __future__ import annotations

import importlib.util
from typing import Any

import numpy as np

#: The backends dmxnum supports, in a fixed order.
BACKENDS = ("numpy", "jax", "torch")


def available_backends() -> tuple[str, ...]:
    """The subset of :data:`BACKENDS` importable here."""
    return tuple(b for b in BACKENDS if b == "numpy" or importlib.util.find_spec(b) is not None)


def to_backend(a: np.ndarray | None, backend: str) -> Any:
    """``a`` as an array of ``backend`` with the same dtype and bits (uint32 -> int32 bits on torch)."""
    if a is None:
        return None
    a = np.asarray(a)
    if backend == "numpy":
        return a.copy()
    if backend == "jax":
        import jax.numpy as jnp

        return jnp.asarray(a)
    if backend == "torch":
        import torch

        if a.dtype == np.uint32:
            return torch.from_numpy(a.view(np.int32).copy())
        if a.dtype.name == "bfloat16":
            return torch.from_numpy(a.view(np.int16).copy()).view(torch.bfloat16)
        return torch.from_numpy(a.copy())
    raise ValueError(f"unknown backend {backend!r}; expected one of {BACKENDS}")
