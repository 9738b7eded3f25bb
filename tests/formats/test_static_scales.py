"""Static scales ``cast(x, fmt, scale=s)``: ``fl32(cast(fl32(x / s)) * s)``,
bit for bit against the reference on every backend (NumPy, PyTorch eager and
compiled, JAX under jit / vmap / grad), per tensor, per channel and per
group, with subnormal-heavy data; encode/decode with a scale; errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings, strategies as st

import dmxnum
from dmxnum import reference
from dmxnum.formats import FixedPoint
from dmxnum.kernels import static_scale
from dmxnum.testing import arrays_for, formats
from dmxnum.testing.assertions import same_bits, to_numpy
from dmxnum.testing.backends import BACKENDS, to_backend

FP32 = "FP[1|8|23,127](_NI)"  # float32's own grid: the cast is the identity
INTEGER_CODES = ("FixedPoint", "BlockFloatingPoint", "MXInt", "ScaledBFP")


def _bits(v: float) -> int:
    return int(np.float32(v).view(np.uint32))


def scale_values(two_level: bool = False) -> st.SearchStrategy[np.float32]:
    """Positive normal float32 scales, favouring the ends of the range (subnormal
    quotients and products) and powers of two; within ``[2^-120, 2^116]`` for ``NVFP4(T)``."""
    lo, hi = (_bits(2.0**-120), _bits(2.0**116)) if two_level else (0x00800000, 0x7F7FFFFF)
    ends = st.one_of(st.integers(lo, lo + (40 << 23)), st.integers(hi - (40 << 23), hi))
    powers = st.integers(lo >> 23, hi >> 23).map(lambda e: e << 23)
    middle = st.integers(_bits(2.0**-8), _bits(2.0**8))
    bits = st.one_of(ends, powers, middle, st.integers(lo, hi))
    return bits.map(lambda b: np.array(b, np.uint32).view(np.float32)[()])


@st.composite
def scales_for(draw: st.DrawFn, shape: tuple[int, ...], fmt) -> np.ndarray:
    """A scale of a shape that broadcasts to ``shape``: per tensor (0-d or all
    ones), per channel / per group (some axes kept, others 1, leading axes dropped)."""
    two_level = getattr(fmt, "tensor_scale", False)
    if two_level or not shape or draw(st.integers(0, 3)) == 0:
        s_shape: tuple[int, ...] = ()
    else:
        keep = draw(st.lists(st.booleans(), min_size=len(shape), max_size=len(shape)))
        s_shape = tuple(n if k else 1 for n, k in zip(shape, keep))
        s_shape = s_shape[draw(st.integers(0, len(s_shape))):]
    n = int(np.prod(s_shape, dtype=np.int64))
    values = draw(st.lists(scale_values(two_level), min_size=n, max_size=n))
    return np.array(values, np.float32).reshape(s_shape)


def _draw_case(data: st.DataObject, roundings: str = "NSUDZ"):
    fmt = data.draw(formats(roundings=roundings, max_block_size=8), label="fmt")
    x = data.draw(arrays_for(fmt, max_elements=48, max_side=6), label="x")
    s = data.draw(scales_for(x.shape, fmt), label="s")
    words = np.random.default_rng(x.size).integers(0, 2**32, x.shape, dtype=np.uint32) if fmt.stochastic else None
    return fmt, x, s, words


def _assert_same(got, want, what) -> None:
    got = to_numpy(got)
    ok = same_bits(got, want)
    assert ok.all(), (what, np.argwhere(~ok)[:4].tolist(), got[~ok][:4], want[~ok][:4])


# ----------------------------------------------------------------------------- against the reference
@settings(max_examples=60)
@given(data=st.data())
def test_scaled_cast_matches_reference_numpy_torch(data: st.DataObject) -> None:
    fmt, x, s, words = _draw_case(data)
    want = reference.cast(x, fmt, random_bits=words, scale=s)
    for backend in ("numpy", "torch"):
        got = dmxnum.cast(to_backend(x, backend), fmt, random_bits=to_backend(words, backend),
                          scale=to_backend(s, backend))
        _assert_same(got, want, (backend, str(fmt), s.ravel()[:2]))


# every new shape and format compiles: fewer examples, the same property
@settings(max_examples=4)
@given(data=st.data())
def test_scaled_cast_matches_reference_jax(data: st.DataObject) -> None:
    fmt, x, s, words = _draw_case(data)
    want = reference.cast(x, fmt, random_bits=words, scale=s)
    got = dmxnum.cast(to_backend(x, "jax"), fmt, random_bits=to_backend(words, "jax"), scale=to_backend(s, "jax"))
    _assert_same(got, want, str(fmt))


def _subnormal_heavy(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Bits of every kind: subnormals, tiny and huge normals, zeros, Inf, NaN, ordinary values."""
    n = int(np.prod(shape))
    mag = rng.integers(0, 0x7F800000, n, dtype=np.int64)
    mag[: n // 3] &= 0x7FFFFF  # subnormals
    mag[n // 3: n // 2] = rng.integers(0x00800000, 0x0C000000, n // 2 - n // 3)  # tiny normals
    mag[n // 2: 2 * n // 3] = rng.integers(0x3E000000, 0x42000000, 2 * n // 3 - n // 2)  # ordinary
    mag[-3:] = [0, 0x7F800000, 0x7FC00000]
    sign = rng.integers(0, 2, n, dtype=np.int64) << 31
    return rng.permutation((mag | sign).astype(np.uint32)).view(np.float32).reshape(shape)


# formats whose inner cast keeps subnormal results, plus ordinary deployment formats
JIT_FORMATS = (FP32, "INT8", "FP[1|8|10,127](_US)", "MXFP4[E2M1]{8,-1}", "NVFP4{4,-1}(T)")


@pytest.mark.parametrize("fmt", JIT_FORMATS)
def test_jax_jit_traced_scale_subnormals(fmt: str) -> None:
    """One jitted function with ``s`` a traced argument, fed subnormal-heavy data
    and scales at both ends of the range (the guarded integer division and
    product must take over where XLA would flush)."""
    import jax
    import jax.numpy as jnp

    f = dmxnum.parse(fmt)
    rng = np.random.default_rng(7)
    two_level = getattr(f, "tensor_scale", False)
    fn = jax.jit(lambda v, s, w: dmxnum.cast(v, f, random_bits=w, scale=s))
    for i, sv in enumerate((2.0**-126, 1.7e-37, 3.1e-30, 0.75, 2.0**100, 3.0e38)):
        if two_level:
            sv = min(max(sv, 2.0**-120), 2.0**116)
        x = _subnormal_heavy(rng, (4, 16))
        s = np.full((4, 1) if not two_level else (), sv, np.float32)
        if not two_level:  # per channel, some still at the range end
            s[1:] = np.minimum(np.float64(sv) * (1.5 + i), 3.0e38)
        words = rng.integers(0, 2**32, x.shape, dtype=np.uint32)
        want = reference.cast(x, f, random_bits=words if f.stochastic else None, scale=s)
        got = fn(jnp.asarray(x), jnp.asarray(s), jnp.asarray(words) if f.stochastic else None)
        _assert_same(got, want, (fmt, sv))


def test_jax_vmap_and_grad() -> None:
    import jax
    import jax.numpy as jnp

    rng = np.random.default_rng(3)
    x = _subnormal_heavy(rng, (5, 8))
    x[~np.isfinite(x)] = 1.0
    s = np.array([2.0**-126, 1e-30, 0.02, 3.0, 1e30], np.float32)
    want = reference.cast(x, "INT8", scale=s[:, None])
    got = jax.vmap(lambda v, sv: dmxnum.cast(v, "INT8", scale=sv))(jnp.asarray(x), jnp.asarray(s))
    _assert_same(got, want, "vmap")
    # gradients: straight through in x, clipped where |x| > max_value * s; zero in s
    xs = jnp.asarray(np.array([[0.5, -3.0, 200.0, -0.01]], np.float32))
    g_x, g_s = jax.grad(lambda v, sv: dmxnum.cast(v, "INT8", scale=sv).sum(), argnums=(0, 1))(xs, jnp.float32(0.5))
    assert np.asarray(g_x).tolist() == [[1.0, 1.0, 1.0, 1.0]] and float(g_s) == 0.0
    g_x = jax.grad(lambda v: dmxnum.cast(v, "INT8", scale=jnp.float32(0.5), gradient="clip").sum())(xs)
    assert np.asarray(g_x).tolist() == [[1.0, 1.0, 0.0, 1.0]]  # 127 * 0.5 = 63.5 < 200


def test_torch_autograd_and_compile() -> None:
    import torch

    x = torch.tensor([[0.5, -3.0, 200.0, -0.01]], requires_grad=True)
    s = torch.tensor(0.5, requires_grad=True)
    dmxnum.cast(x, "INT8", scale=s, gradient="clip").sum().backward()
    assert x.grad.tolist() == [[1.0, 1.0, 0.0, 1.0]]
    assert s.grad is None  # no gradient flows to the scale
    rng = np.random.default_rng(5)
    for fmt in (dmxnum.parse(FP32),):  # float32's grid: any inexact division or product would show
        fn = torch.compile(lambda v, sv: dmxnum.cast(v, fmt, scale=sv), dynamic=False)
        for sv in (2.0**-126, 0.37, 1e30):
            xv = _subnormal_heavy(rng, (4, 16))
            s_np = np.full((4, 1), sv, np.float32)
            s_np[::2] *= np.float32(1.25)
            got = fn(torch.from_numpy(xv), torch.from_numpy(s_np))
            _assert_same(got, reference.cast(xv, fmt, scale=s_np), (fmt, sv, "torch.compile"))


# ----------------------------------------------------------------------------- exact values
@pytest.mark.parametrize("backend", BACKENDS)
def test_known_values(backend: str) -> None:
    x = to_backend(np.array([1.3, -100.0, 0.2, -0.0, np.nan], np.float32), backend)
    # x / 0.5 = 2.6, -200, 0.4 -> 3, -127 (clamped), 0 -> times 0.5
    got = to_numpy(dmxnum.cast(x, "INT8", scale=0.5))
    assert got[:4].tolist() == [1.5, -63.5, 0.0, -0.0] and np.signbit(got[3]) and np.isnan(got[4])
    # per channel: row 0 by 2, row 1 by 0.25, in FP8_E4M3FN (3 mantissa bits)
    y = to_backend(np.array([[1.1, 1000.0], [1.1, 1000.0]], np.float32), backend)
    s = to_backend(np.array([[2.0], [0.25]], np.float32), backend)
    got = to_numpy(dmxnum.cast(y, "FP8_E4M3FN", scale=s))
    assert got.tolist() == [[1.125, 896.0], [1.125, 112.0]]  # 0.55 -> 0.5625, 4.4 -> 4.5; 500, 4000 -> 448 (saturated)
    # subnormal in, normal quotient, subnormal out: float32's own grid gives x back
    tiny = to_backend(np.array([1e-40, -3e-45, 2.0**-149], np.float32), backend)
    got = to_numpy(dmxnum.cast(tiny, FP32, scale=np.float32(2.0**-20)))
    assert same_bits(got, to_numpy(tiny)).all()
    # a subnormal quotient, rounded once: 2^-126 * 1.5 / 2^4 -> 1.5 * 2^-130 (exact subnormal)
    q = to_numpy(dmxnum.cast(to_backend(np.array([1.5 * 2.0**-126], np.float32), backend), FP32, scale=16.0))
    assert q.tolist() == [np.float32(1.5 * 2.0**-126)]
    # Format.__call__ takes scale= too
    assert to_numpy(dmxnum.parse("INT8")(x, scale=0.5))[:3].tolist() == [1.5, -63.5, 0.0]


def test_float16_input_one_final_conversion() -> None:
    x16 = np.array([1.3, -100.0, 0.2, 65504.0], np.float16)
    got = dmxnum.cast(x16, "INT8", scale=np.float32(0.3))
    want = reference.cast(x16, "INT8", scale=np.float32(0.3)).astype(np.float16)
    assert got.dtype == np.float16 and same_bits(got, want).all()


def test_same_ignores_scale_and_nvfp4_tensor_scale() -> None:
    x = np.array([1.0, 2.0], np.float32)
    assert dmxnum.cast(x, "SAME", scale=-1.0) is x
    xv = np.linspace(-3, 5, 32, dtype=np.float32).reshape(2, 16)
    for g in (2.0**-120, 0.01, 1.0, 2.0**116):
        want = reference.cast(xv, "NVFP4(T)", scale=np.float32(g))
        _assert_same(dmxnum.cast(xv, "NVFP4(T)", scale=g), want, g)
    with pytest.raises(ValueError, match=r"\[2\^-120, 2\^116\]"):
        dmxnum.cast(xv, "NVFP4(T)", scale=2.0**-121)


# ----------------------------------------------------------------------------- encode / decode
@settings(max_examples=40)
@given(data=st.data())
def test_decode_encode_with_scale_equals_cast(data: st.DataObject) -> None:
    fmt, x, s, words = _draw_case(data, roundings="NUDZ")
    if isinstance(fmt, FixedPoint) and not fmt.clamp:
        fmt = FixedPoint(fmt.bits, fmt.frac, True, fmt.symmetric, fmt.rounding)
    x = np.where(np.isfinite(x), x, np.float32(1.0))  # formats without NaN codes reject NaN
    with np.errstate(all="ignore"):
        assume(np.isfinite(x / s).all())  # ... and quotients that overflow to Inf
    backend = data.draw(st.sampled_from(("numpy", "torch")), label="backend")
    xb, sb = to_backend(x, backend), to_backend(s, backend)
    enc = dmxnum.encode(xb, fmt, scale=sb, packed=data.draw(st.booleans(), label="packed"))
    assert enc.scale is not None
    got = to_numpy(dmxnum.decode(enc))
    want = to_numpy(dmxnum.cast(xb, fmt, scale=sb))
    ok = same_bits(got, want)
    if type(fmt).__name__ in INTEGER_CODES:
        ok |= (got == 0) & (want == 0)  # integer codes have no -0
    assert ok.all(), (str(fmt), got[~ok][:4], want[~ok][:4])


def test_decode_encode_with_scale_jax() -> None:
    import jax.numpy as jnp

    rng = np.random.default_rng(11)
    x = _subnormal_heavy(rng, (3, 16))
    x[~np.isfinite(x)] = 0.5
    for fmt in (FP32,):  # subnormal quotients and products
        s = np.array([[2.0**-126], [0.3], [1e30]], np.float32)
        enc = dmxnum.encode(jnp.asarray(x), fmt, scale=jnp.asarray(s))
        want = reference.cast(x, fmt, scale=s)
        got = to_numpy(dmxnum.decode(enc))
        ok = same_bits(got, want) | ((got == 0) & (want == 0))
        assert ok.all(), fmt


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize("backend", BACKENDS)
def test_invalid_scales(backend: str) -> None:
    x = to_backend(np.ones((3, 4), np.float32), backend)
    for bad in (0.0, -1.0, float("nan"), float("inf"), 1e-40):
        with pytest.raises(ValueError, match="positive normal"):
            dmxnum.cast(x, "INT8", scale=bad)
    with pytest.raises(ValueError, match=r"scale at index \(1, 0\) is -2.0"):
        dmxnum.cast(x, "INT8", scale=to_backend(np.array([[1.0], [-2.0], [1.0]], np.float32), backend))
    for shape in ((2, 3, 4), (4, 1), (5,)):
        with pytest.raises(ValueError, match="does not broadcast"):
            dmxnum.cast(x, "INT8", scale=to_backend(np.ones(shape, np.float32), backend))
    with pytest.raises(TypeError, match="dtype int32"):
        dmxnum.cast(x, "INT8", scale=to_backend(np.ones((3, 1), np.int32), backend))
    with pytest.raises(TypeError, match="positive float"):
        dmxnum.cast(x, "INT8", scale=True)
    with pytest.raises(TypeError):
        dmxnum.cast(x, "INT8", scale="0.5")


def test_foreign_backend_scale() -> None:
    import torch

    with pytest.raises(TypeError, match="torch array but x is a numpy array"):
        dmxnum.cast(np.ones(4, np.float32), "INT8", scale=torch.tensor(0.5))
    # NumPy scales go to any backend
    got = dmxnum.cast(torch.ones(4), "INT8", scale=np.float32(0.5))
    assert got.tolist() == [1.0] * 4


def test_exact_helpers_against_numpy() -> None:
    """``div_bits``/``mul_bits`` (the integer operations) equal NumPy's IEEE
    division and product on random bit patterns, subnormals included."""
    import array_api_compat.numpy as xnp

    rng = np.random.default_rng(2)
    n = 20000
    xb = rng.integers(-(2**31), 2**31, n, dtype=np.int64).astype(np.int32)
    xb[::3] &= np.int32(0x00FFFFFF)
    sb = rng.integers(0x00800000, 0x7F800000, n, dtype=np.int64).astype(np.int32)
    sb[::2] &= np.int32(0x0FFFFFFF)
    sb[::2] |= np.int32(0x00800000)
    x, s = xb.view(np.float32), sb.view(np.float32)
    with np.errstate(all="ignore"):
        assert same_bits(static_scale.div_bits(xnp, xb, sb).view(np.float32), x / s).all()
        assert same_bits(static_scale.mul_bits(xnp, xb, sb).view(np.float32), x * s).all()
