"""``assert_bit_exact``: check a cast result against the exact reference."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _backend as B

Array = Any


def to_numpy(a: Array) -> np.ndarray:
    """A NumPy copy of a NumPy, JAX or PyTorch array (bfloat16 via ml_dtypes)."""
    name = B.backend_name(a)
    if name == "torch":
        import torch

        t = a.detach().cpu()
        if t.dtype == torch.bfloat16:
            import ml_dtypes

            return t.view(torch.int16).numpy().view(ml_dtypes.bfloat16)
        if t.dtype == torch.uint32:
            return t.view(torch.int32).numpy().view(np.uint32)
        return t.numpy()
    return np.asarray(a)


def same_bits(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Elementwise: equal bit patterns, or both NaN."""
    a = np.asarray(a)
    b = np.asarray(b)
    ua = a.view(f"uint{8 * a.dtype.itemsize}")
    ub = b.view(f"uint{8 * b.dtype.itemsize}")
    both_nan = np.isnan(a.astype(np.float32)) & np.isnan(b.astype(np.float32))
    return (ua == ub) | both_nan


def assert_bit_exact(
    actual: Array,
    fmt: Any,
    x: Array,
    random_bits: Array | None = None,
    *,
    ignore_zero_sign: bool = False,
) -> None:
    """Assert that ``actual`` equals ``dmxnum.reference.cast(x, fmt)`` bit for bit.

    ``x`` and ``actual`` may be NumPy, JAX or PyTorch arrays of any float
    dtype; ``x`` is converted to float32 (RNE) as ``dmxnum.cast`` does and the
    reference result is converted to ``actual``'s dtype. NaN matches any NaN.
    ``random_bits`` (uint32, ``x``'s shape) must be the words the stochastic
    cast used. On failure the message lists the first mismatching elements
    with their input, expected and actual bit patterns.
    """
    from .. import reference

    xs = to_numpy(x)
    x32 = xs.astype(np.float32)
    rb = None if random_bits is None else to_numpy(random_bits).astype(np.int64).astype(np.uint32)
    expected = reference.cast(x32, fmt, random_bits=rb)
    got = to_numpy(actual)
    if got.shape != expected.shape:
        raise AssertionError(f"shape mismatch: actual {got.shape}, reference {expected.shape}")
    expected = expected.astype(got.dtype)
    ok = same_bits(got, expected)
    if ignore_zero_sign:
        ok |= (got.astype(np.float32) == 0) & (expected.astype(np.float32) == 0)
    if not ok.all():
        bad = np.argwhere(~ok)[:8]
        lines = []
        for idx in bad:
            i = tuple(int(v) for v in idx)
            lines.append(
                f"  at {i}: x={x32[i]!r} (0x{int(x32.view(np.uint32)[i]):08x}) "
                f"expected={expected[i]!r} actual={got[i]!r}"
            )
        raise AssertionError(
            f"{int((~ok).sum())} of {ok.size} elements differ from the reference for {fmt}:\n"
            + "\n".join(lines)
        )
