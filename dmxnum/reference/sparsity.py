"""Reference twin of :mod:`dmxnum.sparsity`: element by element, obviously right.

Every function takes NumPy arrays (PyTorch tensors and JAX arrays are
converted to NumPy) and returns NumPy arrays. Scores and weights are read as
exact Python floats; an ordering is a Python ``sorted`` on the tuple
``(score is NaN, -score, index)``: larger score first, NaN last, ties to
the lower index (``-0.0 == 0.0``, so signed zeros tie). Shares no code with
the kernels (only the sparseness value types, which are data).
"""

from __future__ import annotations

import math
from decimal import Decimal
from fractions import Fraction
from typing import Any

import numpy as np

from ..sparsity.values import Bernoulli, BlockTopK, Dense, TopK, parse_sparseness


def _host(x: Any) -> np.ndarray:
    if type(x).__module__.startswith("torch"):
        import torch

        if x.dtype == torch.bfloat16:
            import ml_dtypes

            return x.detach().cpu().view(torch.int16).numpy().view(ml_dtypes.bfloat16)
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _words(random_bits: Any, shape: tuple[int, ...]) -> list[int]:
    words = _host(random_bits)
    if words.shape != shape:
        raise ValueError(f"random_bits has shape {words.shape}; expected {shape}")
    if words.dtype == np.int32:
        words = words.view(np.uint32)
    return [int(r) for r in words.reshape(-1)]


def _ranked(values: list[float], indices: list[int]) -> list[int]:
    """``indices`` sorted best first: larger value, NaN last, ties to the lower index."""
    return sorted(indices, key=lambda i: (math.isnan(values[i]), 0.0 if math.isnan(values[i]) else -values[i], i))


def kept_count(spec: TopK, numel: int) -> int:
    """``round_half_even(density * numel)`` with the density read as its decimal representation."""
    return int(round(Decimal(repr(float(spec.density))) * numel))


def _nm_groups(shape: tuple[int, ...], spec: BlockTopK) -> list[list[int]]:
    """Flat (C-order) indices of every group of ``spec.m`` consecutive elements along ``spec.axis``."""
    ndim = len(shape)
    if ndim == 0 or not -ndim <= spec.axis < ndim:
        raise ValueError(f"{spec}: axis {spec.axis} does not exist for shape {shape}")
    axis = spec.axis % ndim
    if shape[axis] % spec.m:
        raise ValueError(f"{spec}: axis {spec.axis} of shape {shape} has length {shape[axis]}, not a multiple of M")
    flat = np.arange(int(np.prod(shape, dtype=np.int64)), dtype=np.int64).reshape(shape)
    lines = np.moveaxis(flat, axis, -1).reshape(-1, shape[axis])
    groups = []
    for line in lines:
        for start in range(0, shape[axis], spec.m):
            groups.append([int(i) for i in line[start : start + spec.m]])
    return groups


def mask(scores: Any, spec: Any, random_bits: Any = None) -> np.ndarray:
    """Reference keep-mask (NumPy bool array of ``scores``' shape); BERN needs ``random_bits``."""
    spec = parse_sparseness(spec)
    s = _host(scores)
    shape = tuple(s.shape)
    values = [float(v) for v in s.reshape(-1)]
    n = len(values)
    keep = [False] * n
    if isinstance(spec, Dense):
        keep = [True] * n
    elif isinstance(spec, TopK):
        for i in _ranked(values, list(range(n)))[: kept_count(spec, n)]:
            keep[i] = True
    elif isinstance(spec, BlockTopK):
        for group in _nm_groups(shape, spec):
            for i in _ranked(values, group)[: spec.k]:
                keep[i] = True
    elif isinstance(spec, Bernoulli):
        if random_bits is None:
            raise ValueError("the reference BERN mask needs random_bits (uint32 words of the scores' shape)")
        probs = [float(np.float32(v)) for v in s.reshape(-1)]  # scores read as float32 (RNE)
        for p in probs:
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"BERN scores must lie in [0, 1]; got {p!r}")
        for i, r in enumerate(_words(random_bits, shape)):
            keep[i] = Fraction(r >> 8, 1 << 24) < Fraction(probs[i])
    return np.array(keep, dtype=bool).reshape(shape)


def sparsify(w: Any, spec: Any, scores: Any = None, random_bits: Any = None) -> np.ndarray:
    """Reference ``sparsify``: kept elements of ``w`` unchanged, dropped ones +0; scores default to |w|."""
    spec = parse_sparseness(spec)
    w = _host(w)
    if isinstance(spec, Dense):
        return w.copy()
    if scores is None:
        scores = np.array([abs(float(v)) for v in w.reshape(-1)], dtype=np.float64).reshape(w.shape)
    keep = mask(scores, spec, random_bits).reshape(-1)
    flat = w.reshape(-1)
    out = [flat[i] if keep[i] else w.dtype.type(0.0) for i in range(flat.size)]
    return np.array(out, dtype=w.dtype).reshape(w.shape)


def is_sparse(w: Any, spec: Any) -> bool:
    """Reference ``is_sparse``: nonzero means ``value != 0`` (NaN counts as nonzero)."""
    spec = parse_sparseness(spec)
    w = _host(w)
    if isinstance(spec, Bernoulli):
        raise ValueError("is_sparse is undefined for BERN")
    if isinstance(spec, Dense):
        return True
    values = [float(v) for v in w.reshape(-1)]
    if isinstance(spec, TopK):
        return sum(v != 0 for v in values) <= kept_count(spec, len(values))
    return all(sum(values[i] != 0 for i in group) <= spec.k for group in _nm_groups(tuple(w.shape), spec))


def compress_nm(w: Any, k: int, m: int, axis: int = -1) -> tuple[np.ndarray, np.ndarray]:
    """Reference ``compress_nm``: per group the k largest-|w| values in ascending index order, and their indices."""
    w = _host(w)
    spec = BlockTopK(k, m, axis)
    flat = w.reshape(-1)
    magnitudes = [abs(float(v)) for v in flat]
    vals, idxs = [], []
    for group in _nm_groups(tuple(w.shape), spec):
        chosen = sorted(_ranked(magnitudes, group)[:k])
        vals.append([flat[i] for i in chosen])
        idxs.append([group.index(i) for i in chosen])
    ax = axis % w.ndim
    moved = list(w.shape)
    length = moved.pop(ax)
    out_moved = tuple(moved) + (length // m * k,)
    values = np.array(vals, dtype=w.dtype).reshape(out_moved)
    indices = np.array(idxs, dtype=np.uint8).reshape(out_moved)
    return np.moveaxis(values, -1, ax), np.moveaxis(indices, -1, ax)


def decompress_nm(values: Any, indices: Any, k: int, m: int, axis: int = -1) -> np.ndarray:
    """Reference ``decompress_nm``: each value written at its in-group index, +0 elsewhere."""
    values, indices = _host(values), _host(indices)
    ax = axis % values.ndim
    v = np.moveaxis(values, ax, -1)
    ind = np.moveaxis(indices, ax, -1)
    lead = v.shape[:-1]
    groups = v.shape[-1] // k
    out = np.zeros(lead + (groups * m,), dtype=values.dtype)
    for pos in np.ndindex(*lead):
        for g in range(groups):
            for t in range(k):
                out[pos + (g * m + int(ind[pos + (g * k + t,)]),)] = v[pos + (g * k + t,)]
    return np.moveaxis(out, -1, ax)


__all__ = ["mask", "sparsify", "is_sparse", "compress_nm", "decompress_nm", "kept_count"]
