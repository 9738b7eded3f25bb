"""FP formats with ``m = 0`` or with their largest value in float32's top
binade (``[2^127, 2^128)``), cast at and above that largest value: every
rounding letter, every backend, eager and compiled (and eager by every
kernel path that applies, forced by name), against the reference.

Regression: the eager quantum path (``dmxnum/kernels/fp_quantum.py``) built
``2^(m - E)`` from bits, which for ``m = 0`` and ``E = 127`` is ``2^-127``,
not a normal float32 (the bits gave ``0.0``): ``FP[1|8|0,127](_Z)`` turned
every ``|x| >= 2^127`` (max itself, ±Inf) into ±0 on NumPy and PyTorch.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

import dmxnum
from dmxnum.testing import assert_bit_exact
from dmxnum.testing.assertions import to_numpy
from dmxnum.testing.backends import to_backend

ROUNDINGS = "NZUDS"
# {r} is the rounding letter; the largest exponent of each is 127 unless noted
TEMPLATES = [
    "FP[1|8|0,127](_{r})",    # m = 0, scheme S: max = 2^127
    "FP[1|8|0,128](_{r}A)",   # m = 0, scheme A: max = 2^127
    "FP[1|8|0,127](_{r}I)",   # m = 0, IEEE overflow column
    "FP[0|8|0,127](_{r})",    # unsigned
    "FP[1|8|0,127](F{r})",    # flushing
    "FP[1|5|0,-97](_{r})",    # m = 0, e = 5: values 2^98 .. 2^127
    "FP[1|2|0,-124](_{r}A)",  # m = 0, e = 2: values 2^125 .. 2^127
    "FP[1|8|0,140](_{r})",    # m = 0, max = 2^114 (not the top binade)
    "FP[1|8|1,127](_{r})",    # m = 1, max = 1.5 * 2^127
    "FP[1|8|3,128](_{r}E)",   # scheme E in the top binade
    "FP[1|8|23,127](_{r})",   # float32's own grid, saturating
    "FP[1|7|2,-1](_{r})",     # e = 7: max = 1.75 * 2^127
]
FORMATS = [t.format(r=r) for t in TEMPLATES for r in ROUNDINGS]


def _inputs(fmt: dmxnum.formats.FloatingPoint) -> np.ndarray:
    """Values at and above ``fmt``'s largest value, both signs, plus a few
    ordinary, tiny and special ones, and random values of the top binades."""
    f32 = np.float32
    top = f32(fmt.max_value)
    with np.errstate(over="ignore"):
        above = [
            top, np.nextafter(top, f32(np.inf)), np.nextafter(top, f32(0)),
            f32(2 * float(top)), f32(float(top) + 2.0 ** (fmt.emax - fmt.man_bits - 1)),  # the overflow tie
            f32(1.5 * float(top)), np.finfo(np.float32).max, f32(np.inf),
        ]
    base = [*above, f32(2.0**127), f32(1.5 * 2.0**126), f32(2.0**126), f32(1.25 * 2.0**127), f32(3e38),
            f32(1.0), f32(0.75), f32(0.0), f32(fmt.min_normal), f32(2.0**-149)]
    rng = np.random.default_rng(fmt.exp_bits * 1000 + fmt.man_bits * 10 + len(fmt.rounding))
    random_top = ((rng.integers(250, 255, 40) << 23) | rng.integers(0, 2**23, 40)).astype(np.uint32).view(np.float32)
    x = np.array([*base, *random_top], dtype=np.float32)
    x = np.concatenate([x, -x, [np.float32(np.nan)]]).astype(np.float32)
    return x


def _words(shape) -> np.ndarray:
    words = np.random.default_rng(5).integers(0, 2**32, shape, dtype=np.uint32)
    words.ravel()[:4] = [0, 0xFFFFFFFF, 0x80000000, 0xFF]
    return words


def _case(fmt: str):
    f = dmxnum.parse(fmt)
    x = _inputs(f)
    words = _words(x.shape) if f.stochastic else None
    return f, x, words


@pytest.mark.parametrize("backend", ["numpy", "torch", "jax"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_eager_cast_at_and_above_max(backend: str, fmt: str) -> None:
    f, x, words = _case(fmt)
    with np.errstate(all="ignore"):
        y = dmxnum.cast(to_backend(x, backend), f, random_bits=to_backend(words, backend))
    assert_bit_exact(y, f, x, random_bits=words)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_every_eager_path_at_and_above_max(backend: str, fmt: str) -> None:
    f, x, words = _case(fmt)
    paths = [p.name for p in dmxnum.kernel_paths(f, backend) if p.applies]
    assert paths[-1] == "fp.integer"
    for path in paths:
        y = dmxnum.cast(to_backend(x, backend), f, random_bits=to_backend(words, backend), path=path)
        assert_bit_exact(y, f, x, random_bits=words)


def test_the_reported_case() -> None:
    f = dmxnum.parse("FP[1|8|0,127](_Z)")
    assert str(f) == "FP[1|8|0,127](_Z)"
    x = np.array([2.0**127, 3e38, np.inf, -np.inf, 1.5 * 2**126, 2.0**126], np.float32)
    want = np.array([2.0**127, 2.0**127, 2.0**127, -(2.0**127), 2.0**126, 2.0**126], np.float32)
    for backend in ("numpy", "torch", "jax"):
        y = np.asarray(to_numpy(dmxnum.cast(to_backend(x, backend), f)))
        assert np.array_equal(y.view(np.uint32), want.view(np.uint32)), (backend, y)


@functools.lru_cache(maxsize=None)
def _jitted(fmt: str):
    import jax

    return jax.jit(lambda v, w: dmxnum.cast(v, fmt, random_bits=w))


@pytest.mark.parametrize("fmt", [t.format(r=r) for t in TEMPLATES[:3] + TEMPLATES[5:7] for r in ROUNDINGS])
def test_jax_jit_at_and_above_max(fmt: str) -> None:
    import jax.numpy as jnp

    f, x, words = _case(fmt)
    y = _jitted(fmt)(jnp.asarray(x), None if words is None else jnp.asarray(words))
    assert_bit_exact(y, f, x, random_bits=words)


# a small fixed set: each torch.compile costs seconds
@pytest.mark.parametrize("fmt", ["FP[1|8|0,127](_Z)", "FP[1|8|0,128](_NA)", "FP[1|5|0,-97](_S)"])
def test_torch_compile_at_and_above_max(fmt: str) -> None:
    import torch

    f, x, words = _case(fmt)
    compiled = torch.compile(lambda v, w: dmxnum.cast(v, fmt, random_bits=w), dynamic=False)
    y = compiled(torch.from_numpy(x), None if words is None else torch.from_numpy(words.view(np.int32)))
    assert_bit_exact(y, f, x, random_bits=words)
