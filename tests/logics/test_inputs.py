"""approximate(): argument handling, dtypes, shapes and clear errors."""

from __future__ import annotations

import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest
import torch

import dmxnum
from dmxnum.errors import ShorthandError, UnsupportedDtypeError
from dmxnum.reference import logics as ref


@pytest.mark.parametrize("x", [np.arange(4), np.ones(3, bool), torch.arange(4), jnp.arange(4)])
def test_integer_and_bool_inputs_raise_type_error(x):
    with pytest.raises(TypeError, match="float16, bfloat16, float32 or float64"):
        dmxnum.approximate(x, "SOFTMAX(poly2,float16)")
    with pytest.raises(UnsupportedDtypeError):
        dmxnum.approximate(x, "GELU(ibert)")


def test_layernorm_shape_mismatch():
    x = np.ones((2, 3, 4), np.float32)
    with pytest.raises(ValueError, match=r"normalized_shape \(3,\) does not match .* \(2, 3, 4\)"):
        dmxnum.approximate(x, "LAYERNORM(legacy,_,float32)", normalized_shape=3)
    with pytest.raises(ValueError, match=r"weight has shape \(3,\); expected normalized_shape \(4,\)"):
        dmxnum.approximate(x, "LAYERNORM(legacy,_,float32)", normalized_shape=4, weight=np.ones(3, np.float32))
    with pytest.raises(ValueError, match=r"bias has shape \(4,\); expected normalized_shape \(3, 4\)"):
        dmxnum.approximate(x, "LAYERNORM(ibert)", normalized_shape=(3, 4), bias=np.ones(4, np.float32))
    with pytest.raises(TypeError, match="weight has dtype int64"):
        dmxnum.approximate(x, "LAYERNORM(ibert)", weight=np.ones(4, np.int64))


def test_bad_arguments():
    x = np.ones((2, 3), np.float32)
    with pytest.raises(TypeError, match=r"unexpected keyword argument\(s\) \['axis'\]; valid: none"):
        dmxnum.approximate(x, "GELU(poly2,float16)", axis=0)
    with pytest.raises(TypeError, match="valid: axis"):
        dmxnum.approximate(x, "SOFTMAX(ibert)", dim=0)
    with pytest.raises(ValueError, match="axis 2 is out of range"):
        dmxnum.approximate(x, "SOFTMAX(ibert)", axis=2)
    with pytest.raises(ShorthandError, match="unknown SOFTMAX algorithm"):
        dmxnum.approximate(x, "SOFTMAX(exact,float16)")
    with pytest.raises(ValueError, match="at most 16384 elements"):
        dmxnum.approximate(np.zeros((1, 16385), np.float32), "SOFTMAX(ibert)")
    with pytest.raises(ValueError, match="at most 4096 elements"):
        dmxnum.approximate(np.zeros((1, 4097), np.float32), "LAYERNORM(ibert)")


def test_none_returns_input_and_logic_value_is_callable():
    x = np.ones(3, np.float16)
    assert dmxnum.approximate(x, "NONE") is x
    logic = dmxnum.parse_logic("SOFTMAX(base2,float16)")
    assert np.array_equal(logic(x), dmxnum.approximate(x, logic))


@pytest.mark.parametrize("dtype", [np.float16, ml_dtypes.bfloat16, np.float64])
def test_other_float_dtypes_convert_to_float32_first(dtype):
    x = np.array([[0.5, -1.25, 3.0, 7.5]], dtype)
    for spec in ["SOFTMAX(poly2,float32)", "GELU(poly2,float16)", "LAYERNORM(quake3,_,float16)", "EXP(base2,int)"]:
        y = dmxnum.approximate(x, spec)
        assert y.dtype == np.float32
        assert np.array_equal(y, ref.approximate(x.astype(np.float32), spec))


def test_softmax_axis_and_torch_dtype():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 4, 5)).astype(np.float32)
    y = dmxnum.approximate(x, "SOFTMAX(base2,bfloat16)", axis=1)
    assert y.shape == x.shape
    assert np.array_equal(y, np.moveaxis(dmxnum.approximate(np.moveaxis(x, 1, -1), "SOFTMAX(base2,bfloat16)"), -1, 1))
    t = dmxnum.approximate(torch.from_numpy(x).to(torch.bfloat16), "SOFTMAX(base2,bfloat16)", axis=1)
    assert t.dtype == torch.float32


def test_empty_arrays():
    for spec in ["SOFTMAX(poly2,float16)", "GELU(ibert)", "EXP(poly2,int)", "SOFTMAX(ibert)"]:
        assert dmxnum.approximate(np.zeros((0, 3), np.float32), spec).shape == (0, 3)
