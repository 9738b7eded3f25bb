"""Regressions found when the strategies favoured extreme format parameters:
each failing input, on every backend, against the reference.

1. JAX, stochastic XP on the smallest subnormal (``stochastic_subnormals``
   in ``kernels/float_ops.py``): with the shift capped at 31 the sticky mask
   was ``2^31 - 1``, so the sticky test became ``(|x| bits) != 0``, which
   LLVM rewrote to the float test ``x != 0``; XLA on CPU reads a subnormal
   as zero there, so 2^-149 with word 0 gave 0 instead of 1 (in some
   columns only: the vectorized part of the loop).
2. JAX, SBFP on a single block: XLA moved the rounding point on the
   broadcast scale before the broadcast and divided by the reciprocal
   ``1 / s`` (``kernels/sbfp.py``, both the float and the integer path):
   0 for a scale above 2^126 (the reciprocal is a subnormal, flushed), and a quotient one ulp off for scales whose
   reciprocal is inexact (wrong ``k`` at exact multiples under Z/U/D/S).
3. encode/decode, FP scheme I with ``m = 0``: NaN's code (all-ones exponent
   and mantissa) is Inf's code, so NaN came back as Inf; such formats have
   no NaN code and reject NaN input, as scheme A does.
"""

from __future__ import annotations

import numpy as np
import pytest

import dmxnum
from dmxnum.formats import FloatingPoint
from dmxnum.testing import assert_bit_exact
from dmxnum.testing.assertions import same_bits, to_numpy
from dmxnum.testing.backends import BACKENDS, to_backend

TINY = np.float32(1e-45)  # 2^-149, the smallest subnormal


# ------------------------------------------------------------------ 1. stochastic XP, smallest subnormal
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("fmt", ["XP[2,0](__S)", "XP[8,0](CSS)", "XP[4,-20](__S)", "XP[25,100](C_S)"])
def test_stochastic_xp_smallest_subnormal(backend: str, fmt: str) -> None:
    # the reported case is XP[2,0](__S) on a (4, 3) array: every position, both signs
    words = np.zeros((4, 3), np.uint32)
    for i in range(12):
        for sign in (1, -1):
            x = np.zeros(12, np.float32)
            x[i] = sign * TINY
            x = x.reshape(4, 3)
            y = dmxnum.cast(to_backend(x, backend), fmt, random_bits=to_backend(words, backend))
            assert_bit_exact(y, fmt, x, random_bits=words)


def test_stochastic_xp_smallest_subnormal_reported_values() -> None:
    x = np.zeros((4, 3), np.float32)
    x[0, 0] = TINY
    words = np.zeros((4, 3), np.uint32)
    want = np.zeros((4, 3), np.float32)
    want[0, 0] = 1.0  # t = 2^-149 > 0 = w * 2^-24: rounds up
    for backend in BACKENDS:
        y = to_numpy(dmxnum.cast(to_backend(x, backend), "XP[2,0](__S)", random_bits=to_backend(words, backend)))
        assert np.array_equal(y.view(np.uint32), want.view(np.uint32)), (backend, y)


# ------------------------------------------------------------------ 2. SBFP, a single block
@pytest.mark.parametrize("backend", BACKENDS)
def test_sbfp_top_binade_scaler(backend: str) -> None:
    fmt = "SBFP<XP[2,0](C_N)><FP[0|8|0,127](_N)>{2,-1}"
    x = np.array([1.7014117e38], np.float32)  # scale 2^127 (max of the scaler), k = 1
    y = dmxnum.cast(to_backend(x, backend), fmt)
    assert to_numpy(y).view(np.uint32).tolist() == [0x7F000000]  # 2^127 = 1.7014118e38
    assert_bit_exact(y, fmt, x)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("fmt", [
    "SBFP<XP[2,0](C_N)><FP[0|8|0,127](_N)>{2,-1}",
    "SBFP<XP[2,0](C_Z)><FP[0|8|1,127](_N)>{4,-1}",
    "SBFP<XP[3,0](C_U)><FP[1|8|0,128](_NA)>{4,0}",
])
def test_sbfp_top_binade_scales_single_block(backend: str, fmt: str) -> None:
    x = np.array([2.0**127, 1.7014117e38, 3e38, np.finfo(np.float32).max, 1.0, -(2.0**126)], np.float32)
    f = dmxnum.parse(fmt)
    for v in x:
        block = np.zeros(f.block_size, np.float32)
        block[0] = v
        if f.axis == 0:
            block = block.reshape(-1, 1)
        y = dmxnum.cast(to_backend(block, backend), fmt)
        assert_bit_exact(y, fmt, block)


