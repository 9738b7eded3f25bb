"""The SBFP float path (``sbfp.float``, :func:`dmxnum.kernels.sbfp.cast_float`)
equals the reference: eager and compiled on NumPy and PyTorch, and under
``jax.jit`` (``sbfp.float|integer``) both where its guard
(:func:`dmxnum.kernels.guards.sbfp_safe`) lets the float path run and where
the cast falls back to integers."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from hypothesis import given, strategies as st

import dmxnum
from dmxnum import _backend as B
from dmxnum.kernels import guards, sbfp
from dmxnum.kernels.blocking import blocking_for
from dmxnum.kernels.float_ops import block_maxima
from dmxnum.kernels.paths import Ctx
from dmxnum.testing import assert_bit_exact, float32_arrays
from dmxnum.testing.backends import to_backend

FORMATS = [
    "SBFP<XP[8,0](CSN)><FP[1|8|3,127](_N)>{16,-1}",
    "SBFP<XP[8,0](CSS)><FP[1|8|3,127](_N)>{16,-1}",
    "SBFP<XP[4,0](C_U)><FP[0|5|2,140](_UA)>{3,0}",
    "SBFP<XP[6,0](CSD)><FP[1|4|3,7](_NE)>{8,1}",
    "SBFP<XP[25,0](C_Z)><FP[0|8|0,127](_N)>{5,-1}",
    "SBFP<XP[5,0](C_S)><FP[0|3|1,20](_N)>{4,-1}",  # scaler max 1.5 * 2^-13: infinite quotients
]
SHAPE = (24, 48)


def clean(shape: tuple[int, ...], seed: int) -> np.ndarray:
    """Normal values, zeros and exact block-scale ties, each row in its own
    binade range (2^-60 .. 2^60): the JAX float path applies."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape) * 2.0 ** rng.integers(-60, 61, (shape[0], 1))
    x[rng.random(shape) < 0.05] = 0.0
    halves = (rng.integers(-30, 30, shape) + 0.5) * 2.0 ** rng.integers(-8, 8, shape)
    pick = rng.random(shape) < 0.2
    x[pick] = halves[pick]
    return x.astype(np.float32)


def edge(shape: tuple[int, ...], seed: int, kind: str) -> np.ndarray:
    """:func:`clean` data with one kind of value at the edge of the JAX guard
    in a few rows (each kind alone, so that it decides the guard):

    - ``"small_scale"``: blocks of maximum about ``2^-119`` (scale about ``2^-125``)
      holding the largest subnormals, whose quotients are near 1;
    - ``"tiny_quotient"``: values ``2^-100 .. 2^-90`` in blocks of maximum
      about ``2^42``, whose quotients are float32 subnormals;
    - ``"subnormal"``: subnormal values in ordinary blocks.
    """
    rng = np.random.default_rng(seed)
    x = clean(shape, seed)
    n = shape[1]
    rows = slice(6, shape[0], 5)
    m = x[rows].shape[0]
    if kind == "small_scale":
        x[rows] = rng.choice([-1.0, 1.0], (m, n)) * rng.uniform(1, 2, (m, n)) * 2.0**-119
        x[rows, 1::3] = rng.choice([-1.0, 1.0], (m, len(range(1, n, 3)))) * (2.0**-126 - 2.0**-149)
    elif kind == "tiny_quotient":
        x[rows] = rng.standard_normal((m, n)) * 2.0**40
        x[rows, 2::4] = rng.choice([-1.0, 1.0], (m, len(range(2, n, 4)))) * 2.0 ** rng.integers(-100, -90, (m, len(range(2, n, 4))))
    else:
        pick = rng.random((m, n)) < 0.3
        x[rows] = np.where(pick, rng.integers(-(2**23), 2**23, (m, n)) * 2.0**-149, x[rows])
    return x.astype(np.float32)


def mixed(shape: tuple[int, ...], seed: int) -> np.ndarray:
    """:func:`clean` plus subnormals, values far below their block's maximum,
    huge values, a tiny-valued row and NaN/Inf in a few blocks."""
    rng = np.random.default_rng(seed)
    x = clean(shape, seed)
    sub = (rng.integers(-(2**23), 2**23, shape) * 2.0**-149).astype(np.float32)
    pick = rng.random(shape) < 0.15
    x[pick] = sub[pick]
    far = rng.random(shape) < 0.05
    x[far] = (rng.standard_normal(shape) * 2.0**-120).astype(np.float32)[far]
    x[3] = (rng.standard_normal(shape[1]) * 2.0**-140).astype(np.float32)
    x[4, ::7] = np.float32(3.0e38)
    x[5, 5], x[6, 9], x[7, 0] = np.nan, np.inf, -np.inf
    return x


