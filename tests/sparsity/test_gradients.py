"""Gradients of sparsify under jax.grad and torch.autograd, with exact expected values."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from dmxnum.sparsity import sparsify

W = np.array([[0.5, -4.0, 3.0, 1.0], [2.0, -1.0, 0.0, -6.0]], dtype=np.float32)
UP = np.array([[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]], dtype=np.float32)  # upstream gradient
KEEP = np.array([[0, 1, 1, 0], [1, 0, 0, 1]], dtype=bool)  # 2:4 by |w|
S = np.array([[4.0, 3.0, 2.0, 1.0], [0.0, 1.0, 2.0, 3.0]], dtype=np.float32)  # explicit scores
KEEP_S = np.array([[1, 1, 0, 0], [0, 0, 1, 1]], dtype=bool)
P = np.array([[0.0, 1.0, 0.0, 1.0], [1.0, 1.0, 0.0, 0.0]], dtype=np.float32)  # BERN probabilities
WORDS = np.zeros(W.shape, dtype=np.uint32)


def jax_grads(spec, scores=None, trainable=False, random_bits=None):
    def loss(w, s):
        return jnp.sum(sparsify(w, spec, scores=s, random_bits=random_bits, trainable_scores=trainable) * UP)

    s = None if scores is None else jnp.asarray(scores)
    argnums = (0, 1) if trainable else 0
    g = jax.grad(loss, argnums=argnums)(jnp.asarray(W), s)
    return tuple(np.asarray(x) for x in g) if trainable else (np.asarray(g), None)


def torch_grads(spec, scores=None, trainable=False, random_bits=None):
    w = torch.tensor(W, requires_grad=True)
    s = None if scores is None else torch.tensor(scores, requires_grad=trainable)
    bits = None if random_bits is None else torch.from_numpy(random_bits.view(np.int32).copy())
    out = sparsify(w, spec, scores=s, random_bits=bits, trainable_scores=trainable)
    (out * torch.from_numpy(UP)).sum().backward()
    return w.grad.numpy(), (s.grad.numpy() if trainable else None)


GRADS = [jax_grads, torch_grads]


@pytest.mark.parametrize("grads", GRADS)
def test_u_is_straight_through(grads):
    gw, _ = grads("BTOPK{2:4,-1}(U)")
    np.testing.assert_array_equal(gw, UP)
    gw, _ = grads("TOPK{0.5}(U)")
    np.testing.assert_array_equal(gw, UP)


@pytest.mark.parametrize("grads", GRADS)
def test_m_masks_the_gradient(grads):
    gw, _ = grads("BTOPK{2:4,-1}(M)")
    np.testing.assert_array_equal(gw, np.where(KEEP, UP, 0))
    gw, _ = grads("TOPK{0.5}(M)")
    np.testing.assert_array_equal(gw, np.where(KEEP, UP, 0))  # the same 4 largest magnitudes


@pytest.mark.parametrize("grads", GRADS)
def test_bernoulli_masks_the_gradient(grads):
    gw, _ = grads("BERN", scores=P, random_bits=WORDS)
    np.testing.assert_array_equal(gw, np.where(P > 0, UP, 0))


@pytest.mark.parametrize("grads", GRADS)
def test_fixed_scores_get_no_gradient_and_choose_the_mask(grads):
    gw, _ = grads("BTOPK{2:4,-1}(M)", scores=S)
    np.testing.assert_array_equal(gw, np.where(KEEP_S, UP, 0))


@pytest.mark.parametrize("grads", GRADS)
@pytest.mark.parametrize("mode", ["M", "U"])
def test_trainable_scores_are_straight_through(grads, mode):
    gw, gs = grads(f"BTOPK{{2:4,-1}}({mode})", scores=S, trainable=True)
    np.testing.assert_array_equal(gs, UP * W)  # d/ds of w * mask(s), mask treated as identity
    np.testing.assert_array_equal(gw, UP if mode == "U" else np.where(KEEP_S, UP, 0))


@pytest.mark.parametrize("grads", GRADS)
def test_trainable_bernoulli_probabilities(grads):
    gw, gs = grads("BERN", scores=P, trainable=True, random_bits=WORDS)
    np.testing.assert_array_equal(gs, UP * W)
    np.testing.assert_array_equal(gw, np.where(P > 0, UP, 0))


def test_score_function_gradient_flows_by_the_chain_rule():
    # scores(w) = 2 w (trainable): d/dw = mask-gradient (U: g) + 2 * g * w
    f = lambda w: jnp.sum(sparsify(w, "TOPK{0.5}(U)", scores=lambda x: 2 * x, trainable_scores=True) * UP)  # noqa: E731
    np.testing.assert_array_equal(np.asarray(jax.grad(f)(jnp.asarray(W))), UP + 2 * UP * W)
    w = torch.tensor(W, requires_grad=True)
    (sparsify(w, "TOPK{0.5}(U)", scores=lambda x: 2 * x, trainable_scores=True) * torch.from_numpy(UP)).sum().backward()
    np.testing.assert_array_equal(w.grad.numpy(), UP + 2 * UP * W)


def test_jax_grad_under_jit_and_vmap():
    f = jax.jit(jax.grad(lambda w: jnp.sum(sparsify(w, "BTOPK{2:4,-1}(M)") * UP)))
    np.testing.assert_array_equal(np.asarray(f(jnp.asarray(W))), np.where(KEEP, UP, 0))
    rows = jax.vmap(lambda r: sparsify(r, "BTOPK{2:4,-1}(U)"))(jnp.asarray(W))
    np.testing.assert_array_equal(np.asarray(rows), np.where(KEEP, W, 0))
