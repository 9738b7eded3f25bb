"""Compiled paths on a fixed matrix: jax.jit (every logic), vmap, torch.compile (one logic: compiling is slow on CPU).

Inputs are subnormal-heavy and include the values where XLA's rewrites
(FMA fusion, reciprocal division, rsqrt, subnormals as zero) would change
results (SPEC section 2).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from logics_helpers import SPECS, assert_bits

import dmxnum
from dmxnum.reference import logics as ref


def fixed_input(spec: str) -> np.ndarray:
    rng = np.random.default_rng(7)
    x = np.empty((6, 13), np.float32)
    x[0] = rng.normal(size=13) * 3
    x[1] = rng.normal(size=13) * 1e-20  # layer norm: variance below 2^-126
    x[2] = rng.uniform(-104, -80, size=13)  # exp results around 2^-126 (float32 flush)
    x[3] = rng.normal(size=13) * 1e-39  # subnormal inputs
    x[3, :3] = [2.0**-126, -(2.0**-126), 1e-45]
    x[4] = rng.normal(size=13) * 40
    x[4, :4] = -np.inf
    x[5] = -np.inf
    if spec.startswith(("RECIP", "RSQRT")):
        x = np.abs(x)
        x[5] = rng.uniform(1e-6, 1e4, size=13)
    if spec.startswith(("LAYERNORM", "EXP", "GELU")):
        x[5] = rng.normal(size=13) * 300
    return x


@pytest.mark.parametrize("spec", SPECS)
def test_jit_equals_reference(spec):
    x = fixed_input(spec)
    args = {}
    if spec.startswith("LAYERNORM"):
        w = np.random.default_rng(1).normal(size=13).astype(np.float32)
        args = {"weight": w, "bias": w * np.float32(0.5)}
    expected = ref.approximate(x, spec, **args)
    jargs = {k: jnp.asarray(v) for k, v in args.items()}
    got = jax.jit(lambda v, a: dmxnum.approximate(v, spec, **a))(jnp.asarray(x), jargs)
    assert_bits(np.asarray(got), expected, x, f"jit {spec}")


@pytest.mark.parametrize("spec", ["SOFTMAX(poly2,float32)", "LAYERNORM(quake3,_,float32)", "GELU(ibert)"])
def test_jit_vmap(spec):
    x = fixed_input(spec)
    got = jax.jit(jax.vmap(lambda v: dmxnum.approximate(v, spec)))(jnp.asarray(x))
    # vmap maps over rows: each row is its own tensor (I-BERT's per-tensor scale is per row)
    expected = np.stack([ref.approximate(row, spec) for row in x])
    assert_bits(np.asarray(got), expected, x, f"jit(vmap) {spec}")


def test_float32_subnormal_flush_under_jit():
    """NF float32 flushes operands and results below 2^-126 in kernel and reference alike."""
    x = np.array([-87.0, -87.5, -88.0, -100.0, -80.0], np.float32)
    got = np.asarray(jax.jit(lambda v: dmxnum.approximate(v, "EXP(base2,float32)"))(jnp.asarray(x)))
    expected = ref.approximate(x, "EXP(base2,float32)")
    assert_bits(got, expected, x, "jit EXP(base2,float32)")
    assert np.all((got == 0) | (np.abs(got) >= 2.0**-126))
    assert got[3] == 0 and got[4] > 2.0**-126
    # a subnormal input is a zero: exp(0) = 1
    one = dmxnum.approximate(np.array([1e-40, -1e-40], np.float32), "EXP(poly2,float32)")
    assert np.all(one == 1.0)


@pytest.mark.parametrize("spec", ["SOFTMAX(base2,float16)"])
def test_torch_compile(spec):
    x = fixed_input(spec)
    fn = torch.compile(lambda v: dmxnum.approximate(v, spec), dynamic=False)
    got = fn(torch.from_numpy(x.copy()))
    assert_bits(got.numpy(), ref.approximate(x, spec), x, f"torch.compile {spec}")
