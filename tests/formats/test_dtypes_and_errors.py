"""Input handling: dtypes, empty and 0-d arrays, axes, SAME, randomness errors."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

import dmxnum
from dmxnum.errors import MissingRandomnessError, UnsupportedDtypeError
from dmxnum.testing import assert_bit_exact
from dmxnum.testing.assertions import to_numpy
from dmxnum.testing.backends import BACKENDS, to_backend

FMTS = ["FP[1|4|3,7](_NE)", "XP[8,2](CSU)", "BFP[6|8]{4,-1}(SN)", "MXFP6[E2M3]{8,0}", "SBFP<XP[4,0](CSN)><FP[0|4|3,7](_N)>{4,-1}"]
X = (np.random.default_rng(3).standard_normal((8, 12)) * 3).astype(np.float32)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float64"])
@pytest.mark.parametrize("fmt", FMTS)
def test_other_float_dtypes_cast_via_float32(backend: str, dtype: str, fmt: str) -> None:
    npdt = ml_dtypes.bfloat16 if dtype == "bfloat16" else np.dtype(dtype)
    xd = X.astype(npdt)
    xb = to_backend(xd, backend)
    y = dmxnum.cast(xb, fmt)
    assert y.dtype == xb.dtype  # (JAX without x64 has already made float64 input float32)
    want = dmxnum.reference.cast(xd.astype(np.float32), fmt).astype(npdt)
    got = to_numpy(y)
    assert np.array_equal(got.astype(np.float64), want.astype(np.float64), equal_nan=True)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", ["int8", "int32", "int64", "uint8", "bool"])
def test_integer_inputs_raise_type_error(backend: str, dtype: str) -> None:
    x = to_backend(np.ones(4, dtype=dtype), backend)
    with pytest.raises(TypeError, match=str(x.dtype).replace("torch.", "")):
        dmxnum.cast(x, "FP16")
    with pytest.raises(UnsupportedDtypeError):
        dmxnum.cast(x, "BFP[8|8]{2,-1}(SN)")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("fmt", FMTS)
def test_empty_arrays(backend: str, fmt: str) -> None:
    x = to_backend(np.zeros((0, 4), np.float32), backend)
    y = dmxnum.cast(x, fmt)
    assert tuple(y.shape) == (0, 4)


@pytest.mark.parametrize("backend", BACKENDS)
def test_zero_dim(backend: str) -> None:
    x = to_backend(np.float32(1.3), backend)
    assert float(dmxnum.cast(x, "XP[4,1](CSN)")) == 1.5
    with pytest.raises(ValueError, match="ndim >= 1"):
        dmxnum.cast(x, "BFP[8|8]{4,-1}(SN)")


@pytest.mark.parametrize("backend", BACKENDS)
def test_bad_axis(backend: str) -> None:
    x = to_backend(np.ones((3, 4), np.float32), backend)
    with pytest.raises(ValueError, match=r"axis 2.*valid axes: -2\.\.1"):
        dmxnum.cast(x, "BFP[8|8]{4,2}(SN)")


@pytest.mark.parametrize("backend", BACKENDS)
def test_same_returns_input(backend: str) -> None:
    x = to_backend(X, backend)
    assert dmxnum.cast(x, "SAME") is x


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("fmt", ["FP[1|5|2,15](_S)", "XP[8,4](CSS)", "BFP[8|8]{4,-1}(SS)", "SBFP<XP[6,0](CSS)><FP[1|8|0,127](_N)>{8,-1}"])
def test_stochastic_needs_key_or_words(backend: str, fmt: str) -> None:
    x = to_backend(X, backend)
    with pytest.raises(MissingRandomnessError, match="key="):
        dmxnum.cast(x, fmt)
    with pytest.raises(ValueError, match="shape"):
        dmxnum.cast(x, fmt, random_bits=to_backend(np.zeros((2, 2), np.uint32), backend))


def _key(backend: str, seed: int):
    if backend == "numpy":
        return np.random.default_rng(seed)
    if backend == "jax":
        import jax

        return jax.random.key(seed)
    import torch

    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("fmt", ["FP[1|5|2,15](_S)", "XP[8,4](CSS)", "BFP[4|8]{4,-1}(SS)", "SBFP<XP[6,0](CSS)><FP[1|8|0,127](_N)>{8,-1}"])
def test_same_key_same_result_and_reference_given_words(backend: str, fmt: str) -> None:
    x = to_backend(X, backend)
    for key in (7, _key(backend, 7)):
        a = to_numpy(dmxnum.cast(x, fmt, key=key if isinstance(key, int) else _key(backend, 7)))
        b = to_numpy(dmxnum.cast(x, fmt, key=key if isinstance(key, int) else _key(backend, 7)))
        assert np.array_equal(a.view(np.uint32), b.view(np.uint32))
    c = to_numpy(dmxnum.cast(x, fmt, key=8))
    assert not np.array_equal(a, c)  # another seed draws other words
    words = np.random.default_rng(1).integers(0, 2**32, X.shape, dtype=np.uint32)
    y = dmxnum.cast(x, fmt, random_bits=to_backend(words, backend))
    assert_bit_exact(y, fmt, X, random_bits=words)


def test_stochastic_rounding_is_unbiased() -> None:
    x = np.full((20000,), 0.3, np.float32)
    y = dmxnum.cast(x, "XP[4,0](CSS)", key=0)
    assert set(np.unique(y)) == {0.0, 1.0}
    assert abs(float(y.mean()) - 0.3) < 0.02


@pytest.mark.parametrize("backend", ["numpy", "torch", "jax"])
@pytest.mark.parametrize("fmt", ["BFP[8|8]{4,-1}(SS)", "BFP[4|8]{4,-1}(_S)", "XP[8,-3](CSS)"])
def test_stochastic_rounding_of_the_smallest_subnormals_with_word_zero(backend: str, fmt: str) -> None:
    """``x * 2^-qe`` at or below ``2^-150`` underflows to 0 in float32 (a tie
    goes to 0), yet a positive ``x`` with word 0 must round up: blocks whose
    quantum exponent is 0, 1, 2 and more, around the smallest subnormals."""
    from dmxnum.testing.backends import to_backend

    for shared in range(-2, 12):  # one array per block scale: paths may decide per array
        x = np.array([[1.5 * 2.0**shared, 2.0**-149, 3 * 2.0**-149, -(2.0**-149)]], dtype=np.float32)
        words = np.zeros(x.shape, dtype=np.uint32)
        words[0, 3] = 0xFFFFFFFF
        y = dmxnum.cast(to_backend(x, backend), fmt, random_bits=to_backend(words, backend))
        assert_bit_exact(y, fmt, x, random_bits=words)