def _exact_multiples(fmt: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    """One block of ``n`` elements: ``k * s`` for the block's scale ``s`` and
    ``|k|`` up to the block range (both signs), plus stochastic words."""
    f = dmxnum.parse(fmt)
    rng = np.random.default_rng(7)
    x = rng.standard_normal(n).astype(np.float32)
    a = np.array([np.abs(x).max() / np.float32(f.block.k_max)], np.float32)
    s = dmxnum.reference.cast(a, f.scaler)[0]
    k = rng.integers(-f.block.k_max, f.block.k_max + 1, n // 2)
    x[::2] = (k * s).astype(np.float32)
    return x, rng.integers(0, 2**32, n, dtype=np.uint32)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("rounding", "ZUDS")
@pytest.mark.parametrize("subnormal", [False, True], ids=["float-path", "integer-path"])
def test_sbfp_single_block_exact_multiples(backend: str, rounding: str, subnormal: bool) -> None:
    # 1 / s inexact: x * (1 / s) is one ulp off x / s for many k * s. On JAX
    # a subnormal element makes the guard choose the integer path
    fmt = f"SBFP<XP[8,0](C_{rounding})><FP[1|5|6,15](_N)>{{256,-1}}"
    x, words = _exact_multiples(fmt, 256)
    if subnormal:
        x[1] = -TINY
    w = words if rounding == "S" else None
    y = dmxnum.cast(to_backend(x, backend), fmt, random_bits=to_backend(w, backend))
    assert_bit_exact(y, fmt, x, random_bits=w)


def test_sbfp_single_block_jax_jit() -> None:
    import jax
    import jax.numpy as jnp

    for rounding in "ZD":
        fmt = f"SBFP<XP[8,0](C_{rounding})><FP[1|5|6,15](_N)>{{256,-1}}"
        x, _ = _exact_multiples(fmt, 256)
        y = jax.jit(lambda v: dmxnum.cast(v, fmt))(jnp.asarray(x))
        assert_bit_exact(y, fmt, x)


# ------------------------------------------------------------------ 3. encode/decode, scheme I with m = 0
NAN_FREE = np.array([1.0, 2.0, 5.0, np.inf, -np.inf, -1.0, 0.4, -0.0, 0.0, 1e-45], np.float32)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("signed", [False, True])
def test_encode_scheme_i_m0_has_no_nan_code(backend: str, signed: bool) -> None:
    fmt = FloatingPoint(signed=signed, exp_bits=2, man_bits=0, bias=1, scheme="I", rounding="N")
    x = to_backend(np.array([np.nan, 1.0], np.float32), backend)
    assert np.isnan(to_numpy(dmxnum.cast(x, fmt))[0])
    with pytest.raises(ValueError, match="no NaN code"):
        dmxnum.encode(x, fmt)
    # NaN-free input still round-trips, Inf included
    xb = to_backend(NAN_FREE, backend)
    got = to_numpy(dmxnum.decode(dmxnum.encode(xb, fmt)))
    want = to_numpy(dmxnum.cast(xb, fmt))
    assert same_bits(got, want).all(), (got, want)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("fmt", ["FP[0|2|0,1](_N)", "FP[0|2|1,1](_NI)", "FP[1|3|1,3](_NI)", "FP[1|8|0,127](_N)"])
def test_encode_nan_round_trips_where_there_is_a_code(backend: str, fmt: str) -> None:
    x = np.array([np.nan, *NAN_FREE], np.float32)
    xb = to_backend(x, backend)
    got = to_numpy(dmxnum.decode(dmxnum.encode(xb, fmt)))
    want = to_numpy(dmxnum.cast(xb, fmt))
    assert np.isnan(got[0])
    assert same_bits(got, want).all(), (got, want)


# ------------------------------------------------------------------ 4. the same rewrite in softmax
@pytest.mark.parametrize("spec", ["SOFTMAX(poly2,float32)", "SOFTMAX(base2,float32)"])
@pytest.mark.parametrize("shape", [(1, 33), (33,), (3, 33)])
def test_jax_jit_softmax_single_row(spec: str, shape: tuple[int, ...]) -> None:
    # Arith.div (dmxnum/logics/nf.py): e / broadcast(s + eps) became
    # e * (1 / (s + eps)) for a single row, about a quarter of the elements
    # one ulp off
    import jax
    import jax.numpy as jnp

    from dmxnum.reference import logics as reference_logics

    run = jax.jit(lambda v: dmxnum.approximate(v, spec))
    for seed in range(4):
        x = (np.random.default_rng(seed).standard_normal(shape) * 3).astype(np.float32)
        y = np.asarray(run(jnp.asarray(x)))
        want = reference_logics.approximate(x, spec)
        ok = same_bits(y, want)
        assert ok.all(), (seed, x[~ok][:4], y[~ok][:4], want[~ok][:4])


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("fmt", ["FP[1|5|2,15](_NA)", "FP[1|5|10,15](_NA)", "FP[1|3|2,3](_NA)", "FP[1|2|1,1](_NA)"])
def test_scheme_a_on_ieee_grids_keeps_its_top_binade(backend: str, fmt: str) -> None:
    """Scheme A uses the top exponent for finite values: FP[1|5|2,15](_NA)
    reaches 114688, where float8_e5m2 (an IEEE dtype) overflows at 61440.
    The eager native-dtype path once served it and gave Inf for 114687.99."""
    f = dmxnum.parse(fmt)
    top = np.float32(f.max_value)
    x = np.array([114687.99, 65520.0, 65536.0, 131008.0, float(top), float(np.nextafter(top, np.float32(0))),
                  2 * float(top), np.inf, -np.inf, -114687.99], dtype=np.float32)
    assert_bit_exact(dmxnum.cast(to_backend(x, backend), fmt), fmt, x)
