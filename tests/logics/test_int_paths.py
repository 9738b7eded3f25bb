"""The NF int paths: clamping, exact fixed-point steps, int32 safety, jit."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from logics_helpers import assert_bits

import dmxnum
from dmxnum.reference import logics as ref

INT_SPECS = ["EXP(poly2,int)", "EXP(base2,int)", "SOFTMAX(poly2,int)", "SOFTMAX(base2,int)"]


def test_exact_values_at_zero():
    # poly2: k = 0, r = 0, ri = 0, t1 = 16631, t2 = 2^14 -> p = 1
    assert dmxnum.approximate(np.float32([0.0]), "EXP(poly2,int)")[0] == 1.0
    # base2: z = 0, k = 0, v = 0, p = 15679 / 2^14
    assert dmxnum.approximate(np.float32([0.0]), "EXP(base2,int)")[0] == np.float32(15679 / 16384)
    # base2 at x = 1: z = 23637/2^14 = 1.44268..., k = 1, v = round(0.44268 * 2^14) / 2^14
    z = np.float32(23637 / 16384)
    v = np.round((z - np.float32(1)) * np.float32(16384)) / np.float32(16384)
    expected = np.float32(np.float32(v) + np.float32(15679 / 16384)) * np.float32(2)
    assert dmxnum.approximate(np.float32([1.0]), "EXP(base2,int)")[0] == expected


@pytest.mark.parametrize("spec", ["EXP(poly2,int)", "EXP(base2,int)"])
def test_clamp_and_nan(spec):
    x = np.float32([-16384.0, -20000.0, -np.inf, 16384.0, 30000.0, np.inf, np.nan])
    y = dmxnum.approximate(x, spec)
    assert y[0] == y[1] == y[2] == 0.0
    assert y[3] == y[4] == y[5] == np.inf  # p * 2^23637 overflows float32
    assert np.isnan(y[6])
    assert_bits(y, ref.approximate(x, spec), x, spec)


def test_poly2_int_intermediates_fit_int32():
    """|ri| <= 8192 on [-16384, 16384], so t1 * ri < 2^31 (docs/logics.md)."""
    x = np.linspace(-16384, 16384, 2_000_001, dtype=np.float32)
    x = np.concatenate([x, np.float32([-16384, 16384, -16383.99, 16383.99])])
    k = np.round(x * np.float32(1.4427))
    r = x - k * np.float32(0.69315)
    ri = np.round(r * np.float32(16384))
    assert np.max(np.abs(ri)) <= 8192
    assert (16631 + 4096) * 8192 < 2**31


@pytest.mark.parametrize("spec", INT_SPECS)
def test_int_paths_all_backends_and_jit(spec):
    rng = np.random.default_rng(11)
    x = np.concatenate(
        [rng.uniform(-16384, 16384, (2, 16)), rng.normal(0, 5, (2, 16)), np.full((1, 16), -np.inf)]
    ).astype(np.float32)
    x[2, :5] = [16384, -16384, 20000, -20000, 0]
    if spec.startswith("EXP"):
        x[4] = rng.normal(0, 40, 16)
    expected = ref.approximate(x, spec)
    assert_bits(dmxnum.approximate(x, spec), expected, x, spec)
    assert_bits(np.asarray(dmxnum.approximate(jnp.asarray(x), spec)), expected, x, spec + " jax")
    assert_bits(dmxnum.approximate(torch.from_numpy(x), spec).numpy(), expected, x, spec + " torch")
    got = jax.jit(lambda v: dmxnum.approximate(v, spec))(jnp.asarray(x))
    assert_bits(np.asarray(got), expected, x, spec + " jit")


def test_int_softmax_rows():
    x = np.float32([[-np.inf] * 5, [20000.0, 16384.0, 0.0, -1.0, -np.inf]])
    for spec in ["SOFTMAX(poly2,int)", "SOFTMAX(base2,int)"]:
        y = dmxnum.approximate(x, spec)
        assert np.all(y[0] == y[0][0]) and abs(float(y[0].sum()) - 1) < 1e-6
        assert y[1][0] == y[1][1]  # both clamped to 16384
        assert y[1][2] == 0 and y[1][4] == 0
