"""``jax.jit`` and ``torch.compile`` equal the reference on a fixed matrix of
formats and shape buckets, on subnormal-heavy and edge-heavy inputs."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import dmxnum
from dmxnum.testing import assert_bit_exact
from tests_data import edge_heavy

# one format per family and rounding letter, plus the OCP and IEEE aliases
MATRIX = [
    "FP16", "BF16", "FP8_E4M3FN", "FP8_E5M2", "FP4_E2M1", "FP[1|3|0,3](_NI)", "FP[0|5|3,20](FU)",
    "FP[1|8|1,149](_D)", "FP[1|4|6,4](_ZE)", "FP[1|5|2,15](_S)",
    "XP[8,3](CSN)", "XP[25,149](_SU)", "XP[6,-2](C_S)",
    "BFP[8|8]{64,-1}(SN)", "BFP[4|8]{5,0}(_D)", "BFP[12|8]{7,1}(SS)",
    "MXINT8{32,-1}", "MXFP8[E4M3]{32,-1}", "MXFP6[E3M2]{6,0}", "MXFP4[E2M1]{32,1}",
    "SBFP<XP[8,0](CSN)><FP[1|8|3,127](_N)>{16,-1}", "SBFP<XP[4,0](C_S)><FP[0|5|2,140](_UA)>{3,0}",
]
SHAPES = [(96, 70), (3, 5, 33)]


def _words(shape, seed):
    return np.random.default_rng(seed + 1).integers(0, 2**32, shape, dtype=np.uint32)


@functools.lru_cache(maxsize=None)
def _jitted(fmt: str):
    return jax.jit(lambda v, w: dmxnum.cast(v, fmt, random_bits=w))


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("fmt", MATRIX)
def test_jax_jit_matches_reference(fmt: str, shape) -> None:
    x = edge_heavy(shape, hash(fmt) % 1000)
    words = _words(shape, 1) if dmxnum.parse(fmt).stochastic else None
    y = _jitted(fmt)(jnp.asarray(x), None if words is None else jnp.asarray(words))
    assert_bit_exact(y, fmt, x, random_bits=words)


TORCH_MATRIX = ["FP16", "XP[8,3](CSS)", "XP[6,-2](C_S)", "XP[25,149](_SU)", "MXFP8[E5M2]{7,0}", "MXFP6[E2M3]{32,-1}", "FP[0|5|3,20](FZ)", "XP[10,-3](__Z)", "BFP[12|8]{7,1}(SZ)", "FP8_E4M3FN", "FP[1|3|0,3](_NI)", "FP[1|5|2,15](_S)", "XP[8,3](CSN)",
                "BFP[8|8]{64,-1}(SN)", "BFP[4|8]{5,0}(_D)", "MXFP8[E4M3]{32,-1}", "MXFP4[E2M1]{32,1}",
                "SBFP<XP[8,0](CSN)><FP[1|8|3,127](_N)>{16,-1}"]


@pytest.mark.parametrize("fmt", TORCH_MATRIX)
def test_torch_compile_matches_reference(fmt: str) -> None:
    shape = SHAPES[0]
    x = edge_heavy(shape, 7)
    stochastic = dmxnum.parse(fmt).stochastic
    words = _words(shape, 2) if stochastic else None
    compiled = torch.compile(lambda v, w: dmxnum.cast(v, fmt, random_bits=w), dynamic=False)
    w = None if words is None else torch.from_numpy(words.view(np.int32))
    y = compiled(torch.from_numpy(x), w)
    assert_bit_exact(y, fmt, x, random_bits=words)


def _with_subnormals_and_zero_words(x: np.ndarray, rng: np.random.Generator, fraction: float):
    """``x`` with about ``fraction`` of its elements replaced by random
    subnormals, and random words of which about a fifth are 0."""
    sub = rng.random(x.shape) < fraction
    x = x.copy()
    x[sub] = (rng.integers(-(2**23), 2**23, x.shape) * 2.0**-149).astype(np.float32)[sub]
    words = rng.integers(0, 2**32, x.shape, dtype=np.uint32)
    words[rng.random(x.shape) < 0.2] = 0
    return x, words


@pytest.mark.parametrize("fmt", ["BFP[8|8]{64,-1}(SS)", "BFP[4|8]{5,0}(_S)", "BFP[8|8]{16,-1}(SS)"])
def test_jax_jit_stochastic_bfp_with_subnormal_elements(fmt: str) -> None:
    """Blocks whose quantum allows the float path (amax near 2^-100 .. 2^0)
    but that hold float32 subnormals, which XLA reads as zero: their
    stochastic rounding must still follow the words."""
    rng = np.random.default_rng(11)
    shape = (40, 64)
    x = (rng.standard_normal(shape) * 2.0 ** rng.integers(-100, 1, shape)).astype(np.float32)
    x, words = _with_subnormals_and_zero_words(x, rng, 0.4)
    y = _jitted(fmt)(jnp.asarray(x), jnp.asarray(words))
    assert_bit_exact(y, fmt, x, random_bits=words)


@pytest.mark.parametrize("fmt", ["XP[8,3](CSS)", "XP[6,-2](C_S)", "XP[25,124](__S)", "XP[12,-117](CSS)"])
def test_jax_jit_stochastic_xp_with_subnormals(fmt: str) -> None:
    """Stochastic XP under jit on subnormal-heavy data, zero words included."""
    rng = np.random.default_rng(12)
    x, words = _with_subnormals_and_zero_words(edge_heavy((30, 50), 12), rng, 0.3)
    y = _jitted(fmt)(jnp.asarray(x), jnp.asarray(words))
    assert_bit_exact(y, fmt, x, random_bits=words)


@pytest.mark.parametrize("fmt", ["BFP[8|8]{64,-1}(SS)", "BFP[4|8]{5,0}(_S)", "BFP[8|8]{16,-1}(SS)"])
def test_jax_jit_stochastic_bfp_guard(fmt: str) -> None:
    """JAX's stochastic BFP float path runs where every product
    ``x * 2^-min(shared, 126)`` is normal (checked per block), and the cast
    stays exact on both sides of that line: values just above and just
    below ``2^-126`` times their block's scale, and subnormal elements
    (``bfp.float|integer``: :func:`dmxnum.kernels.guards.bfp_safe`)."""
    from dmxnum import _backend as B
    from dmxnum.kernels import guards
    from dmxnum.kernels.blocking import blocking_for

    f = dmxnum.parse(fmt)
    assert next(p.name for p in dmxnum.kernel_paths(f, "jax") if p.applies) == "bfp.float|integer"
    rng = np.random.default_rng(5)
    shape = (40, 64)
    clean = (rng.standard_normal(shape) * 2.0 ** rng.integers(-60, 60, (shape[0], 1))).astype(np.float32)
    xj = jnp.asarray(clean)
    amax, low = guards.block_max_and_lowest(B.namespace(xj), xj, blocking_for(xj, f))
    assert bool(jnp.all(guards.bfp_safe(f.man_bits, f.rounding, amax, low))), "clean data should take the float path"
    words = rng.integers(0, 2**32, shape, dtype=np.uint32)
    words[:, ::3] = 0
    for edge in ("above", "below", "subnormal"):
        x = clean.copy()
        rows = slice(3, None, 7)
        scale = np.float32(2.0) ** np.floor(np.log2(np.abs(x[rows]).max(axis=1, keepdims=True)))
        if edge == "subnormal":
            x[rows, ::4] = (rng.integers(-(2**23), 2**23, x[rows, ::4].shape) * 2.0**-149).astype(np.float32)
        else:
            factor = 2.0**-125 if edge == "above" else 2.0**-127
            x[rows, ::4] = (rng.choice([-1.0, 1.0], x[rows, ::4].shape) * scale * factor * rng.uniform(1, 2, x[rows, ::4].shape)).astype(np.float32)
        y = _jitted(fmt)(jnp.asarray(x), jnp.asarray(words))
        assert_bit_exact(y, fmt, x, random_bits=words)
