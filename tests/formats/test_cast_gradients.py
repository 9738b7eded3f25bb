"""Casts are straight-through by default; gradient="clip" zeroes clamped elements."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import dmxnum

X = np.array([[0.3, -1.7, 9.0, -300.0, 0.0, 2.5e-3]], np.float32)
FMTS = ["FP[1|4|3,7](_NE)", "XP[8,4](CSN)", "BFP[4|8]{3,-1}(SN)", "MXFP4[E2M1]{3,-1}"]


@pytest.mark.parametrize("fmt", FMTS)
def test_jax_grad_is_identity(fmt: str) -> None:
    g = jax.grad(lambda v: jnp.sum(dmxnum.cast(v, fmt) * jnp.arange(6.0)))(jnp.asarray(X))
    assert np.array_equal(np.asarray(g), np.arange(6.0, dtype=np.float32)[None])
    gj = jax.jit(jax.grad(lambda v: jnp.sum(dmxnum.cast(v, fmt))))(jnp.asarray(X))
    assert np.array_equal(np.asarray(gj), np.ones_like(X))


@pytest.mark.parametrize("fmt", FMTS)
def test_torch_grad_is_identity(fmt: str) -> None:
    t = torch.tensor(X, requires_grad=True)
    (dmxnum.cast(t, fmt) * torch.arange(6.0)).sum().backward()
    assert torch.equal(t.grad, torch.arange(6.0)[None])


def test_clip_gradient_zeroes_outside_range() -> None:
    fmt = "XP[8,4](CSN)"  # max 7.9375
    want = (np.abs(X) <= 127 / 16).astype(np.float32)
    g = jax.grad(lambda v: jnp.sum(dmxnum.cast(v, fmt, gradient="clip")))(jnp.asarray(X))
    assert np.array_equal(np.asarray(g), want)
    t = torch.tensor(X, requires_grad=True)
    dmxnum.cast(t, fmt, gradient="clip").sum().backward()
    assert np.array_equal(t.grad.numpy(), want)


def test_vmap_matches_batched_call() -> None:
    x = jnp.asarray(np.random.default_rng(0).standard_normal((4, 3, 16)).astype(np.float32))
    fmt = "BFP[6|8]{8,-1}(SN)"
    a = jax.vmap(lambda v: dmxnum.cast(v, fmt))(x)
    b = dmxnum.cast(x, fmt)
    assert np.array_equal(np.asarray(a), np.asarray(b))


def test_bad_gradient_option() -> None:
    with pytest.raises(ValueError, match="gradient"):
        dmxnum.cast(np.ones(2, np.float32), "FP16", gradient="exact")
