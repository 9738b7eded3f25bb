"""GPTQ (dmxnum.ptq.gptq): on the format's grid for every family, equal to
round-to-nearest without error feedback (H = I), never worse than it, and
strictly better on correlated inputs; array kinds; errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

import dmxnum
from dmxnum import ptq
from dmxnum.testing import formats

# one or more per family: XP (static scale below), FP, BFP, MXINT, MXFP with
# two scale modes, NVFP4 both forms, SBFP; blocks along the input axis unless noted
NAMED = [
    "INT4", "INT8", "FP8_E4M3", "FP4_E2M1", "FP[1|3|2,3](FZ)",
    "BFP[4|8]{16,-1}(SN)", "BFP[6|8]{8,1}(_N)", "BFP[4|8]{8,0}(SN)",
    "MXINT8", "MXINT4{8,-1}",
    "MXFP4_E2M1", "MXFP4[E2M1]{16,-1}(R)", "MXFP4[E2M1]{16,-1}(C)", "MXFP6[E3M2]{8,1}(E)",
    "MXFP8[E4M3]{8,0}",
    "NVFP4", "NVFP4(T)", "NVFP4{8,1}(T)", "NVFP4{16,0}",
    "SBFP<XP[4,0](CSN)><FP[0|4|3,7](_NE)>{16,-1}", "SBFP<XP[8,0](CSN)><FP[1|8|0,127](_N)>{8,1}",
]
# drawn formats (deterministic rounding). XP (which gets a static scale) rounds
# to nearest and SBFP stays with the named ones: a directed rounding under an
# arbitrary static scale can drift by one step per cast, and some coarse SBFP
# scalers make the cast cycle between two values (settle's documented limits)
DRAWN = st.one_of(
    formats(families="XP", roundings="N"),
    formats(families=["FP", "BFP", "MXINT", "MXFP", "NVFP4"], roundings="NZUD", max_block_size=24,
            axes=(-2, -1, 0, 1)),
)
FORMATS = st.one_of(st.sampled_from(NAMED).map(dmxnum.parse), DRAWN)


def bits(a) -> np.ndarray:
    return np.asarray(a, dtype=np.float32).view(np.uint32)


def correlated(rng: np.random.Generator, n_in: int, rank: int = 6, samples: int = 256) -> np.ndarray:
    """H = 2/N X^T X for inputs whose columns are strongly correlated."""
    x = rng.standard_normal((samples, rank)) @ rng.standard_normal((rank, n_in))
    x += 0.05 * rng.standard_normal((samples, n_in))
    return 2.0 / samples * x.T @ x


def static_scale(fmt, w, rng):
    """A per-output-channel static scale for XP formats (the frontend's MSE{0} case), else None."""
    if fmt.__class__.__name__ == "FixedPoint":
        return ptq.observer("minmax", fmt, axis=0).update(w).scale()
    return None


@st.composite
def problems(draw):
    fmt = draw(FORMATS)
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    w = (rng.standard_normal((8, 64)) * 10.0 ** rng.uniform(-2, 2)).astype(np.float32)
    h = correlated(rng, 64) if draw(st.booleans()) else rng.standard_normal((64, 64)) * 0.1 + np.eye(64)
    h = h @ h.T if not np.allclose(h, h.T) else h
    return fmt, w, h, static_scale(fmt, w, rng)


@settings(max_examples=25)
@given(problems(), st.booleans(), st.booleans(), st.sampled_from([128, 24]))
def test_result_is_on_the_grid_and_no_worse(problem, act_order, static_groups, block_size):
    fmt, w, h, s = problem
    r = ptq.gptq(w, h, fmt, block_size=block_size, act_order=act_order, scale=s, static_groups=static_groups)
    assert isinstance(r.Wq, np.ndarray) and r.Wq.dtype == np.float32 and r.Wq.shape == w.shape
    assert np.array_equal(bits(dmxnum.cast(r.Wq, fmt, scale=s)), bits(r.Wq)), str(fmt)
    assert r.loss <= r.loss_rtn
    assert r.loss == pytest.approx(ptq.layer_loss(w, r.Wq, h), rel=1e-12, abs=0)


@settings(max_examples=25)
@given(problems(), st.booleans())
def test_identity_hessian_gives_round_to_nearest(problem, act_order):
    fmt, w, _, s = problem
    r = ptq.gptq(w, np.eye(64), fmt, act_order=act_order, scale=s)
    rtn = dmxnum.cast(w, fmt, scale=s)
    assert np.array_equal(bits(r.Wq), bits(ptq.settle(w, fmt, scale=s))), str(fmt)
    if np.array_equal(bits(dmxnum.cast(rtn, fmt, scale=s)), bits(rtn)):  # cast(W) already a fixed point
        assert np.array_equal(bits(r.Wq), bits(rtn))
    assert r.loss == r.loss_rtn and not r.fallback


@pytest.mark.parametrize("name", NAMED)
def test_correlated_inputs_lower_the_loss(name):
    fmt = dmxnum.parse(name)
    rng = np.random.default_rng(7)
    w = rng.standard_normal((8, 64)).astype(np.float32)
    s = static_scale(fmt, w, rng)
    h = correlated(rng, 64)
    for act_order in (False, True):
        r = ptq.gptq(w, h, fmt, block_size=16, act_order=act_order, scale=s)
        assert not r.fallback and r.loss < 0.8 * r.loss_rtn, (name, act_order, r.loss, r.loss_rtn)


def test_dead_columns_are_zeroed():
    rng = np.random.default_rng(1)
    w = rng.standard_normal((4, 32)).astype(np.float32)
    h = correlated(rng, 32)
    h[5, :] = h[:, 5] = 0.0
    r = ptq.gptq(w, h, "MXFP4[E2M1]{8,-1}")
    assert np.all(r.Wq[:, 5] == 0)


def test_array_kinds_round_trip():
    import jax.numpy as jnp

    rng = np.random.default_rng(2)
    w = rng.standard_normal((8, 32)).astype(np.float32)
    h = correlated(rng, 32)
    want = ptq.gptq(w, h, "NVFP4{16,-1}", block_size=8)
    got_t = ptq.gptq(torch.from_numpy(w), torch.from_numpy(h), "NVFP4{16,-1}", block_size=8)
    got_j = ptq.gptq(jnp.asarray(w), jnp.asarray(h, dtype=jnp.float32), "NVFP4{16,-1}", block_size=8)
    assert isinstance(got_t.Wq, torch.Tensor) and got_t.Wq.dtype == torch.float32
    assert np.array_equal(bits(got_t.Wq.numpy()), bits(want.Wq))
    assert got_j.Wq.dtype == jnp.float32 and np.array_equal(bits(np.asarray(got_j.Wq)), bits(want.Wq))
    half = ptq.gptq(torch.from_numpy(w).to(torch.bfloat16), torch.from_numpy(h), "INT8",
                    scale=np.float32(0.02))
    assert half.Wq.dtype == torch.bfloat16
    assert torch.equal(dmxnum.cast(half.Wq, "INT8", scale=np.float32(0.02)), half.Wq)


def test_errors():
    w, h = np.ones((2, 4), np.float32), np.eye(4)
    with pytest.raises(ValueError, match="SAME"):
        ptq.gptq(w, h, "SAME")
    with pytest.raises(ValueError, match="stochastic"):
        ptq.gptq(w, h, "BFP[8|8]{4,-1}(SS)")
    with pytest.raises(ValueError, match=r"\(in, in\)"):
        ptq.gptq(w, np.eye(3), "INT8")
    with pytest.raises(ValueError, match="positive definite"):
        ptq.gptq(w, -np.eye(4), "INT8", damp=0.0)
    with pytest.raises(ValueError, match="finite"):
        ptq.gptq(np.full((2, 4), np.nan, np.float32), h, "INT8")
    with pytest.raises(ValueError, match="scale"):
        ptq.gptq(w, h, "INT8", scale=-1.0)
    with pytest.raises(TypeError):
        ptq.gptq(np.ones((2, 4), np.int32), h, "INT8")
