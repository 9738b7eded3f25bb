"""Compressed N:M storage: layout, exact round trips, equality with the reference."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dmxnum.reference import sparsity as ref
from dmxnum.sparsity import BlockTopK, compress_nm, decompress_nm
from dmxnum.testing.sparsity_strategies import score_arrays

from ._helpers import BACKENDS, bits, to_backend, to_numpy


@st.composite
def nm_weights(draw, backend):
    """(w, k, m, axis) with w's axis length a multiple of m; JAX on fixed shape buckets."""
    if backend == "jax":
        shape = (4, 24)  # one bucket: every new (shape, K, M, axis) costs seconds of XLA compiles
        axis = draw(st.sampled_from([a for a in (0, 1, -1) if -len(shape) <= a < len(shape)]))
        k, m = draw(st.sampled_from([(k, m) for k, m in ((1, 2), (2, 4), (3, 8), (2, 3)) if shape[axis] % m == 0]))
        return draw(score_arrays(shape)), k, m, axis
    else:
        ndim = draw(st.integers(1, 3))
        axis = draw(st.sampled_from([a for a in (0, 1, -1) if -ndim <= a < ndim]))
        m = draw(st.integers(1, 16))
        shape = [draw(st.integers(1, 4)) for _ in range(ndim)]
        shape[axis] = m * draw(st.integers(1, 3))
        shape = tuple(shape)
    k = draw(st.integers(1, m))
    return draw(score_arrays(shape)), k, m, axis


@pytest.mark.parametrize("backend", BACKENDS)
@given(data=st.data())
def test_compress_equals_reference_and_round_trips(backend, data):
    w, k, m, axis = data.draw(nm_weights(backend))
    values, indices = compress_nm(to_backend(w, backend), k, m, axis)
    v, i = to_numpy(values), to_numpy(indices)
    rv, ri = ref.compress_nm(w, k, m, axis)
    assert i.dtype == np.uint8 and v.dtype == w.dtype and v.shape == rv.shape
    np.testing.assert_array_equal(bits(v), bits(rv))
    np.testing.assert_array_equal(i, ri)
    dense = to_numpy(decompress_nm(values, indices, k, m, axis))
    np.testing.assert_array_equal(bits(dense), bits(ref.decompress_nm(rv, ri, k, m, axis)))
    # decompress(compress(w)) is sparsify(w) always (sparsify itself is checked against the
    # reference in test_masks)
    spec = BlockTopK(k, m, axis)
    sparse_w = ref.sparsify(w, spec)
    np.testing.assert_array_equal(bits(dense), bits(sparse_w))
    # ... and w itself when w already is k:m sparse and has no NaN
    if ref.is_sparse(w, spec) and not np.isnan(w).any():
        np.testing.assert_array_equal(dense, w)  # as numbers: a dropped -0 comes back as +0
        nonzero = w != 0
        np.testing.assert_array_equal(bits(dense)[nonzero], bits(w)[nonzero])
    if np.isnan(sparse_w).any():
        return  # NaN ranks below 0, so a kept NaN may give way to a zero (see test_nan_weights)
    again = decompress_nm(*compress_nm(to_backend(sparse_w, backend), k, m, axis), k, m, axis)
    np.testing.assert_array_equal(to_numpy(again), sparse_w)  # a kept -0 may come back as +0


@pytest.mark.parametrize("backend", BACKENDS)
def test_layout_by_hand(backend):
    w = np.array([[0.0, 5.0, -7.0, 1.0, 2.0, 0.0, 0.0, -0.0]], dtype=np.float32)
    values, indices = compress_nm(to_backend(w, backend), 2, 4, -1)
    np.testing.assert_array_equal(to_numpy(values), [[5.0, -7.0, 2.0, 0.0]])
    np.testing.assert_array_equal(to_numpy(indices), [[1, 2, 0, 1]])
    rv, ri = ref.compress_nm(w, 2, 4, -1)  # the reference agrees with the hand-worked layout
    np.testing.assert_array_equal(rv, [[5.0, -7.0, 2.0, 0.0]])
    np.testing.assert_array_equal(ri, [[1, 2, 0, 1]])
    # axis 0: same data transposed
    v0, i0 = compress_nm(to_backend(np.ascontiguousarray(w.T), backend), 2, 4, 0)
    np.testing.assert_array_equal(to_numpy(v0), [[5.0], [-7.0], [2.0], [0.0]])
    np.testing.assert_array_equal(to_numpy(i0), [[1], [2], [0], [1]])
    back = to_numpy(decompress_nm(v0, i0, 2, 4, 0))
    np.testing.assert_array_equal(bits(back), bits(np.array([[0.0, 5.0, -7.0, 0.0, 2.0, 0.0, 0.0, 0.0]], np.float32).T))


@pytest.mark.parametrize("backend", BACKENDS)
def test_nan_weights(backend):
    # compress keeps the positions of mask(|w|): NaN ranks below every number, zeros included,
    # so [NaN, 0] (one nonzero, 1:2 sparse by is_sparse) compresses to the zero: the one exception
    # to the round trip
    w = np.array([np.nan, 0.0, np.nan, 3.0, np.nan, np.nan], dtype=np.float32)
    v, i = compress_nm(to_backend(w, backend), 1, 2)
    np.testing.assert_array_equal(to_numpy(i), [1, 1, 0])
    np.testing.assert_array_equal(to_numpy(v), [0.0, 3.0, np.nan])
    np.testing.assert_array_equal(to_numpy(decompress_nm(v, i, 1, 2)), [0.0, 0.0, 0.0, 3.0, np.nan, 0.0])


@pytest.mark.parametrize("backend", BACKENDS)
def test_compression_errors(backend):
    w = to_backend(np.ones((2, 6), np.float32), backend)
    with pytest.raises(ValueError, match="length 6.*M = 4"):
        compress_nm(w, 2, 4)
    with pytest.raises(ValueError, match="K = 5"):
        compress_nm(w, 5, 3)
    with pytest.raises(ValueError, match="K = 0"):
        compress_nm(w, 0, 3)
    with pytest.raises(ValueError, match="M = 300"):
        compress_nm(w, 2, 300)
    v, i = compress_nm(w, 2, 3)
    bad = to_numpy(i).copy()
    bad[0, 0] = 3
    with pytest.raises(ValueError, match="0..2"):
        decompress_nm(v, to_backend(bad, backend), 2, 3)
    bad[0, 0] = bad[0, 1]
    with pytest.raises(ValueError, match="increase strictly"):
        decompress_nm(v, to_backend(bad, backend), 2, 3)
    with pytest.raises(ValueError, match="shape"):
        decompress_nm(v, to_backend(to_numpy(i)[:, :2].copy(), backend), 2, 3)