def _words(shape: tuple[int, ...], seed: int) -> np.ndarray:
    w = np.random.default_rng(seed).integers(0, 2**32, shape, dtype=np.uint32)
    w[:, ::3] = 0  # the word that rounds every nonzero fraction up
    return w


@functools.lru_cache(maxsize=None)
def _jitted(fmt: str):
    return jax.jit(lambda v, w: dmxnum.cast(v, fmt, random_bits=w))


JAX = Ctx("jax", True)


def jax_guard(xp, x, fmt):
    """``(amax, scales, safe)`` as ``sbfp.float|integer`` computes them under
    XLA: block maxima (int32 bits), block scales, and whether the float path
    is exact there (a boolean scalar)."""
    if fmt.block.rounding in ("S", "U", "D"):
        amax, low = guards.block_max_and_lowest(xp, x, blocking_for(x, fmt))
    else:
        _, amax = block_maxima(xp, x, fmt, JAX)
        low = None
    s = sbfp.block_scales(xp, amax, fmt, JAX)
    return amax, s, guards.sbfp_safe(fmt.block.k_max, fmt.block.rounding, amax, s, low)


@functools.lru_cache(maxsize=None)
def _fast_and_guard(fmt: str):
    """jitted ``x, words -> (float path result, guard)`` (words as the kernels take them)."""
    f = dmxnum.parse(fmt)

    def run(v, w):
        xp = B.namespace(v)
        _, _, safe = jax_guard(xp, v, f)
        return sbfp.cast_float(xp, v, f, w, JAX), safe

    return jax.jit(run)


def _args(fmt: str, x: np.ndarray, seed: int = 1):
    return _words(x.shape, seed) if dmxnum.parse(fmt).stochastic else None


@pytest.mark.parametrize("fmt", FORMATS)
def test_jax_float_path_runs_and_is_exact_on_clean_data(fmt: str) -> None:
    assert [p.name for p in dmxnum.kernel_paths(fmt, "jax") if p.applies] == ["sbfp.float|integer", "sbfp.integer"]
    x = clean(SHAPE, 3)
    words = _args(fmt, x)
    jw = None if words is None else B.words_to_top24(jnp.asarray(words))
    fast, safe = _fast_and_guard(fmt)(jnp.asarray(x), jw)
    assert bool(safe), "the guard should let the float path run on normal data"
    assert_bit_exact(fast, fmt, x, random_bits=words)
    assert_bit_exact(_jitted(fmt)(jnp.asarray(x), None if words is None else jnp.asarray(words)), fmt, x, random_bits=words)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("seed", [0, 1])
def test_every_backend_matches_reference_on_mixed_data(fmt: str, seed: int) -> None:
    x = mixed(SHAPE, seed)
    words = _args(fmt, x, seed)
    jw = None if words is None else jnp.asarray(words)
    assert_bit_exact(_jitted(fmt)(jnp.asarray(x), jw), fmt, x, random_bits=words)
    for backend in ("numpy", "torch", "jax"):
        chosen = next(p.name for p in dmxnum.kernel_paths(fmt, backend) if p.applies)
        assert chosen == ("sbfp.float|integer" if backend == "jax" else "sbfp.float"), (backend, chosen)
        y = dmxnum.cast(to_backend(x, backend), fmt, random_bits=to_backend(words, backend))
        assert_bit_exact(y, fmt, x, random_bits=words)


