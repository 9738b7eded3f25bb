"""Calibration observers (dmxnum.ptq.observer) against plain NumPy computations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

import dmxnum
from dmxnum import ptq

STATIC = ["INT8", "INT4", "XP[8,4](C_N)", "FP8_E4M3", "FP[1|4|3,7](_NE)", "FP4_E2M1", "NVFP4(T)"]


def formula(amax, fmt, ratio=1.0):
    """s = fl32(fl32(amax * ratio) / max_value), clamped to cast's valid range."""
    fmt = dmxnum.parse(fmt)
    lo, hi = (2.0**-120, 2.0**116) if "NVFP4" in str(fmt) else (2.0**-126, np.finfo(np.float32).max)
    with np.errstate(over="ignore"):
        s = np.float32(np.float32(amax) * np.float32(ratio)) / np.float32(fmt.max_value)
    return np.clip(np.float32(s), np.float32(lo), np.float32(hi))


@st.composite
def batches(draw, max_batches=3):
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    n = draw(st.integers(1, max_batches))
    scale = 10.0 ** rng.uniform(-3, 3)
    return [(rng.standard_t(3, size=(4, 6, 16)) * scale).astype(np.float32) for _ in range(n)]


@settings(max_examples=30)
@given(st.sampled_from(STATIC), batches(), st.sampled_from([None, 0, 1, -2]))
def test_minmax_is_exact(fmt, xs, axis):
    obs = ptq.observer("minmax", fmt, axis=axis)
    for x in xs:
        obs.update(x)
    allx = np.concatenate(xs, axis=0)
    if axis is None:
        amax = np.max(np.abs(allx))
        assert obs.scale().shape == ()
    else:
        others = tuple(i for i in range(3) if i != axis % 3)
        amax = np.max(np.abs(allx), axis=others, keepdims=True)
        if axis % 3 == 0:  # the batches are concatenated along axis 0: per-channel maxima per batch
            amax = np.max([np.max(np.abs(x), axis=others, keepdims=True) for x in xs], axis=0)
    assert np.array_equal(obs.amax(), amax)
    want = formula(amax, fmt)
    assert obs.scale().dtype == np.float32 and np.array_equal(obs.scale().view(np.uint32), want.view(np.uint32))
    dmxnum.cast(xs[0], fmt, scale=obs.scale())  # a valid scale for cast


@settings(max_examples=20)
@given(st.sampled_from(STATIC), batches(), st.floats(0.5, 100.0), st.sampled_from([None, 1]))
def test_percentile_under_the_cap_is_numpys(fmt, xs, p, axis):
    obs = ptq.observer("percentile", fmt, axis=axis, p=p)
    for x in xs:
        obs.update(x)
    allx = np.abs(np.concatenate(xs, axis=0).astype(np.float64))
    if axis is None:
        pct = np.percentile(allx, p)
    else:
        pct = np.percentile(np.moveaxis(allx, 1, 0).reshape(allx.shape[1], -1), p, axis=1).reshape(1, -1, 1)
    if p == 100:
        pct = np.max(allx, axis=None if axis is None else (0, 2), keepdims=axis is not None)
    want = formula(np.float32(pct), fmt)
    assert np.array_equal(obs.scale().view(np.uint32), np.asarray(want).view(np.uint32))


def test_percentile_over_the_cap_samples_deterministically():
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal(5000).astype(np.float32) for _ in range(8)]
    runs = []
    for _ in range(2):
        obs = ptq.observer("percentile", "INT8", p=99.0, sample_cap=4096)
        for x in xs:
            obs.update(x)
        runs.append(obs.scale())
    assert runs[0] == runs[1]
    exact = np.percentile(np.abs(np.concatenate(xs)), 99.0) / 127
    assert runs[0] == pytest.approx(exact, rel=0.05)
    assert ptq.observer("percentile", "INT8", p=99.0, sample_cap=4096, seed=1).update(xs[0]).count == 5000


