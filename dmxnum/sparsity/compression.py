"""Compressed N:M storage: :func:`compress_nm` and :func:`decompress_nm`.

Layout, for ``w`` whose axis ``a`` has length ``L = G * M``: ``values`` and
``indices`` have ``w``'s shape with axis ``a`` of length ``G * K``; along
that axis, positions ``g*K .. g*K + K - 1`` hold group ``g``'s K kept values
in ascending in-group index order and their in-group indices (uint8,
``0 <= index < M``, strictly increasing within a group). Kept positions
are those of ``mask(|w|, BTOPK{K:M,a})`` (largest magnitudes; NaN lowest;
ties to the lower index), so a group with fewer than K nonzeros also stores
some zeros. ``decompress_nm`` writes the values back and +0 elsewhere.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._backend import asarray_like, backend_name, check_float, is_tracing, namespace
from .api import magnitude, normalize_axis
from .kernels import group_view, nm_keep, ungroup
from .values import BlockTopK

Array = Any


def _check_km(k: int, m: int) -> None:
    for what, v in (("K", k), ("M", m)):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool):
            raise TypeError(f"{what} must be an integer, got {v!r}")
    if not 1 <= m <= 256:
        raise ValueError(f"compressed N:M storage needs 1 <= M <= 256 (uint8 indices); got M = {m}")
    if not 1 <= k <= m:
        raise ValueError(f"compressed N:M storage needs 1 <= K <= M = {m}; got K = {k}")


def compress_nm(w: Array, k: int, m: int, axis: int = -1) -> tuple[Array, Array]:
    """Compress ``w`` to its ``k`` largest-magnitude values per group of ``m`` along ``axis``.

    Returns ``(values, indices)`` as described in the module docstring:
    values in ``w``'s dtype (kept bit for bit, NaN included), indices
    uint8, both ``w``'s backend. ``ValueError`` for a bad axis, an axis
    length not a multiple of ``m``, or K, M outside ``1 <= K <= M <= 256``.
    """
    check_float(w, "w")
    _check_km(k, m)
    spec = BlockTopK(int(k), int(m), int(axis))
    ax = normalize_axis(spec, tuple(w.shape))
    xp = namespace(w)
    keep = nm_keep(magnitude(w), spec.k, spec.m, ax)
    kg = xp.astype(group_view(keep, spec.m, ax), xp.int32)  # (..., G, M)
    seen = xp.cumulative_sum(kg, axis=-1)  # kept count up to and including each position
    slots = asarray_like(np.arange(spec.k).reshape(spec.k, 1), kg, "int32")  # (K, 1)
    # index of the (t+1)-th kept element = number of positions whose running count is <= t
    idx = xp.sum(xp.astype(seen[..., None, :] <= slots, xp.int32), axis=-1)  # (..., G, K)
    if backend_name(w) == "torch":
        idx = xp.astype(idx, xp.int64)
    values = xp.take_along_axis(group_view(w, spec.m, ax), idx, axis=-1)
    out_shape = list(w.shape)
    out_shape[ax] = out_shape[ax] // spec.m * spec.k
    return (
        ungroup(values, tuple(out_shape), ax),
        ungroup(xp.astype(idx, xp.uint8), tuple(out_shape), ax),
    )


def decompress_nm(values: Array, indices: Array, k: int, m: int, axis: int = -1) -> Array:
    """Scatter compressed N:M ``(values, indices)`` back to a dense array.

    ``values``/``indices`` as returned by :func:`compress_nm(w, k, m, axis)
    <compress_nm>` (axis length ``G * k``); the result has that axis of
    length ``G * m``, ``values``' dtype and backend, the stored values at
    their indices and +0 elsewhere. ``decompress_nm(*compress_nm(w, k, m,
    a), k, m, a)`` equals ``w`` bit for bit whenever
    ``is_sparse(w, BTOPK{k:m,a})``, and equals ``sparsify(w, BTOPK{k:m,a})``
    always. Eagerly checked: indices below ``m`` and strictly increasing in
    each group (``ValueError`` otherwise).
    """
    check_float(values, "values")
    _check_km(k, m)
    if tuple(indices.shape) != tuple(values.shape):
        raise ValueError(f"indices have shape {tuple(indices.shape)}; expected values' shape {tuple(values.shape)}")
    ax = normalize_axis(BlockTopK(int(k), int(k), int(axis)), tuple(values.shape))
    xp = namespace(values)
    vg = group_view(values, k, ax)  # (..., G, K)
    ig = xp.astype(group_view(indices, k, ax), xp.int32)
    if not is_tracing(values):
        bad = xp.any(ig >= m) | xp.any(ig < 0)
        if k > 1:
            bad = bad | xp.any(ig[..., 1:] <= ig[..., :-1])
        if bool(bad):
            raise ValueError(
                f"N:M indices must lie in 0..{m - 1} and increase strictly within each group of {k}; "
                "pass the indices returned by compress_nm"
            )
    positions = asarray_like(np.arange(m), ig, "int32")  # (M,)
    out = None
    for t in range(k):  # K vectorized steps over all groups at once
        hit = ig[..., t : t + 1] == positions  # (..., G, M)
        v = vg[..., t : t + 1]
        out = xp.where(hit, v, xp.zeros_like(v)) if out is None else xp.where(hit, v, out)
    out_shape = list(values.shape)
    out_shape[ax] = out_shape[ax] // k * m
    return ungroup(out, tuple(out_shape), ax)
