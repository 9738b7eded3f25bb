"""FP formats on float32's exponent grid (``FP[1|8|m,127]``, e.g. ``BF16``) take
the bit-pattern path (``dmxnum/kernels/f32grid.py``) on every backend; it equals
the reference bit for bit, eager (Hypothesis) and under ``jax.jit`` and
``torch.compile`` (fixed matrix)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from hypothesis import given, strategies as st
from hypothesis.extra import numpy as hnp

import dmxnum
from dmxnum.formats.floating import FloatingPoint
from dmxnum.kernels import f32grid
from dmxnum.testing import arrays_for, assert_bit_exact
from dmxnum.testing.backends import BACKENDS, to_backend
from tests_data import edge_heavy

WORDS = st.one_of(st.just(0), st.just(2**32 - 1), st.just(0x80000000), st.integers(0, 2**32 - 1))


@st.composite
def grid_formats(draw: st.DrawFn) -> FloatingPoint:
    """Signed ``FP[1|8|m,127]`` formats with every scheme, rounding and flush."""
    man = draw(st.sampled_from([0, 1, 2, 3, 7, 10, 22, 23]) | st.integers(0, 23))
    scheme = draw(st.sampled_from(["", "I"]))  # saturating or IEEE; E and A leave float32
    flush = draw(st.booleans())
    rounding = draw(st.sampled_from("NSUDZ"))
    fmt = dmxnum.parse(f"FP[1|8|{man},127]({'F' if flush else '_'}{rounding}{scheme})")
    assert f32grid.applies(fmt)
    return fmt


@pytest.mark.parametrize("backend", BACKENDS)
@given(data=st.data())
def test_grid_path_matches_reference(backend: str, data: st.DataObject) -> None:
    fmt = data.draw(grid_formats(), label="fmt")
    x = data.draw(arrays_for(fmt), label="x")
    words = data.draw(hnp.arrays(np.uint32, x.shape, elements=WORDS), label="words") if fmt.stochastic else None
    y = dmxnum.cast(to_backend(x, backend), fmt, random_bits=to_backend(words, backend))
    assert_bit_exact(y, fmt, x, random_bits=words)


def test_applies_only_on_float32_grid() -> None:
    assert f32grid.applies(dmxnum.parse("BF16"))
    assert f32grid.applies(dmxnum.parse("FP32"))
    assert not f32grid.applies(dmxnum.parse("FP16"))
    assert not f32grid.applies(dmxnum.parse("FP[0|8|7,127](_N)"))  # unsigned
    assert not f32grid.applies(dmxnum.parse("FP[1|8|7,128](_NI)"))  # other bias


MATRIX = ["BF16", "FP[1|8|7,127](_S)", "FP[1|8|7,127](FN)", "FP[1|8|0,127](_NI)", "FP[1|8|3,127](_U)",
          "FP[1|8|22,127](_DI)", "FP[1|8|10,127](_ZI)", "FP32"]


def _inputs(fmt: str, seed: int):
    x = edge_heavy((64, 48), seed)
    words = np.random.default_rng(seed).integers(0, 2**32, x.shape, dtype=np.uint32)
    return x, (words if dmxnum.parse(fmt).stochastic else None)


@pytest.mark.parametrize("fmt", MATRIX)
def test_grid_path_under_jit(fmt: str) -> None:
    x, words = _inputs(fmt, 3)
    f = jax.jit(lambda v, w: dmxnum.cast(v, fmt, random_bits=w))
    y = f(jnp.asarray(x), None if words is None else jnp.asarray(words))
    assert_bit_exact(y, fmt, x, random_bits=words)


@pytest.mark.parametrize("fmt", MATRIX[:4])
def test_grid_path_under_torch_compile(fmt: str) -> None:
    x, words = _inputs(fmt, 4)
    f = torch.compile(lambda v, w: dmxnum.cast(v, fmt, random_bits=w), dynamic=False)
    w = None if words is None else torch.from_numpy(words.view(np.int32))
    assert_bit_exact(f(torch.from_numpy(x), w), fmt, x, random_bits=words)
