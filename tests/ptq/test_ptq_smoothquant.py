"""SmoothQuant factors (dmxnum.ptq.smoothquant_factors) against the NumPy formula."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from dmxnum import ptq


def numpy_factors(xa, weights, alpha):
    wa = np.max([np.max(np.abs(w), axis=0) for w in weights], axis=0)
    return (np.maximum(xa, 1e-5) ** alpha / np.maximum(wa, 1e-5) ** (1 - alpha)).astype(np.float32)


@settings(max_examples=30)
@given(st.integers(0, 2**32 - 1), st.floats(0.0, 1.0), st.integers(1, 3))
def test_factors_match_the_formula(seed, alpha, count):
    rng = np.random.default_rng(seed)
    xa = np.abs(rng.standard_t(2, 24)) * 10.0 ** rng.uniform(-6, 3)
    xa[rng.integers(0, 24)] = 0.0  # clamped to 1e-5
    weights = [rng.standard_normal((rng.integers(1, 9), 24)).astype(np.float32) for _ in range(count)]
    got = ptq.smoothquant_factors(xa.astype(np.float32), weights, alpha=alpha)
    want = numpy_factors(xa.astype(np.float32).astype(np.float64), [w.astype(np.float64) for w in weights], alpha)
    assert got.dtype == np.float32 and np.array_equal(got, want)
    # per-channel maxima in place of matrices give the same factors
    maxima = [np.max(np.abs(w), axis=0) for w in weights]
    assert np.array_equal(ptq.smoothquant_factors(xa.astype(np.float32), maxima, alpha=alpha), got)


def test_smoothing_keeps_the_layer_output_and_kinds():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 8))
    x[:, 3] *= 100.0  # an outlier channel
    w = rng.standard_normal((5, 8))
    f = ptq.smoothquant_factors(np.max(np.abs(x), axis=0), w).astype(np.float64)
    assert np.allclose((x / f) @ (w * f).T, x @ w.T)
    assert np.max(np.abs(x / f)) < np.max(np.abs(x)) / 5
    t = ptq.smoothquant_factors(torch.from_numpy(np.max(np.abs(x), axis=0)), [torch.from_numpy(w)], alpha=0.85)
    assert isinstance(t, torch.Tensor) and t.dtype == torch.float32


def test_errors():
    with pytest.raises(ValueError, match="alpha"):
        ptq.smoothquant_factors(np.ones(3), [np.ones((2, 3))], alpha=1.5)
    with pytest.raises(ValueError, match="does not match"):
        ptq.smoothquant_factors(np.ones(3), [np.ones((2, 4))])
    with pytest.raises(ValueError, match="no weight"):
        ptq.smoothquant_factors(np.ones(3), [])
