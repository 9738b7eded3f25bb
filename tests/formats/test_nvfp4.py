"""NVFP4 ``NVFP4{b,d}`` and ``NVFP4{b,d}(T)``: every kernel path equals the
reference bit for bit on NumPy, PyTorch (eager and ``torch.compile``) and JAX
(``jit``, ``vmap`` with a tensor scale per mapped slice, straight-through
``grad``); static tensor scales; encode/decode; edge cases; the worked
example of ``docs/formats.md``."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

import dmxnum
from dmxnum import _backend as B
from dmxnum.formats.nvfp4 import NVFP4
from dmxnum.kernels import nvfp4 as kernel
from dmxnum.kernels.families import cast_float32
from dmxnum.reference.cast import _cast_nvfp4, cast as reference_cast, float32_bits
from dmxnum.testing import arrays_for, formats
from dmxnum.testing.backends import to_backend

BACKENDS = ("numpy", "torch", "jax")
#: binades of the rows of :func:`nv_data`: subnormal, the 2^-118 / 2^-120 edges, the scale clamps, huge
EXPONENTS = np.array([-149, -140, -130, -126, -120, -115, -110, -100, -60, -10, -8, -6, -3, 0, 3, 8, 9, 10, 20,
                      100, 120, 126])
SPECIALS = np.array([0.0, -0.0, 6 * 2.0**-6, 6 * 2.0**-7, 2688.0, 5376.0, 6 * 0.875 * 2.0**-6, 6.75, 6 * 2.0**-9,
                     3.4028235e38, 448.0, 6.0, -1.4e-45])


def nv_data(shape: tuple[int, ...], seed: int, finite: bool = False, tiny: bool = False) -> np.ndarray:
    """Edge-heavy NVFP4 data: each index of axis 0 in its own binade
    (subnormal to 2^126), with E2M1 ties and grid points after scaling,
    subnormals, the scale-clamp edges, ±0 and (unless ``finite``) a few
    NaN/±Inf; ``tiny`` scales everything by 2^-110..2^-129 (a two-level
    ``g`` below 2^-118)."""
    rng = np.random.default_rng(seed)
    exps = rng.choice(EXPONENTS, (shape[0],) + (1,) * (len(shape) - 1))
    base = rng.standard_normal(shape) * 2.0**exps
    ties = (rng.integers(-12, 12, shape) + 0.5) * 2.0 ** (exps - rng.integers(0, 4, shape))
    grid = (rng.choice(np.array([0, 0.5, 1, 1.5, 2, 3, 4, 6, 0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5]), shape)
            * rng.choice([-1, 1], shape) * 2.0**exps)
    sub = (rng.integers(0, 2**23, shape, dtype=np.uint32)
           | (rng.integers(0, 2, shape, dtype=np.uint32) << 31)).view(np.float32).astype(np.float64)
    kind = rng.integers(0, 10, shape)
    x = np.select([kind < 3, kind < 5, kind < 7, kind == 7], [base, ties, grid, sub], base)
    x = np.clip(x, -3.4e38, 3.4e38)
    x = np.where(rng.random(shape) < 0.05, rng.choice(SPECIALS, shape), x)
    if not finite:
        x = np.where(rng.random(shape) < 0.01, rng.choice(np.array([np.inf, -np.inf, np.nan]), shape), x)
    x = x.astype(np.float32)
    if tiny:
        x = (x * np.float32(2.0 ** -int(rng.integers(110, 130)))).astype(np.float32)
    return x


def same(a, b) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    return bool(((a.view(np.uint32) == b.view(np.uint32)) | (np.isnan(a) & np.isnan(b))).all())


def assert_same(got, want, what: str = "") -> None:
    got, want = np.asarray(got), np.asarray(want)
    if not same(got, want):
        bad = np.nonzero(~((got.view(np.uint32) == want.view(np.uint32)) | (np.isnan(got) & np.isnan(want))))
        raise AssertionError(f"{what}: {len(bad[0])} mismatches, first got {got[bad][:4]} want {want[bad][:4]}")


def applicable(fmt, backend: str, compiled: bool = False) -> list[str]:
    return [p.name for p in dmxnum.kernel_paths(fmt, backend, compiled) if p.applies]


def run(x: np.ndarray, fmt, backend: str, path: str) -> np.ndarray:
    y = dmxnum.cast(to_backend(x, backend), fmt, path=path)
    return y.numpy() if backend == "torch" else np.asarray(y)


@st.composite
def nv_arrays(draw: st.DrawFn, fmt) -> np.ndarray:
    """:func:`dmxnum.testing.arrays_for` ``(fmt)`` or :func:`nv_data` of a small block-shaped array."""
    if draw(st.booleans()):
        return draw(arrays_for(fmt, max_elements=48))
    b = fmt.block_size
    shape = (draw(st.integers(1, 4)), draw(st.integers(1, max(1, min(48 // 4, 2 * b + 3)))))
    if fmt.axis % 2 == 0:
        shape = shape[::-1]
    return nv_data(shape, draw(st.integers(0, 2**32 - 1)), finite=draw(st.booleans()), tiny=draw(st.booleans()))


# ----------------------------------------------------------------------------- properties
@pytest.mark.parametrize("b", [1, 3, 16, 32])
def test_properties(b: int) -> None:
    for fmt in (NVFP4(b, -1), NVFP4(b, -1, True)):
        assert fmt.max_value == 2688.0
        assert fmt.min_positive == 2.0**-7
        assert fmt.bits_per_element == 4 + 8 / b
        assert dmxnum.parse(str(fmt)) == fmt


def test_paths_listed_per_backend() -> None:
    assert applicable("NVFP4", "numpy") == ["nvfp4.float", "nvfp4.integer"]
    assert applicable("NVFP4", "torch", True) == ["nvfp4.float", "nvfp4.integer"]
    assert applicable("NVFP4", "jax") == ["nvfp4.float", "nvfp4.integer"]
    assert applicable("NVFP4(T)", "jax") == ["nvfp4.float|integer", "nvfp4.integer"]
    assert applicable("NVFP4(T)", "torch") == ["nvfp4.float", "nvfp4.integer"]
    assert kernel.PATHS[-1].name == "nvfp4.integer"


# ----------------------------------------------------------------------------- eager, Hypothesis
@settings(deadline=None)
@given(data=st.data())
def test_eager_paths_match_reference(data: st.DataObject) -> None:
    fmt = data.draw(formats(families="NVFP4", max_block_size=20))
    x = data.draw(nv_arrays(fmt))
    want = reference_cast(x, fmt)
    for backend in ("numpy", "torch"):
        for path in applicable(fmt, backend):
            assert_same(run(x, fmt, backend, path), want, f"{fmt} {backend} {path}")


# ----------------------------------------------------------------------------- jax.jit
#: (format, shape): fixed shapes keep the number of jit compilations small
JAX_CASES = [("NVFP4", (4, 32)), ("NVFP4(T)", (4, 32)), ("NVFP4{1,-1}(T)", (3, 7)), ("NVFP4{5,0}(T)", (12, 3)),
             ("NVFP4{3,-1}", (2, 10)), ("NVFP4{16,0}", (20, 2))]


@settings(deadline=None, max_examples=40)
@given(case=st.sampled_from(JAX_CASES), seed=st.integers(0, 2**32 - 1), finite=st.booleans(), tiny=st.booleans())
def test_jax_paths_match_reference(case, seed: int, finite: bool, tiny: bool) -> None:
    fmt, shape = case
    x = nv_data(shape, seed, finite, tiny)
    want = reference_cast(x, fmt)
    for path in applicable(fmt, "jax"):
        assert_same(run(x, fmt, "jax", path), want, f"{fmt} jax {path}")


def test_jax_vmap_scales_each_mapped_slice_and_grad_is_straight_through() -> None:
    x = nv_data((4, 3, 32), 7, finite=True)
    x = (x * np.array([1e3, 1.0, 2.0**-125, 2.0**100], np.float32).reshape(4, 1, 1)).astype(np.float32)
    for fmt in ("NVFP4(T)", "NVFP4{5,0}(T)", "NVFP4"):
        got = jax.vmap(lambda v, f=fmt: dmxnum.cast(v, f))(jnp.asarray(x))
        assert_same(got, np.stack([reference_cast(x[i], fmt) for i in range(4)]), f"vmap {fmt}")
        grad = jax.grad(lambda v, f=fmt: jnp.sum(dmxnum.cast(v, f) * 3.0))(jnp.asarray(x))
        assert (np.asarray(grad) == 3.0).all()


def test_torch_gradient_is_straight_through() -> None:
    x = torch.from_numpy(nv_data((4, 16), 3, finite=True)).requires_grad_()
    (dmxnum.cast(x, "NVFP4(T)") * 2.0).sum().backward()
    assert (x.grad == 2.0).all()


# ----------------------------------------------------------------------------- torch.compile
#: one compiled graph for every (format, path) below: compiling is the slow part
COMPILED = [("NVFP4", "nvfp4.float"), ("NVFP4{5,0}(T)", "nvfp4.float"), ("NVFP4{3,-1}(T)", "nvfp4.integer")]


@functools.lru_cache(maxsize=1)
def _compiled():
    return torch.compile(lambda v: [dmxnum.cast(v, f, path=p) for f, p in COMPILED], fullgraph=True, dynamic=False)


def test_torch_compile_paths_match_reference() -> None:
    fn = _compiled()
    for seed in range(6):
        x = nv_data((6, 32), seed, finite=seed % 2 == 0, tiny=seed % 3 == 2)
        for (fmt, path), y in zip(COMPILED, fn(torch.from_numpy(x))):
            assert_same(y.numpy(), reference_cast(x, fmt), f"compiled {fmt} {path}")


# ----------------------------------------------------------------------------- static tensor scales
def _static_cases():
    rows = (2.0 ** np.random.default_rng(5).integers(-120, 117, (4, 1))).astype(np.float32)
    return [np.float32(2.0**-120), np.float32(3 * 2.0**-119), np.float32(0.37), np.float32(2.0**116), rows]


@functools.lru_cache(maxsize=None)
def _jitted_static(path: str):
    return jax.jit(lambda v, s: cast_float32(v, NVFP4(16, -1, True), None, path, scale=s))


@pytest.mark.parametrize("g_index", range(5))
def test_static_tensor_scale_on_every_path(g_index: int) -> None:
    """The kernels' ``scale=`` contract: the tensor scale used instead of the default
    (per tensor or per row), against the reference's ``tensor_scale=``."""
    fmt = NVFP4(16, -1, True)
    g = np.asarray(_static_cases()[g_index], np.float32)
    for seed in range(3):
        x = nv_data((4, 24), seed + 10 * g_index)
        want = _cast_nvfp4(float32_bits(x), None, fmt, tensor_scale=g).view(np.float32)
        for backend in ("numpy", "torch"):
            for path in applicable(fmt, backend):
                got = cast_float32(to_backend(x, backend), fmt, None, path, scale=to_backend(g, backend))
                assert_same(got.numpy() if backend == "torch" else got, want, f"{backend} {path} g={g.ravel()[:2]}")
        for path in applicable(fmt, "jax"):
            got = _jitted_static(path)(jnp.asarray(x), jnp.asarray(g))
            assert_same(got, want, f"jax {path} g={g.ravel()[:2]}")


