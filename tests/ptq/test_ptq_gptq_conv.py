"""GPTQ on convolution weights (dmxnum.ptq.gptq with W of shape (out, in,
*kernel)): GPTQ columns are those of W.reshape(out, -1), the block axis is
an axis of the N-D W. On the grid, equal to round-to-nearest without error
feedback, never worse than it, better on correlated patches; equal to the
2-D GPTQ of the same layer laid out so that its blocks are column ranges."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

import dmxnum
from dmxnum import ptq
from dmxnum.testing import formats

# elementwise, blocks along the input axis 1, along a kernel axis (-1), along
# the output axis 0, and NVFP4 (single level along -1, two level along 1)
NAMED = [
    "INT8", "FP8_E4M3", "FP4_E2M1",
    "BFP[4|8]{4,1}(SN)", "BFP[6|8]{4,1}(_N)", "MXFP4[E2M1]{4,1}", "MXINT8{4,1}",
    "MXFP4_E2M1", "BFP[4|8]{2,-1}(SN)",
    "BFP[4|8]{4,0}(SN)", "MXFP4[E2M1]{4,0}", "NVFP4{16,0}",
    "NVFP4", "NVFP4(T)", "NVFP4{4,1}(T)",
]
DRAWN = st.one_of(
    formats(families="XP", roundings="N"),
    formats(families=["FP", "BFP", "MXINT", "MXFP", "NVFP4"], roundings="NZUD", max_block_size=8,
            axes=(-3, -2, -1, 0, 1, 2)),
)
FORMATS = st.one_of(st.sampled_from(NAMED).map(dmxnum.parse), DRAWN)
SHAPES = st.sampled_from([(8, 6, 3, 3), (5, 3, 2, 3), (8, 6, 5), (3, 7, 2)])


def bits(a) -> np.ndarray:
    return np.asarray(a, dtype=np.float32).view(np.uint32)


def static_scale(fmt, w):
    """A per-output-channel static scale (shape (out, 1, ..., 1)) for XP formats, else None."""
    if fmt.__class__.__name__ == "FixedPoint":
        return ptq.observer("minmax", fmt, axis=0).update(w).scale()
    return None


def patches_hessian(rng: np.random.Generator, w_shape: tuple[int, ...], n: int = 6, size: int = 10) -> np.ndarray:
    """H = 2/N X^T X over the unfold patches of random images that are smooth in
    space and correlated across channels (Conv1d: a 1-row image, a 1 x k kernel)."""
    c_in, kernel = w_shape[1], w_shape[2:]
    k2 = kernel if len(kernel) == 2 else (1,) + kernel
    hw = (size, size) if len(kernel) == 2 else (1, 4 * size)
    img = torch.from_numpy(rng.standard_normal((n, 2) + hw))
    img = torch.cumsum(torch.cumsum(img, -1), -2)  # smooth: neighbours are close
    img = torch.einsum("nchw,cd->ndhw", img, torch.from_numpy(rng.standard_normal((2, c_in))))
    img = img + 0.05 * torch.from_numpy(rng.standard_normal(img.shape))
    x = torch.nn.functional.unfold(img, k2).transpose(1, 2).reshape(-1, c_in * int(np.prod(kernel)))
    x = x.numpy()
    return 2.0 / len(x) * x.T @ x


@st.composite
def problems(draw):
    fmt, shape = draw(FORMATS), draw(SHAPES)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    w = (rng.standard_normal(shape) * 10.0 ** rng.uniform(-2, 2)).astype(np.float32)
    try:
        dmxnum.cast(w, fmt)
    except ValueError:  # a block axis the shape does not have (e.g. 2 for Conv1d with -3..2 drawn)
        fmt = dmxnum.parse("MXFP4[E2M1]{4,1}")
    return fmt, w, static_scale(fmt, w), rng


@settings(max_examples=20, deadline=None)
@given(problems(), st.booleans(), st.booleans(), st.sampled_from([128, 5]))
def test_conv_result_is_on_the_grid_and_no_worse(problem, act_order, static_groups, block_size):
    fmt, w, s, rng = problem
    h = patches_hessian(rng, w.shape)
    r = ptq.gptq(w, h, fmt, block_size=block_size, act_order=act_order, scale=s, static_groups=static_groups)
    assert isinstance(r.Wq, np.ndarray) and r.Wq.dtype == np.float32 and r.Wq.shape == w.shape
    assert np.array_equal(bits(dmxnum.cast(r.Wq, fmt, scale=s)), bits(r.Wq)), str(fmt)
    assert r.loss <= r.loss_rtn
    flat = w.reshape(w.shape[0], -1)
    assert r.loss == pytest.approx(ptq.layer_loss(flat, r.Wq.reshape(flat.shape), h), rel=1e-12, abs=0)


@settings(max_examples=20, deadline=None)
@given(problems(), st.booleans())
def test_conv_identity_hessian_gives_round_to_nearest(problem, act_order):
    fmt, w, s, _ = problem
    c = int(np.prod(w.shape[1:]))
    r = ptq.gptq(w, np.eye(c), fmt, damp=0.0, act_order=act_order, scale=s)
    assert np.array_equal(bits(r.Wq), bits(ptq.settle(w, fmt, scale=s))), str(fmt)
    assert r.loss == r.loss_rtn and not r.fallback


@pytest.mark.parametrize("shape", [(8, 6, 3, 3), (8, 6, 5)])
@pytest.mark.parametrize("name", NAMED)
def test_conv_correlated_patches_lower_the_loss(name, shape):
    fmt = dmxnum.parse(name)
    rng = np.random.default_rng(3)
    w = rng.standard_normal(shape).astype(np.float32)
    s = static_scale(fmt, w)
    h = patches_hessian(rng, shape)
    for act_order in (False, True):
        r = ptq.gptq(w, h, fmt, block_size=16, act_order=act_order, scale=s)
        assert not r.fallback and r.loss < 0.5 * r.loss_rtn, (name, act_order, r.loss, r.loss_rtn)


def _channels_last(a: np.ndarray, axis: int) -> np.ndarray:
    """``a`` (out, in, *kernel) with axis ``axis`` moved last, flattened to (out, -1)."""
    return np.moveaxis(a, axis, -1).reshape(a.shape[0], -1)


@pytest.mark.parametrize("name, axis", [("BFP[4|8]{3,1}(SN)", 1), ("MXFP4[E2M1]{3,1}", 1),
                                        ("NVFP4{3,1}(T)", 1), ("MXFP4[E2M1]{3,2}", 2),
                                        ("BFP[4|8]{3,-1}(SN)", 3)])
def test_conv_blocks_are_the_column_groups_of_the_2d_layer(name, axis):
    """With the block axis moved last (its length a multiple of the block), the
    blocks are contiguous column ranges: GPTQ in the same processing order
    (act_order with distinct diag H) gives the same weights bit for bit."""
    rng = np.random.default_rng(5)
    w = rng.standard_normal((4, 6, 3, 3)).astype(np.float32)
    h = patches_hessian(rng, w.shape)
    c = h.shape[0]
    cols = _channels_last(np.arange(c).reshape((1,) + w.shape[1:]), axis)[0]  # 2-D column -> conv column
    fmt = dmxnum.parse(name)
    flat_fmt = dmxnum.parse(re.sub(r",-?\d+}", ",1}", name))  # blocks along the last axis
    r = ptq.gptq(w, h, fmt, block_size=7, act_order=True)
    r2 = ptq.gptq(_channels_last(w, axis), h[np.ix_(cols, cols)], flat_fmt, block_size=7, act_order=True)
    assert not r.fallback and not r2.fallback
    assert np.array_equal(bits(_channels_last(r.Wq, axis)), bits(r2.Wq))
    assert r.loss == pytest.approx(r2.loss, rel=1e-9)


@pytest.mark.parametrize("name, flat_name", [("FP8_E4M3", "FP8_E4M3"), ("MXFP4[E2M1]{4,0}", "MXFP4[E2M1]{4,0}"),
                                             ("NVFP4{4,-4}", "NVFP4{4,0}"), ("BFP[4|8]{4,1}(SN)", None)])
def test_conv_equals_the_flattened_layer(name, flat_name):
    """Elementwise and output-axis formats: the conv's GPTQ is that of W.reshape(out, -1);
    a 1x1 kernel with blocks along the input axis is the linear layer itself."""
    rng = np.random.default_rng(6)
    shape = (8, 6, 3, 3) if flat_name else (8, 12, 1, 1)
    w = rng.standard_normal(shape).astype(np.float32)
    h = patches_hessian(rng, shape)
    flat_name = flat_name or name
    for act_order in (False, True):
        r = ptq.gptq(w, h, name, block_size=8, act_order=act_order)
        r2 = ptq.gptq(w.reshape(shape[0], -1), h, flat_name, block_size=8, act_order=act_order)
        assert np.array_equal(bits(r.Wq.reshape(shape[0], -1)), bits(r2.Wq)), (name, act_order)
        assert r.loss == r2.loss and r.loss_rtn == r2.loss_rtn


def test_conv_static_scale_torch_and_dead_columns():
    rng = np.random.default_rng(8)
    w = rng.standard_normal((8, 6, 3, 3)).astype(np.float32)
    h = patches_hessian(rng, w.shape)
    h[10, :] = h[:, 10] = 0.0  # input channel 1, kernel position (0, 1) never active
    s = torch.from_numpy(static_scale(dmxnum.parse("INT4"), w))
    r = ptq.gptq(torch.from_numpy(w), torch.from_numpy(h), "INT4", scale=s)
    assert isinstance(r.Wq, torch.Tensor) and r.Wq.shape == w.shape and not r.fallback
    assert torch.equal(dmxnum.cast(r.Wq, "INT4", scale=s), r.Wq)
    assert torch.all(r.Wq[:, 1, 0, 1] == 0)
    # a per-input-channel scale (1, in, 1, 1) with blocks along I
    s_in = (0.5 + rng.random((1, 6, 1, 1))).astype(np.float32)
    r = ptq.gptq(w, h, "BFP[6|8]{4,1}(SN)", scale=s_in, act_order=True)
    assert np.array_equal(bits(dmxnum.cast(r.Wq, "BFP[6|8]{4,1}(SN)", scale=s_in)), bits(r.Wq))
    assert r.loss < r.loss_rtn


@pytest.mark.parametrize("name", ["FP8_E4M3", "BFP[4|8]{2,1}(SN)", "MXFP4[E2M1]{2,-3}", "NVFP4{4,0}", "NVFP4{2,1}(T)"])
def test_conv3d(name):
    rng = np.random.default_rng(9)
    w = rng.standard_normal((4, 3, 2, 3, 2)).astype(np.float32)
    x = rng.standard_normal((200, 4)) @ rng.standard_normal((4, 36)) + 0.05 * rng.standard_normal((200, 36))
    r = ptq.gptq(w, 2.0 / 200 * x.T @ x, name, act_order=True, static_groups=True)
    assert r.Wq.shape == w.shape and np.array_equal(bits(dmxnum.cast(r.Wq, name)), bits(r.Wq))
    assert not r.fallback and r.loss < r.loss_rtn
    r = ptq.gptq(w, np.eye(36), name, damp=0.0)
    assert np.array_equal(bits(r.Wq), bits(ptq.settle(w, name)))


def test_conv_errors():
    w = np.ones((2, 3, 2, 2), np.float32)
    with pytest.raises(ValueError, match=r"\(C, C\)"):
        ptq.gptq(w, np.eye(3), "INT8")
    with pytest.raises(ValueError, match="block axis"):
        ptq.gptq(w, np.eye(12), "MXFP4[E2M1]{4,4}")
    with pytest.raises(ValueError):
        ptq.gptq(np.ones(4, np.float32), np.eye(4), "INT8")
