"""Gradients: every logic back-propagates the exact function's gradient (jax.grad, torch.autograd)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import dmxnum
from dmxnum.logics.accuracy import layernorm_eps

RNG = np.random.default_rng(5)
X = (RNG.normal(size=(3, 6)) * 2).astype(np.float32)
X[0, 1] = -np.inf  # masked position: zero gradient
COT = RNG.normal(size=(3, 6)).astype(np.float32)
W = RNG.normal(1.0, 0.2, size=6).astype(np.float32)
B = RNG.normal(0.0, 0.2, size=6).astype(np.float32)


def jax_exact(spec: str):
    op = spec.split("(")[0]
    if op == "SOFTMAX":
        return lambda x: jax.nn.softmax(jnp.maximum(x, -16384.0), axis=-1)
    if op == "GELU":
        return lambda x: jax.nn.gelu(x, approximate=False)
    if op == "EXP":
        return jnp.exp
    if op == "RECIP":
        return lambda x: 1.0 / x
    if op == "RSQRT":
        return jax.lax.rsqrt
    eps = layernorm_eps(spec)

    def ln(x, w, b):
        m = x.mean(-1, keepdims=True)
        v = ((x - m) ** 2).mean(-1, keepdims=True)
        return (x - m) / jnp.sqrt(v + eps) * w + b

    return ln


def torch_exact(spec: str):
    op = spec.split("(")[0]
    if op == "SOFTMAX":
        return lambda x: torch.softmax(torch.clamp(x, min=-16384.0), dim=-1)
    if op == "GELU":
        return F.gelu
    if op == "EXP":
        return torch.exp
    if op == "RECIP":
        return torch.reciprocal
    if op == "RSQRT":
        return torch.rsqrt
    return lambda x, w, b: F.layer_norm(x, (6,), w, b, eps=layernorm_eps(spec))


SPECS = [
    "SOFTMAX(poly2,float16)", "SOFTMAX(base2,int)", "SOFTMAX(base2quake3,float16)", "SOFTMAX(ibert)",
    "GELU(poly2,float16)", "GELU(ibert)", "EXP(poly2,bfloat16)", "RECIP(quake3,float16)",
    "RSQRT(quake3,float32)", "LAYERNORM(fallback,2,float16)", "LAYERNORM(legacy,_,float32)",
    "LAYERNORM(quake3,_,float16)", "LAYERNORM(ibert)",
]


def inputs(spec):
    x = X.copy()
    if not spec.startswith("SOFTMAX"):
        x[0, 1] = 0.5
    if spec.startswith(("RECIP", "RSQRT")):
        x = np.abs(x) + np.float32(0.5)
    return x


@pytest.mark.parametrize("spec", SPECS)
def test_jax_grad_is_exact_gradient(spec):
    x = jnp.asarray(inputs(spec))
    c = jnp.asarray(COT)
    if spec.startswith("LAYERNORM"):
        args = (x, jnp.asarray(W), jnp.asarray(B))
        got = jax.grad(lambda *a: jnp.sum(dmxnum.approximate(a[0], spec, weight=a[1], bias=a[2]) * c), (0, 1, 2))(*args)
        want = jax.grad(lambda *a: jnp.sum(jax_exact(spec)(*a) * c), (0, 1, 2))(*args)
    else:
        got = (jax.grad(lambda v: jnp.sum(dmxnum.approximate(v, spec) * c))(x),)
        want = (jax.grad(lambda v: jnp.sum(jax_exact(spec)(v) * c))(x),)
    for g, w in zip(got, want):
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=2e-4, atol=2e-5)
    # also under jit
    g_jit = jax.jit(jax.grad(lambda v: jnp.sum(dmxnum.approximate(v, spec) * c)))(x)
    assert np.all(np.isfinite(np.asarray(g_jit)))


@pytest.mark.parametrize("spec", SPECS)
def test_torch_autograd_is_exact_gradient(spec):
    x = torch.tensor(inputs(spec), requires_grad=True)
    c = torch.from_numpy(COT)
    if spec.startswith("LAYERNORM"):
        w = torch.tensor(W, requires_grad=True)
        b = torch.tensor(B, requires_grad=True)
        (dmxnum.approximate(x, spec, weight=w, bias=b) * c).sum().backward()
        got = [x.grad, w.grad, b.grad]
        x2, w2, b2 = (t.detach().clone().requires_grad_(True) for t in (x, w, b))
        (torch_exact(spec)(x2, w2, b2) * c).sum().backward()
        want = [x2.grad, w2.grad, b2.grad]
    else:
        (dmxnum.approximate(x, spec) * c).sum().backward()
        x2 = x.detach().clone().requires_grad_(True)
        (torch_exact(spec)(x2) * c).sum().backward()
        got, want = [x.grad], [x2.grad]
    for g, w in zip(got, want):
        np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=2e-4, atol=2e-5)


def test_forward_value_unchanged_by_gradient_tracking():
    x = torch.tensor(X, requires_grad=True)
    y = dmxnum.approximate(x, "SOFTMAX(poly2,float16)")
    assert np.array_equal(y.detach().numpy(), dmxnum.approximate(X, "SOFTMAX(poly2,float16)"))
    fwd = jax.jit(lambda v: jax.vjp(lambda u: dmxnum.approximate(u, "GELU(ibert)"), v)[0])
    assert np.array_equal(np.asarray(fwd(jnp.asarray(X[1:]))), dmxnum.approximate(X[1:], "GELU(ibert)"))