@pytest.mark.parametrize("kind", ["small_scale", "tiny_quotient", "subnormal"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_jax_jit_at_the_guard_edges(fmt: str, kind: str) -> None:
    x = edge(SHAPE, 4, kind)
    words = _args(fmt, x, 4)
    y = _jitted(fmt)(jnp.asarray(x), None if words is None else jnp.asarray(words))
    assert_bit_exact(y, fmt, x, random_bits=words)


@pytest.mark.parametrize("fmt", [FORMATS[1], FORMATS[2], FORMATS[5]])
def test_torch_compile_matches_reference(fmt: str) -> None:
    x = mixed(SHAPE, 2)
    words = _args(fmt, x, 2)
    compiled = torch.compile(lambda v, w: dmxnum.cast(v, fmt, random_bits=w), dynamic=False)
    y = compiled(torch.from_numpy(x), None if words is None else torch.from_numpy(words.view(np.int32)))
    assert_bit_exact(y, fmt, x, random_bits=words)


def test_jax_guard_sends_tiny_blocks_and_subnormal_quotients_to_integers() -> None:
    xp = B.namespace(jnp.zeros(1))
    stochastic = dmxnum.parse(FORMATS[1])
    nearest = dmxnum.parse(FORMATS[0])
    ok = clean((4, 16), 0)
    tiny_block = ok.copy()
    tiny_block[2] = np.float32(2.0**-120)  # a = amax / 127 is subnormal
    sub_elem = ok.copy()
    sub_elem[1, 3] = np.float32(1e-40)  # fine for N, not for S
    for x, fmt, expected in [(ok, stochastic, True), (tiny_block, nearest, False), (sub_elem, nearest, True),
                             (sub_elem, stochastic, False)]:
        assert bool(jax_guard(xp, jnp.asarray(x), fmt)[2]) is expected


HYPOTHESIS_FORMATS = FORMATS + [
    "SBFP<XP[3,0](C_N)><FP[1|5|0,20](_Z)>{7,-1}", "SBFP<XP[12,0](CSS)><FP[0|8|4,130](_DE)>{2,0}",
    "SBFP<XP[16,0](C_D)><FP[1|3|2,-40](_UA)>{5,-1}", "SBFP<XP[2,0](CSU)><FP[1|8|23,127](_N)>{1,-1}",
]


@given(data=st.data())
def test_jax_float_path_hypothesis(data: st.DataObject) -> None:
    """On generated arrays (two shapes per format, so that ``jit`` compiles
    each function at most twice): where the guard holds, the jitted float
    path equals the reference; everywhere, the jitted cast does."""
    fmt = dmxnum.parse(data.draw(st.sampled_from(HYPOTHESIS_FORMATS), label="fmt"))
    b = fmt.block_size
    shape = data.draw(st.sampled_from([(3, 2 * b + 1), (2 * b, 5)] if fmt.axis == 0 else [(3, 2 * b + 1), (2, 5, 3 * b)]))
    x = data.draw(float32_arrays(shape, allow_subnormal=data.draw(st.booleans())), label="x")
    words = _words(x.shape, 5) if fmt.stochastic else None
    jw = None if words is None else jnp.asarray(words)
    fast, safe = _fast_and_guard(str(fmt))(jnp.asarray(x), None if jw is None else B.words_to_top24(jw))
    if bool(safe):
        assert_bit_exact(fast, fmt, x, random_bits=words)
    assert_bit_exact(_jitted(str(fmt))(jnp.asarray(x), jw), fmt, x, random_bits=words)


@pytest.mark.parametrize("fmt", ["BFP[8|8]{5,0}(SS)", "BFP[8|8]{16,-1}(SS)", FORMATS[1]])
def test_jax_block_max_and_lowest(fmt: str) -> None:
    """The one-pass per-block reduction behind the JAX guards equals a plain
    NumPy computation, partial blocks and special values included."""
    from tests_data import edge_heavy

    f = dmxnum.parse(fmt)
    x = edge_heavy((23, 37), 9)
    xj = jnp.asarray(x)
    blocks = blocking_for(xj, f)
    top, low = guards.block_max_and_lowest(B.namespace(xj), xj, blocks)
    mag = x.view(np.uint32).astype(np.int64) & 0x7FFFFFFF
    exp = np.where(mag == 0, 255, mag >> 23)
    axis = blocks.axis
    for i in range(blocks.nblocks):
        sl = [slice(None)] * 2
        sl[axis] = slice(i * blocks.block, (i + 1) * blocks.block)
        want_top = mag[tuple(sl)].max(axis=axis)
        want_low = exp[tuple(sl)].min(axis=axis)
        got_top = np.take(np.asarray(top), i, axis=axis).reshape(want_top.shape)
        got_low = np.take(np.asarray(low), i, axis=axis).reshape(want_low.shape)
        assert np.array_equal(got_top, want_top) and np.array_equal(got_low, want_low)