def brute_force_mse(values, fmt, amax):
    best, best_err = None, np.inf
    for i in range(51):
        s = formula(amax, fmt, np.float32(1 - i / 100))
        err = float(np.sum((dmxnum.cast(values, fmt, scale=s).astype(np.float64) - values) ** 2))
        if err < best_err:
            best, best_err = s, err
    return best


@settings(max_examples=20)
@given(st.sampled_from(STATIC[:-1]), batches(max_batches=2))
def test_mse_picks_the_best_ratio(fmt, xs):
    obs = ptq.observer("mse", fmt)
    for x in xs:
        obs.update(x)
    allx = np.concatenate([x.ravel() for x in xs])
    want = brute_force_mse(allx, fmt, np.max(np.abs(allx)))
    assert obs.scale() == want


def test_mse_per_channel_and_two_level():
    rng = np.random.default_rng(3)
    w = (rng.standard_t(2, size=(6, 64))).astype(np.float32)
    obs = ptq.observer("mse", "INT4", axis=0).update(w)
    for row, s in zip(w, obs.scale()[:, 0]):
        assert s == brute_force_mse(row, "INT4", np.max(np.abs(row)))
    mse = ptq.observer("mse", "INT4", axis=0).update(w).scale()
    minmax = ptq.observer("minmax", "INT4", axis=0).update(w).scale()
    err = [float(np.sum((dmxnum.cast(w, "INT4", scale=s) - w) ** 2)) for s in (mse, minmax)]
    assert err[0] < err[1]
    # NVFP4(T): the tensor scale g, chosen over whole batches in their layout
    g = ptq.observer("mse", "NVFP4(T)").update(w).scale()
    amax = np.max(np.abs(w))
    errs = {}
    for i in range(51):
        s = formula(amax, "NVFP4(T)", np.float32(1 - i / 100))
        errs.setdefault(float(s), float(np.sum((dmxnum.cast(w, "NVFP4(T)", scale=s).astype(np.float64) - w) ** 2)))
    assert float(g) == min(errs, key=lambda k: (errs[k], -k))


def test_nonfinite_values_are_ignored_and_kinds_accepted():
    x = torch.tensor([[1.0, float("nan"), -3.0], [float("inf"), 0.5, 2.0]])
    obs = ptq.observer("minmax", "INT8", axis=1).update(x)
    assert np.array_equal(obs.amax(), np.array([[1.0, 0.5, 3.0]], np.float32))
    import jax.numpy as jnp

    obs.update(jnp.asarray([[4.0, 0.0, 0.0]]))
    assert obs.amax()[0, 0] == 4.0 and obs.count == 3  # values per channel
    assert ptq.observer("minmax", "FP8_E4M3").update(np.zeros(4, np.float32)).scale() == np.float32(2.0**-126)


def test_errors():
    with pytest.raises(ValueError, match="static scale"):
        ptq.observer("minmax", "MXFP4_E2M1")
    with pytest.raises(ValueError, match="static scale"):
        ptq.observer("minmax", "NVFP4")
    with pytest.raises(ValueError, match="kind"):
        ptq.observer("max", "INT8")
    with pytest.raises(ValueError, match=r"p in \(0, 100\]"):
        ptq.observer("percentile", "INT8", p=0)
    with pytest.raises(ValueError, match="p applies"):
        ptq.observer("minmax", "INT8", p=99)
    with pytest.raises(ValueError, match="stochastic"):
        ptq.observer("mse", "XP[8,0](CSS)")
    with pytest.raises(ValueError, match="observed nothing"):
        ptq.observer("minmax", "INT8").scale()
    obs = ptq.observer("minmax", "INT8", axis=-1).update(np.ones((2, 3), np.float32))
    with pytest.raises(ValueError, match="does not match"):
        obs.update(np.ones((2, 4), np.float32))
    with pytest.raises(ValueError, match="another axis"):
        ptq.observer("minmax", "NVFP4(T)", axis=-1).update(np.ones((2, 16), np.float32))
