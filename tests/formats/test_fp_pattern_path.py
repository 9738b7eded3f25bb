"""The FP bit-pattern path (``fp.pattern``, ``dmxnum/kernels/fp_pattern.py``)
equals the reference bit for bit: forced by name on every backend
(Hypothesis, every rounding letter), and under ``jax.jit`` and
``torch.compile`` (where it is the path ``cast`` chooses) on a fixed matrix."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from hypothesis import given, strategies as st
from hypothesis.extra import numpy as hnp

import dmxnum
from dmxnum.kernels import fp_pattern
from dmxnum.kernels.paths import Ctx
from dmxnum.testing import arrays_for, assert_bit_exact, formats
from dmxnum.testing.backends import BACKENDS, to_backend
from tests_data import edge_heavy

WORDS = st.one_of(st.just(0), st.just(2**32 - 1), st.just(0x80000000), st.integers(0, 2**32 - 1))


@st.composite
def grid_formats(draw: st.DrawFn):
    """Signed ``FP[1|8|m,127]`` formats (float32's exponent grid), any rounding and flush."""
    man = draw(st.sampled_from([0, 1, 2, 3, 7, 10, 22, 23]) | st.integers(0, 23))
    scheme = draw(st.sampled_from(["", "I"]))  # saturating or IEEE; E and A leave float32
    flush = draw(st.booleans())
    rounding = draw(st.sampled_from("NSUDZ"))
    return dmxnum.parse(f"FP[1|8|{man},127]({'F' if flush else '_'}{rounding}{scheme})")


# the context of an eager cast on each backend (JAX casts are always traced)
CTX = {"numpy": Ctx("numpy", False), "torch": Ctx("torch", False), "jax": Ctx("jax", True)}


def _applies(fmt, backend: str, compiled: bool = False) -> bool:
    """Whether ``fp.pattern`` applies to ``fmt`` on ``backend`` (public listing)."""
    return any(p.name == "fp.pattern" and p.applies for p in dmxnum.kernel_paths(fmt, backend, compiled))


def _chosen(fmt, backend: str, compiled: bool = False) -> str:
    """The path ``cast`` runs for ``fmt`` on ``backend``: the first that applies."""
    return next(p.name for p in dmxnum.kernel_paths(fmt, backend, compiled) if p.applies)


def _path_formats(backend: str):
    return (formats(families="FP") | grid_formats()).filter(lambda f: _applies(f, backend))


@pytest.mark.parametrize("backend", BACKENDS)
@given(data=st.data())
def test_fp_bits_path_matches_reference(backend: str, data: st.DataObject) -> None:
    fmt = data.draw(_path_formats(backend), label="fmt")
    x = data.draw(arrays_for(fmt), label="x")
    words = data.draw(hnp.arrays(np.uint32, x.shape, elements=WORDS), label="words") if fmt.stochastic else None
    y = dmxnum.cast(to_backend(x, backend), fmt, random_bits=to_backend(words, backend), path="fp.pattern")
    assert_bit_exact(y, fmt, x, random_bits=words)


def test_applies() -> None:
    def applies(fmt: str, backend: str) -> bool:
        reason = fp_pattern.why_not(dmxnum.parse(fmt), CTX[backend])
        assert (reason is None) == _applies(fmt, backend), (fmt, backend, reason)  # the listing agrees
        return reason is None

    assert applies("BF16", "jax")
    assert applies("FP16", "jax")
    assert applies("FP[1|5|2,15](_S)", "jax")
    assert not applies("FP[1|8|1,149](_D)", "numpy")  # emin below float32's
    assert not applies("FP[1|3|0,4](_NI)", "numpy")  # m = 0, even bias: ties differ
    assert applies("FP[1|3|0,3](_NI)", "numpy")
    assert not applies("FP[1|5|4,123](_N)", "jax")  # quantum 2^-126 meets XLA's DAZ
    assert applies("FP[1|5|4,123](_N)", "numpy")


MATRIX = ["BF16", "FP16", "FP8_E5M2", "FP4_E2M1", "FP[1|5|2,15](_S)", "FP[1|8|7,127](_S)", "FP[1|8|7,127](FN)",
          "FP[1|8|0,127](_NI)", "FP[1|3|0,3](_NI)", "FP[1|8|3,127](_U)", "FP[1|5|3,20](_DI)", "FP[0|5|3,20](FU)",
          "FP[1|4|6,4](_ZE)", "FP[1|6|5,40](_S)", "FP[1|8|22,127](_DI)", "FP32"]


def _inputs(fmt: str, seed: int):
    x = edge_heavy((64, 48), seed)
    words = np.random.default_rng(seed).integers(0, 2**32, x.shape, dtype=np.uint32)
    return x, (words if dmxnum.parse(fmt).stochastic else None)


@pytest.mark.parametrize("fmt", MATRIX)
def test_fp_bits_path_under_jit(fmt: str) -> None:
    assert fp_pattern.why_not(dmxnum.parse(fmt), CTX["jax"]) is None
    assert _chosen(fmt, "jax") == "fp.pattern"
    x, words = _inputs(fmt, 3)
    f = jax.jit(lambda v, w: dmxnum.cast(v, fmt, random_bits=w))
    y = f(jnp.asarray(x), None if words is None else jnp.asarray(words))
    assert_bit_exact(y, fmt, x, random_bits=words)


@pytest.mark.parametrize("fmt", MATRIX[::2] + ["FP[1|5|2,15](_S)"])
def test_fp_bits_path_under_torch_compile(fmt: str) -> None:
    assert _chosen(fmt, "torch", compiled=True) == "fp.pattern"
    x, words = _inputs(fmt, 4)
    f = torch.compile(lambda v, w: dmxnum.cast(v, fmt, random_bits=w), dynamic=False)
    w = None if words is None else torch.from_numpy(words.view(np.int32))
    assert_bit_exact(f(torch.from_numpy(x), w), fmt, x, random_bits=words)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("fmt", ["FP[1|5|2,15](_S)", "FP[1|5|10,15](_Z)", "FP[1|4|3,7](_U)", "FP[1|5|23,15](_N)", "FP[1|3|2,3](FD)"])
def test_eager_rounds_a_few_small_values_apart(backend: str, fmt: str) -> None:
    """Eager casts round the few values below the smallest normal by indexing
    (fewer than 1 in 8); the rest of the array keeps the bit path (forced,
    as well as the path ``cast`` chooses)."""
    rng = np.random.default_rng(5)
    x = (rng.standard_normal(4096) * 100).astype(np.float32)
    tiny = rng.choice(4096, 300, replace=False)
    x[tiny] = edge_heavy((300,), 6)
    words = rng.integers(0, 2**32, x.shape, dtype=np.uint32) if dmxnum.parse(fmt).stochastic else None
    y = dmxnum.cast(to_backend(x, backend), fmt, random_bits=to_backend(words, backend))
    assert_bit_exact(y, fmt, x, random_bits=words)
    y = dmxnum.cast(to_backend(x, backend), fmt, random_bits=to_backend(words, backend), path="fp.pattern")
    assert_bit_exact(y, fmt, x, random_bits=words)
