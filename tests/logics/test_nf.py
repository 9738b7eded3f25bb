"""Rounding to NF: backend conversions equal RNE (eager and jit), flushing, halving trees."""

from __future__ import annotations

from fractions import Fraction

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest
import torch

from dmxnum.logics.nf import const_nf, ftz, round_nf, tree_max, tree_sum


def edge_bits() -> np.ndarray:
    rng = np.random.default_rng(0)
    parts = [
        rng.integers(-(2**31), 2**31, 300_000, dtype=np.int64),
        np.arange(0x477FE000 - 3000, 0x477FF000 + 3000),  # float16 overflow boundary
        np.arange(0x38800000 - 3000, 0x38800000 + 3000),  # float16 normal/subnormal boundary
        np.arange(0x33000000 - 3000, 0x33000000 + 3000),  # float16 underflow to 0
        np.arange(0x7F7F0000, 0x7F800000 + 10),  # bfloat16 overflow, Inf, NaN
        np.arange(0x00800000 - 100, 0x00800000 + 100),  # float32 subnormal boundary
    ]
    b = np.concatenate(parts).astype(np.int64) & 0xFFFFFFFF
    b = np.concatenate([b, b | 0x80000000]).astype(np.uint32)
    return b.view(np.float32)


def expected(x: np.ndarray, nf: str) -> np.ndarray:
    with np.errstate(all="ignore"):
        if nf == "float16":
            return x.astype(np.float16).astype(np.float32)
        flushed = np.where(np.abs(x) < 2.0**-126, np.copysign(np.float32(0), x), x).astype(np.float32)
        if nf == "bfloat16":
            return flushed.astype(ml_dtypes.bfloat16).astype(np.float32)
        return flushed


def same_bits(a, b) -> bool:
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    return bool(np.all((a.view(np.uint32) == b.view(np.uint32)) | (np.isnan(a) & np.isnan(b))))


@pytest.mark.parametrize("nf", ["float16", "bfloat16", "float32"])
def test_round_nf_is_rne_on_every_backend(nf):
    x = edge_bits()
    want = expected(x, nf)
    assert same_bits(round_nf(x, nf), want)
    assert same_bits(round_nf(torch.from_numpy(x), nf).numpy(), want)
    # JAX sees float32 subnormals as zero: compare on inputs that are normal or zero
    normal = np.where(np.abs(x) < 2.0**-126, np.float32(0), x)
    want_n = expected(normal, nf)
    assert same_bits(np.asarray(jax.jit(lambda v: round_nf(v, nf))(jnp.asarray(normal))), want_n)
    assert same_bits(np.asarray(round_nf(jnp.asarray(normal), nf)), want_n)


def test_ftz_keeps_sign_and_normals():
    x = np.float32([1e-40, -1e-40, 2.0**-126, -(2.0**-126), 0.0, -0.0, np.inf, np.nan])
    y = ftz(x)
    assert y.view(np.uint32).tolist()[:6] == [0, 0x80000000, 0x00800000, 0x80800000, 0, 0x80000000]
    assert np.isinf(y[6]) and np.isnan(y[7])
    assert same_bits(np.asarray(ftz(jnp.asarray(x))), y)


@pytest.mark.parametrize("nf", ["float16", "bfloat16", "float32"])
def test_constants_are_correctly_rounded(nf):
    dt = {"float16": np.float16, "bfloat16": ml_dtypes.bfloat16, "float32": np.float32}[nf]
    for text in ["0.69315", "1.4427", "1.015082", "0.503765", "1.4426950408889634", "0.957", "-0.1444",
                 "1.769", "0.70711", "1e-30", "1e-5"]:
        c = const_nf(float(text), nf)
        exact = Fraction(text)
        # no representable value of the format is strictly closer than c
        for nb in (np.nextafter(dt(c), dt(np.inf)), np.nextafter(dt(c), dt(-np.inf))):
            assert abs(Fraction(float(c)) - exact) <= abs(Fraction(float(nb)) - exact), (text, nf)


def test_halving_tree_order_and_padding():
    # float16: ((a + c) + (b + d)) with padding; differs from a left-to-right sum
    x = np.float32([[2048.0, 1.0, 1.0, 1.0, 1.0]])
    s = tree_sum(x, "float16")
    # pad to 8: [2048+1, 1+1, 1+0, 1+0] -> [2049->2048, 2] ... computed by hand:
    # level 1: 2048+1=2049->2048 (tie to even), 1+0=1, 1+0=1, 1+0=1
    # level 2: 2048+1=2049->2048, 1+1=2; level 3: 2048+2=2050
    assert s.shape == (1, 1) and s[0, 0] == 2050.0
    seq = np.float16(0)
    for v in x[0].astype(np.float16):
        seq = np.float16(seq + v)  # a left-to-right float16 sum loses every +1
    assert seq == 2048.0
    m = tree_max(np.float32([[1.0, np.nan, 3.0], [-np.inf, -np.inf, -np.inf]]))
    assert np.isnan(m[0, 0]) and m[1, 0] == -np.inf