# ----------------------------------------------------------------------------- edge cases
@pytest.mark.parametrize("backend", BACKENDS)
def test_all_zero_two_level_has_the_smallest_tensor_scale_and_keeps_signs(backend: str) -> None:
    x = np.zeros((4, 32), np.float32)
    x[np.random.default_rng(0).random(x.shape) < 0.5] = -0.0
    xb = to_backend(x, backend)
    assert float(kernel.tensor_scale(B.namespace(xb), xb)) == 2.0**-120
    if backend != "jax":  # eager JAX encoding compiles every small operation: see the NaN-block test
        assert float(np.asarray(dmxnum.encode(to_backend(x, backend), "NVFP4(T)").scale)) == 2.0**-120
    for fmt in ("NVFP4(T)", "NVFP4"):
        for path in applicable(fmt, backend):
            assert run(x, fmt, backend, path).view(np.uint32).tolist() == x.view(np.uint32).tolist()


@pytest.mark.parametrize("backend", BACKENDS)
def test_non_finite_blocks_are_nan_and_inf_is_not_the_tensor_amax(backend: str) -> None:
    x = np.array([[np.inf, 3000.0, 1.0, -2.0], [100.0, -7.0, 0.5, -0.0], [np.nan, 1.0, 2.0, 3.0]], np.float32)
    fmt = "NVFP4{4,-1}(T)"
    # g from the largest finite |x| (3000, in the Inf block), not from Inf
    assert float(kernel.tensor_scale(np, x)) == float(np.float32(3000.0) / np.float32(2688.0))
    want = reference_cast(x, fmt)
    assert np.isnan(want[0]).all() and np.isnan(want[2]).all() and not np.isnan(want[1]).any()
    finite_rows = x[1:2]
    g = np.float32(3000.0) / np.float32(2688.0)
    expect = _cast_nvfp4(float32_bits(finite_rows), None, dmxnum.parse(fmt), tensor_scale=g).view(np.float32)
    assert_same(want[1:2], expect, "row 1 with g from 3000")
    assert want[1, 3].tobytes() == np.float32(-0.0).tobytes()
    for path in applicable(fmt, backend):
        assert_same(run(x, fmt, backend, path), want, f"{backend} {path}")


