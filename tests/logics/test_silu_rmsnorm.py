"""SILU and RMSNORM: kernel == reference bit for bit (NumPy, JAX eager/jit, PyTorch eager/compile),
edge values, the eps rule, grammar errors, exact gradients and the torch op."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from logics_helpers import assert_bits, elements, row_arrays, specs_of

import dmxnum
from dmxnum.errors import ShorthandError
from dmxnum.logics.accuracy import rmsnorm_eps
from dmxnum.reference import logics as ref

SILU_SPECS = specs_of("SILU")
RMS_SPECS = specs_of("RMSNORM")
CONVERT = {"numpy": lambda v: v, "jax": jnp.asarray, "torch": torch.from_numpy}


def check_all_backends(x: np.ndarray, spec: str, **args) -> None:
    expected = ref.approximate(x, spec, **args)
    for name, conv in CONVERT.items():
        conv_args = {k: (conv(v.copy()) if isinstance(v, np.ndarray) else v) for k, v in args.items()}
        got = dmxnum.approximate(conv(x.copy()), spec, **conv_args)
        assert_bits(np.asarray(got), expected, x, f"{spec} on {name}")


# ----------------------------------------------------------------------------- Hypothesis, eager
# element-wise: one shape, so JAX eager compiles each primitive once per spec (shapes cost seconds)
@given(
    spec=st.sampled_from(SILU_SPECS),
    x=hnp.arrays(np.float32, (2, 13), elements=elements(allow_nan=True, allow_posinf=True)),
)
def test_silu_bitexact(spec, x):
    check_all_backends(x, spec)


@given(
    spec=st.sampled_from(RMS_SPECS),
    x=row_arrays(max_rows=1, masked_rows=False),  # one row: fewer shapes for JAX eager to compile
    weighted=st.booleans(),
    eps=st.sampled_from([None, 1e-5, 1e-6, 0.0, 0.25, 1e-40]),
    data=st.data(),
)
def test_rmsnorm_bitexact(spec, x, weighted, eps, data):
    n = x.shape[-1]
    w = data.draw(hnp.arrays(np.float32, (n,), elements=st.floats(-4.0, 4.0, width=32))) if weighted else None
    check_all_backends(x, spec, normalized_shape=n, weight=w, eps=eps)


# ----------------------------------------------------------------------------- compiled, fixed matrix
def llm_rows() -> np.ndarray:
    """Rows of 576 with massive activations, tiny rows, subnormals, NaN and Inf."""
    rng = np.random.default_rng(11)
    x = rng.normal(size=(6, 576)).astype(np.float32)
    x[0, :3] = [23000.0, -23000.0, 21000.0]  # SmolLM2-like outliers
    x[1, :8] = 23000.0
    x[2] *= np.float32(1e-3)
    x[3, :5] = [1e-40, -1e-40, 2.0**-126, 0.0, -0.0]
    x[4, 7] = np.nan
    x[5, 9] = np.inf
    return x


@pytest.mark.parametrize("spec", ["RMSNORM(fallback,8,float16)", "RMSNORM(quake3,float32)", "RMSNORM(legacy,bfloat16)"])
def test_rmsnorm_jit_with_weight_and_eps(spec):
    x = llm_rows()
    w = np.random.default_rng(3).normal(1.0, 0.1, size=576).astype(np.float32)
    expected = ref.approximate(x, spec, weight=w, eps=1e-6)
    fn = jax.jit(lambda v, a: dmxnum.approximate(v, spec, normalized_shape=(576,), weight=a, eps=1e-6))
    assert_bits(np.asarray(fn(jnp.asarray(x), jnp.asarray(w))), expected, x, f"jit {spec}")


def test_torch_compile_aot_eager():
    x = llm_rows()[:2, :13].copy()
    fn = torch.compile(lambda v: dmxnum.approximate(v, "SILU(base2quake3,float16)"), backend="aot_eager", dynamic=False)
    got = fn(torch.from_numpy(x))
    assert_bits(got.numpy(), ref.approximate(x, "SILU(base2quake3,float16)"), x, "torch.compile(aot_eager)")


# ----------------------------------------------------------------------------- edge values
def test_silu_edges():
    x = np.float32([-20.0, -11.0, 0.0, -0.0, np.nan, np.inf, -np.inf, 1e30])
    y = dmxnum.approximate(x, "SILU(poly2,float16)")
    assert_bits(y, ref.approximate(x, "SILU(poly2,float16)"), x, "SILU(poly2,float16)")
    assert y[0] == 0 and np.signbit(y[0])  # EXP(20) = +Inf in float16; -20 / Inf = -0
    assert -2e-4 < y[1] < 0
    assert y[2] == 0 and not np.signbit(y[2]) and np.signbit(y[3])
    assert np.all(np.isnan(y[4:]))  # NaN; +-Inf (EXP of -+Inf is NaN); 1e30 is +Inf in float16
    yi = dmxnum.approximate(x, "SILU(base2,int)")
    assert yi[5] == 16384.0 and yi[6] == 0 and np.signbit(yi[6])  # NF int clamps to [-16384, 16384]
    assert np.isnan(yi[4])
    # bfloat16 / float32 have the range for -20: tiny, not -0
    assert -1e-7 < dmxnum.approximate(x, "SILU(base2,float32)")[0] < 0


def test_rmsnorm_massive_activations():
    x = llm_rows()[:2]
    legacy = dmxnum.approximate(x, "RMSNORM(legacy,float16)", eps=1e-5)
    assert np.all(legacy == 0)  # float16 sum of squares overflows: rs = 1 / sqrt(Inf) = 0
    assert np.all(np.isinf(dmxnum.approximate(x, "RMSNORM(quake3,float16)", eps=1e-5)[:, :3]))
    fb = dmxnum.approximate(x, "RMSNORM(fallback,8,float16)", eps=1e-5)
    x64 = x.astype(np.float64)
    exact = x64 / np.sqrt((x64**2).mean(-1, keepdims=True) + 1e-5)
    assert np.all(np.isfinite(fb)) and np.max(np.abs(fb - exact)) < 0.01
    # NORM 0 is the legacy float16 algorithm (x / 1, eps / 1)
    same = dmxnum.approximate(x[:, 3:], "RMSNORM(fallback,0,float16)", eps=1e-5)
    assert np.array_equal(same, dmxnum.approximate(x[:, 3:], "RMSNORM(legacy,float16)", eps=1e-5))


def test_rmsnorm_nan_inf_rows_and_weight_none():
    x = llm_rows()[3:]
    for spec in RMS_SPECS:
        y = dmxnum.approximate(x, spec)
        assert_bits(y, ref.approximate(x, spec), x, spec)
        assert np.all(np.isnan(y[1]))  # a NaN in a row makes the row NaN
        # an Inf makes the sum of squares +Inf: rs = 1/sqrt(Inf) = 0 (y = 0, NaN at the Inf);
        # quake3's rsqrt of Inf is -Inf (y = +-Inf, NaN at zeros)
        bad = ~np.isfinite(y[2]) if "quake3" in spec else np.isnan(y[2])
        assert np.all(bad | (y[2] == 0)), spec


@pytest.mark.parametrize("dtype, eps", [(np.float32, 2.0**-23), (np.float16, 2.0**-10), (ml_dtypes.bfloat16, 2.0**-7)])
def test_eps_none_is_finfo_of_the_input_dtype(dtype, eps):
    x = (np.random.default_rng(0).normal(size=(3, 8)) * 0.05).astype(dtype)
    for spec in ("RMSNORM(legacy,float32)", "RMSNORM(fallback,3,float16)"):
        got = dmxnum.approximate(x, spec)
        assert np.array_equal(got, dmxnum.approximate(x, spec, eps=eps))
        assert np.array_equal(got, ref.approximate(x, spec))
    t = dmxnum.approximate(torch.from_numpy(x.astype(np.float32)).to(torch.float16), "RMSNORM(legacy,float32)")
    assert np.array_equal(t.numpy(), dmxnum.approximate(x.astype(np.float16), "RMSNORM(legacy,float32)"))


def test_rmsnorm_arguments():
    x = np.ones((2, 3, 4), np.float32)
    y = dmxnum.approximate(x, "RMSNORM(legacy,float32)", normalized_shape=(3, 4), weight=np.full((3, 4), 2, np.float32))
    assert y.shape == x.shape and np.allclose(y, 2.0, rtol=1e-6)
    with pytest.raises(TypeError, match=r"unexpected keyword argument\(s\) \['bias'\]; valid: normalized_shape, weight, eps"):
        dmxnum.approximate(x, "RMSNORM(legacy,float32)", bias=np.ones(4, np.float32))
    with pytest.raises(ValueError, match=r"normalized_shape \(3,\) does not match"):
        dmxnum.approximate(x, "RMSNORM(quake3,float16)", normalized_shape=3)
    with pytest.raises(ValueError, match=r"weight has shape \(3,\)"):
        dmxnum.approximate(x, "RMSNORM(quake3,float16)", weight=np.ones(3, np.float32))
    with pytest.raises(TypeError, match="eps must be a Python float"):
        dmxnum.approximate(x, "RMSNORM(quake3,float16)", eps="1e-5")
    with pytest.raises(ValueError, match="non-negative"):
        dmxnum.approximate(x, "RMSNORM(quake3,float16)", eps=-1e-5)
    with pytest.raises(TypeError, match="valid: none"):
        dmxnum.approximate(x, "SILU(poly2,float16)", eps=1e-5)


# ----------------------------------------------------------------------------- grammar
@pytest.mark.parametrize(
    "text, fragment",
    [
        ("RMSNORM(legacy,_,float16)", "RMSNORM(legacy,NF) takes 2 arguments"),
        ("RMSNORM(quake3,4,float32)", "write RMSNORM(quake3,float16|float32)"),
        ("RMSNORM(fallback,float16)", "write RMSNORM(fallback,NORM,float16)"),
        ("RMSNORM(fallback,_,float16)", "NORM '_' is not an integer; valid: 0..15"),
        ("RMSNORM(fallback,16,float16)", "0..15"),
        ("RMSNORM(quake3,bfloat16)", "valid: float16, float32"),
        ("RMSNORM(ibert)", "unknown RMSNORM algorithm 'ibert'; valid: fallback, legacy, quake3"),
        ("SILU(base2quake3,float32)", "valid: float16"),
        ("SILU(poly2)", "takes 2 arguments"),
        ("SILU(ibert)", "unknown SILU algorithm"),
    ],
)
def test_grammar_errors(text, fragment):
    with pytest.raises(ShorthandError) as info:
        dmxnum.parse_logic(text)
    assert fragment in str(info.value) and repr(text) in str(info.value)
    assert "RMSNORM(legacy,float32|float16|bfloat16)" in str(info.value)  # the grammar lists the valid forms


def test_grammar_values():
    from dmxnum.logics import Logic

    assert dmxnum.parse_logic(" rmsnorm( Fallback , 8 , FLOAT16 ) ") == Logic("RMSNORM", "fallback", "float16", 8)
    assert str(Logic("RMSNORM", "legacy", "bfloat16")) == "RMSNORM(legacy,bfloat16)"
    assert str(dmxnum.parse_logic("silu(BASE2QUAKE3,float16)")) == "SILU(base2quake3,float16)"
    with pytest.raises(ShorthandError, match="takes no NORM"):
        Logic("RMSNORM", "legacy", "float16", norm=3)


# ----------------------------------------------------------------------------- gradients
GRAD_SPECS = ["SILU(base2,float16)", "SILU(poly2,int)", "RMSNORM(fallback,8,float16)", "RMSNORM(quake3,float16)"]
RNG = np.random.default_rng(8)
X = (RNG.normal(size=(3, 6)) * 3).astype(np.float32)
X[0, 0] = -30.0  # silu: float16 forward is -0; gradient finite
COT = RNG.normal(size=(3, 6)).astype(np.float32)
W = RNG.normal(1.0, 0.2, size=6).astype(np.float32)
EPS = 1e-3


def _exact_rms(spec, xp, x, w):
    e = rmsnorm_eps(spec, float(np.float16(EPS)))
    return w * x / xp.sqrt((x * x).mean(-1, keepdims=True) + e)


@pytest.mark.parametrize("spec", GRAD_SPECS)
def test_jax_grad_is_exact(spec):
    x, c, w = jnp.asarray(X), jnp.asarray(COT), jnp.asarray(W)
    if spec.startswith("SILU"):
        got = [jax.grad(lambda v: jnp.sum(dmxnum.approximate(v, spec) * c))(x)]
        want = [jax.grad(lambda v: jnp.sum(jax.nn.silu(v) * c))(x)]
    else:
        got = jax.grad(lambda v, a: jnp.sum(dmxnum.approximate(v, spec, weight=a, eps=EPS) * c), (0, 1))(x, w)
        want = jax.grad(lambda v, a: jnp.sum(_exact_rms(spec, jnp, v, a) * c), (0, 1))(x, w)
    for g, e in zip(got, want):
        np.testing.assert_allclose(np.asarray(g), np.asarray(e), rtol=2e-4, atol=2e-5)


@pytest.mark.parametrize("spec", GRAD_SPECS)
def test_torch_grad_is_exact(spec):
    c = torch.from_numpy(COT)
    x, w = torch.tensor(X, requires_grad=True), torch.tensor(W, requires_grad=True)
    x2, w2 = torch.tensor(X, requires_grad=True), torch.tensor(W, requires_grad=True)
    if spec.startswith("SILU"):
        (dmxnum.approximate(x, spec) * c).sum().backward()
        (torch.nn.functional.silu(x2) * c).sum().backward()
        pairs = [(x.grad, x2.grad)]
    else:
        (dmxnum.approximate(x, spec, weight=w, eps=EPS) * c).sum().backward()
        (_exact_rms(spec, torch, x2, w2) * c).sum().backward()
        pairs = [(x.grad, x2.grad), (w.grad, w2.grad)]
    for g, e in pairs:
        np.testing.assert_allclose(g.numpy(), e.numpy(), rtol=2e-4, atol=2e-5)


# ----------------------------------------------------------------------------- torch op
def test_torch_op_passes_eps():
    x = torch.from_numpy(llm_rows()[:2])
    w = torch.linspace(0.5, 1.5, 576)
    spec = "RMSNORM(fallback,8,float16)"
    got = torch.ops.dmxnum.approximate(x, spec, -1, [576], w, None, 1e-5)
    assert torch.equal(got, dmxnum.approximate(x, spec, normalized_shape=(576,), weight=w, eps=1e-5))
    assert torch.equal(torch.ops.dmxnum.approximate(x, spec), dmxnum.approximate(x, spec))  # eps=None
    s = torch.ops.dmxnum.approximate(x, "SILU(base2,float16)")
    assert torch.equal(s, dmxnum.approximate(x, "SILU(base2,float16)"))
    with pytest.raises(TypeError, match="bias"):
        torch.ops.dmxnum.approximate(x, spec, -1, [576], w, w, 1e-5)
