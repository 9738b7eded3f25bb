"""I-BERT integer algorithms: constants, i-sqrt, int32 bounds, output grids."""

from __future__ import annotations

import math
from decimal import Decimal, getcontext
from fractions import Fraction

import numpy as np
import pytest

import dmxnum
from dmxnum.logics import ibert
from dmxnum.reference import logics as ref


def test_constants_are_the_documented_floors():
    getcontext().prec = 60
    assert ibert.LN2_30 == int((Decimal(2).ln() * 2**30).to_integral_value(rounding="ROUND_FLOOR"))
    assert ibert.EXP_B_30 == math.floor(Fraction("1.353") * 2**30)
    assert ibert.EXP_C_28 == math.floor(Fraction("0.344") / Fraction("0.3585") * 2**28)
    assert ibert.ERF_B_29 == math.isqrt(math.floor(2 * Fraction("1.769") ** 2 * 2**58))
    assert ibert.ERF_C_28 == math.floor(2 / Fraction("0.2888") * 2**28)
    for c in (ibert.LN2_30, ibert.EXP_B_30, ibert.EXP_C_28, ibert.ERF_B_29, ibert.ERF_C_28):
        assert 0 < c < 2**31
    # the shifted constants are the floors at every scale
    for f in range(4, 15):
        assert ibert.LN2_30 >> (30 - f) == math.floor(Decimal(2).ln() * 2**f)
        assert ibert.EXP_B_30 >> (30 - f) == math.floor(Fraction("1.353") * 2**f)
        assert ibert.EXP_C_28 >> (28 - 2 * f) == math.floor(Fraction("0.344") / Fraction("0.3585") * 4**f)
    for f in range(5, 14):
        q_b = ibert.ERF_B_29 >> (29 - f)
        assert q_b == math.isqrt(math.floor(2 * Fraction("1.769") ** 2 * 4**f))
        q_c = ibert.ERF_C_28 >> (28 - 2 * f)
        assert q_c == math.floor(2 / Fraction("0.2888") * 4**f)
        assert 2 * q_c < 2**31 and q_b**2 < q_c


def test_isqrt_matches_math_isqrt_within_the_fixed_iteration_count():
    v = np.concatenate(
        [
            np.arange(0, 1 << 16),
            np.random.default_rng(0).integers(0, 2**30 + 1, 200_000),
            np.array([k * k + d for k in (2**15 - 1, 2**15, 46340, 12345) for d in (-1, 0, 1)]),
            np.array([2**30, 2**30 - 1, 2**29]),
        ]
    )
    v = v[(v >= 0) & (v <= 2**30)].astype(np.int32)
    got = ibert.isqrt(v)
    assert np.array_equal(got.astype(np.int64), np.array([math.isqrt(int(a)) for a in v]))
    # the reference's unbounded loop stops within ISQRT_ITERATIONS steps on the worst starts
    for n in [1, 2, 3, 2**30, 2**30 - 1, 2**29 + 1, 2**28 - 1, 3 * 2**27]:
        x, steps = 2 ** ((n.bit_length() + 1) // 2), 0
        while (x + n // x) // 2 < x:
            x, steps = (x + n // x) // 2, steps + 1
        assert steps < ibert.ISQRT_ITERATIONS and x == math.isqrt(n)


@pytest.mark.parametrize("scale", [1e-3, 1.0, 100.0, 2000.0, 1e6])
def test_softmax_output_grid_and_bounds(scale):
    rng = np.random.default_rng(1)
    x = (rng.normal(size=(8, 300)) * scale).astype(np.float32)
    x[0, 0], x[1, 0] = -32768 / 16, 32767 / 16  # extremes of the 16-bit input at f = 4
    y = dmxnum.approximate(x, "SOFTMAX(ibert)")
    assert np.array_equal(y, ref.approximate(x, "SOFTMAX(ibert)"))
    assert np.all(y * 256 == np.round(y * 256)) and np.all((y >= 0) & (y <= 1))
    assert np.all(np.abs(y.sum(-1) - 1) <= 300 / 256)


def test_extreme_integer_inputs_equal_the_unbounded_reference():
    """Kernel int32 arithmetic equals the reference's Python ints at the bounds' corners."""
    row = np.float32([32767, -32768, 0, 1, -1, 32766, 16384, -16384]) / np.float32(2**14 / 2)  # f = 13
    for spec in ["SOFTMAX(ibert)", "GELU(ibert)", "LAYERNORM(ibert)"]:
        for x in [row[None, :], np.tile(row, (3, 512))[:, :4096], (row * 1000)[None, :]]:
            x = x.astype(np.float32)
            assert np.array_equal(dmxnum.approximate(x, spec), ref.approximate(x, spec), equal_nan=True), spec


def test_gelu_and_layernorm_special_rows():
    x = np.float32([[np.nan, 1.0, 2.0], [3.0, 3.0, 3.0], [-1.0, 0.0, 1.0]])
    ln = dmxnum.approximate(x, "LAYERNORM(ibert)", bias=np.float32([0.5, 0.5, 0.5]))
    assert np.all(np.isnan(ln[0])) and np.all(ln[1] == 0.5)
    g = dmxnum.approximate(x, "GELU(ibert)")
    assert np.isnan(g[0, 0]) and not np.isnan(g[0, 1:]).any()
    assert g[2, 1] == 0