@pytest.mark.parametrize("backend", BACKENDS)
def test_negative_zero_and_subnormal_signs(backend: str) -> None:
    values = np.array([-0.0, -1e-45, 1e-45, -1e-40, 6.0, -0.25, 0.25, -0.75], np.float32)
    x = np.tile(values, 16).reshape(4, 32)  # a shape of JAX_CASES: its jitted casts are reused
    for fmt in ("NVFP4", "NVFP4(T)"):
        want = reference_cast(x, fmt)
        for path in applicable(fmt, backend):
            assert_same(run(x, fmt, backend, path), want, f"{fmt} {backend} {path}")


# ----------------------------------------------------------------------------- encoding
@pytest.mark.parametrize("backend", ["numpy", "torch"])
@settings(deadline=None, max_examples=30)
@given(data=st.data())
def test_decode_encode_equals_cast(backend: str, data: st.DataObject) -> None:
    fmt = data.draw(formats(families="NVFP4", max_block_size=20))
    x = data.draw(nv_arrays(fmt))
    enc = dmxnum.encode(to_backend(x, backend), fmt)
    codes = np.asarray(enc.codes.numpy() if backend == "torch" else enc.codes)
    assert codes.dtype == np.uint8 and (codes < 16).all()
    assert (enc.scale is None) == (not fmt.tensor_scale)
    got = dmxnum.decode(enc)
    assert_same(got.numpy() if backend == "torch" else got, reference_cast(x, fmt), f"{fmt} {backend}")


