"""Every logic equals its reference twin bit for bit on NumPy, JAX (eager) and PyTorch (eager)."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from logics_helpers import assert_bits, positive_arrays, row_arrays, specs_of

import dmxnum
from dmxnum.reference import logics as ref

BACKENDS = {
    "numpy": lambda x: x,
    "jax": jnp.asarray,
    "torch": torch.from_numpy,
}


def check_all_backends(x: np.ndarray, spec: str, **args) -> None:
    expected = ref.approximate(x, spec, **args)
    for name, conv in BACKENDS.items():
        conv_args = {k: (conv(v) if isinstance(v, np.ndarray) else v) for k, v in args.items()}
        got = dmxnum.approximate(conv(x.copy()), spec, **conv_args)
        assert_bits(np.asarray(got), expected, x, f"{spec} on {name}")


@given(spec=st.sampled_from(specs_of("SOFTMAX")), x=row_arrays())
def test_softmax(spec, x):
    check_all_backends(x, spec)


def test_softmax_other_axis():
    x = np.random.default_rng(2).normal(size=(5, 3, 2)).astype(np.float32) * 4
    x[1, 0, :] = -np.inf
    for spec in specs_of("SOFTMAX"):
        check_all_backends(x, spec, axis=0)


@given(spec=st.sampled_from(specs_of("EXP") + specs_of("GELU")), x=row_arrays(masked_rows=False))
def test_elementwise(spec, x):
    check_all_backends(x, spec)


@given(spec=st.sampled_from(specs_of("RECIP") + specs_of("RSQRT")), x=positive_arrays())
def test_quake(spec, x):
    check_all_backends(x, spec)


@given(
    spec=st.sampled_from(specs_of("LAYERNORM")),
    x=row_arrays(max_cols=13, masked_rows=False),
    affine=st.sampled_from(["none", "weight", "bias", "both"]),
    data=st.data(),
)
def test_layernorm(spec, x, affine, data):
    n = x.shape[-1]
    el = st.floats(-4.0, 4.0, width=32)
    from hypothesis.extra import numpy as hnp

    w = data.draw(hnp.arrays(np.float32, (n,), elements=el)) if affine in ("weight", "both") else None
    b = data.draw(hnp.arrays(np.float32, (n,), elements=el)) if affine in ("bias", "both") else None
    check_all_backends(x, spec, normalized_shape=n, weight=w, bias=b)


@pytest.mark.parametrize("spec", specs_of("SOFTMAX"))
@pytest.mark.parametrize("n", [1, 17, 100])
def test_softmax_masked_and_lengths(spec, n):
    rng = np.random.default_rng(n)
    x = (rng.normal(size=(4, n)) * 4).astype(np.float32)
    x[0, : n // 2] = -np.inf  # masked attention
    x[1] = -np.inf  # a fully masked row
    x[2, -1] = 1e4 if spec.endswith("ibert)") else 80.0  # a dominant logit
    x[3, 0] = -1e30
    check_all_backends(x, spec)
    y = ref.approximate(x, spec)
    assert np.all(np.isfinite(y))
    # a fully masked row becomes a uniform row (every element -16384 / the same integer)
    assert np.all(y[1] == y[1][0])


def test_layernorm_multi_dim_shape():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 3, 5)).astype(np.float32)
    w = rng.normal(size=(3, 5)).astype(np.float32)
    for spec in ["LAYERNORM(legacy,_,float32)", "LAYERNORM(fallback,3,float16)", "LAYERNORM(ibert)"]:
        check_all_backends(x, spec, normalized_shape=(3, 5), weight=w, bias=w)


def test_large_and_small_magnitudes():
    x = np.array([[1e-30, -1e-30, 1e-6, 3e38, -3e38, 70000.0, -70000.0, 1e-40]], np.float32)
    for spec in specs_of("SOFTMAX") + specs_of("EXP") + specs_of("GELU") + specs_of("LAYERNORM"):
        check_all_backends(x, spec)