def test_encode_nan_block_stores_scale_code_0x7f_and_jax_round_trip() -> None:
    x = nv_data((3, 32), 1, finite=True)
    x[1, 4] = np.nan
    x[2, 20] = -np.inf
    for fmt in ("NVFP4", "NVFP4(T)"):
        want = reference_cast(x, fmt)
        for backend in BACKENDS if fmt == "NVFP4(T)" else ("numpy", "torch"):
            enc = dmxnum.encode(to_backend(x, backend), fmt)
            scales = np.asarray(enc.scales.numpy() if backend == "torch" else enc.scales)
            assert scales[1, 0] == 0x7F and scales[2, 1] == 0x7F and (np.delete(scales.ravel(), [2, 5]) != 0x7F).all()
            got = dmxnum.decode(enc)
            assert_same(got.numpy() if backend == "torch" else got, want, f"{fmt} {backend}")


@pytest.mark.parametrize("shape", [(0, 16), (2, 0)])
def test_empty_arrays(shape: tuple[int, int]) -> None:
    x = np.zeros(shape, np.float32)
    for fmt in ("NVFP4", "NVFP4(T)"):
        assert dmxnum.cast(x, fmt).shape == shape
        enc = dmxnum.encode(x, fmt)
        assert dmxnum.decode(enc).shape == shape
    assert float(kernel.tensor_scale(np, x)) == 2.0**-120


def test_decode_two_level_needs_the_tensor_scale() -> None:
    enc = dmxnum.encode(np.ones((1, 16), np.float32), "NVFP4(T)")
    with pytest.raises(ValueError, match="tensor scale"):
        dmxnum.decode((enc.codes, enc.scales), "NVFP4(T)")


# ----------------------------------------------------------------------------- docs
def test_worked_example_of_docs_formats() -> None:
    x = np.array([[1.0, -0.3, 2.9, 10.0, 0.07, 0.0, -0.0, 7.5, 4.4, -12.5, 3.3, 0.6, -1.9, 0.01, 5.2, 8.8],
                  [0.05, -0.03, 0.011, 0.002, 0.04, -0.045, 0.0, 0.025, 0.018, -0.008, 0.033, 0.001, -0.02,
                   0.049, 0.006, -0.05]], np.float32)
    one = dmxnum.cast(x, "NVFP4")  # row 0: s = e4m3(12.5 / 6) = 2, r = 0.5
    assert one[0].tolist() == [1.0, -0.0, 3.0, 8.0, 0.0, 0.0, -0.0, 8.0, 4.0, -12.0, 3.0, 1.0, -2.0, 0.0, 6.0, 8.0]
    assert (one[1] * 64).tolist() == [3.0, -2.0, 0.5, 0.0, 3.0, -3.0, 0.0, 1.5, 1.0, -0.5, 2.0, 0.0, -1.5, 3.0, 0.5, -3.0]
    two = dmxnum.cast(x, "NVFP4(T)")
    g = np.float32(12.5) / np.float32(2688)
    gs = np.float32(g * np.float32(448))  # row 0: fl32(g * s) = 2.0833333
    assert two[0].tolist() == (np.array([0.5, -0, 1.5, 4, 0, 0, -0, 4, 2, -6, 1.5, 0.5, -1, 0, 2, 4], np.float32) * gs).tolist()
    assert two[1].tolist() == [0.048828125, -0.0325520820915699, 0.01220703125, 0.0, 0.0325520820915699, -0.048828125,
                               0.0, 0.0244140625, 0.01627604104578495, -0.008138020522892475, 0.0325520820915699, 0.0,
                               -0.01627604104578495, 0.048828125, 0.0040690102614462376, -0.048828125]
    enc = dmxnum.encode(x, "NVFP4(T)")  # E2M1 codes, E4M3 scale codes, the tensor scale
    assert enc.scales.tolist() == [[0x7E], [0x3E]] and float(enc.scale) == float(g)  # 448 and 1.75
    assert enc.codes[0, :4].tolist() == [0x1, 0x8, 0x3, 0x6]  # 0.5, -0, 1.5, 4
    for v in (one, two):
        assert_same(v, reference_cast(x, "NVFP4" if v is one else "NVFP4(T)"), "reference")
