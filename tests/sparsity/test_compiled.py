"""jax.jit and torch.compile on a fixed matrix of cases (bounded compilations), against the reference."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from dmxnum.reference import sparsity as ref
from dmxnum.sparsity import compress_nm, decompress_nm, is_sparse, mask, sparsify

from ._helpers import bits

pytestmark = [
    pytest.mark.filterwarnings("ignore:Dynamo detected a call to a .functools.lru_cache"),
    pytest.mark.filterwarnings("ignore:.torch.jit.script_method. is deprecated:DeprecationWarning"),
]

EDGES = np.array([0.0, -0.0, 1.0, -1.0, np.nan, np.inf, -np.inf, 1e-40, -1e-40, 1.4e-45, 2.0, 0.5], dtype=np.float32)
SCORES = np.random.default_rng(7).choice(EDGES, size=(8, 16)).astype(np.float32)
SCORES[0] = 1.0  # an all-equal row
PROBS = np.random.default_rng(8).choice(np.array([0.0, 1e-40, 0.25, 0.5, 1.0, 2.0**-24], np.float32), size=(8, 16))
WORDS = np.random.default_rng(9).integers(0, 2**32, size=(8, 16), dtype=np.uint32)
SPECS = ["BTOPK{2:4,-1}(U)", "BTOPK{1:4,0}(M)", "BTOPK{3:8,1}(U)", "TOPK{0.3}(M)"]


@pytest.mark.parametrize("spec", SPECS)
def test_jax_jit_mask_and_sparsify(spec):
    got = jax.jit(lambda s: mask(s, spec))(jnp.asarray(SCORES))
    np.testing.assert_array_equal(np.asarray(got), ref.mask(SCORES, spec))
    out = jax.jit(lambda w: sparsify(w, spec))(jnp.asarray(SCORES))
    np.testing.assert_array_equal(bits(np.asarray(out)), bits(ref.sparsify(SCORES, spec)))
    traced = jax.jit(lambda w: is_sparse(w, spec))(jnp.asarray(SCORES))
    assert bool(traced) is ref.is_sparse(SCORES, spec)


def test_jax_jit_bernoulli_and_compression():
    got = jax.jit(lambda p, r: mask(p, "BERN", random_bits=r))(jnp.asarray(PROBS), jnp.asarray(WORDS))
    np.testing.assert_array_equal(np.asarray(got), ref.mask(PROBS, "BERN", random_bits=WORDS))
    key = jax.random.key(0)
    a = jax.jit(lambda p, k: mask(p, "BERN", key=k))(jnp.asarray(PROBS), key)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(mask(jnp.asarray(PROBS), "BERN", key=key)))
    v, i = jax.jit(lambda w: compress_nm(w, 2, 4, -1))(jnp.asarray(SCORES))
    rv, ri = ref.compress_nm(SCORES, 2, 4, -1)
    np.testing.assert_array_equal(bits(np.asarray(v)), bits(rv))
    np.testing.assert_array_equal(np.asarray(i), ri)
    back = jax.jit(lambda v, i: decompress_nm(v, i, 2, 4, -1))(v, i)
    np.testing.assert_array_equal(bits(np.asarray(back)), bits(ref.decompress_nm(rv, ri, 2, 4, -1)))


def test_jax_vmap_matches_rows():
    rows = jax.vmap(lambda r: mask(r, "BTOPK{2:4,-1}(U)"))(jnp.asarray(SCORES))
    np.testing.assert_array_equal(np.asarray(rows), ref.mask(SCORES, "BTOPK{2:4,-1}(U)"))


def test_jax_sharded_input_keeps_result_and_sharding():
    mesh = jax.sharding.Mesh(np.array(jax.devices()[:1]), ("x",))
    sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("x"))
    x = jax.device_put(jnp.asarray(SCORES), sharding)
    out = jax.jit(lambda w: sparsify(w, "BTOPK{2:4,-1}(U)"))(x)
    np.testing.assert_array_equal(bits(np.asarray(out)), bits(ref.sparsify(SCORES, "BTOPK{2:4,-1}(U)")))


def test_torch_compile_masks_sparsify_and_compression():
    torch._dynamo.reset()

    def fn(s, p, r):
        return (
            mask(s, "BTOPK{2:4,-1}(U)"),
            mask(s, "TOPK{0.3}(M)"),
            mask(p, "BERN", random_bits=r),
            sparsify(s, "BTOPK{1:4,0}(M)"),
            compress_nm(s, 2, 4, -1),
        )

    compiled = torch.compile(fn, backend="inductor", dynamic=False)
    s, p = torch.from_numpy(SCORES.copy()), torch.from_numpy(PROBS.copy())
    r = torch.from_numpy(WORDS.view(np.int32).copy())
    nm, topk, bern, sp, (v, i) = compiled(s, p, r)
    np.testing.assert_array_equal(nm.numpy(), ref.mask(SCORES, "BTOPK{2:4,-1}(U)"))
    np.testing.assert_array_equal(topk.numpy(), ref.mask(SCORES, "TOPK{0.3}(M)"))
    np.testing.assert_array_equal(bern.numpy(), ref.mask(PROBS, "BERN", random_bits=WORDS))
    np.testing.assert_array_equal(bits(sp.numpy()), bits(ref.sparsify(SCORES, "BTOPK{1:4,0}(M)")))
    rv, ri = ref.compress_nm(SCORES, 2, 4, -1)
    np.testing.assert_array_equal(bits(v.numpy()), bits(rv))
    np.testing.assert_array_equal(i.numpy(), ri)


def test_torch_compile_gradients():
    torch._dynamo.reset()
    w0 = np.nan_to_num(SCORES, nan=3.0, posinf=4.0, neginf=-5.0)

    def loss(w, s):
        return (sparsify(w, "BTOPK{2:4,-1}(M)", scores=s, trainable_scores=True) * 3.0).sum()

    w = torch.tensor(w0, requires_grad=True)
    s = torch.tensor(w0 * w0, requires_grad=True)
    torch.compile(loss, backend="inductor", dynamic=False)(w, s).backward()
    keep = ref.mask(w0 * w0, "BTOPK{2:4,-1}(M)")
    np.testing.assert_array_equal(w.grad.numpy(), np.where(keep, 3.0, 0.0))
    np.testing.assert_array_equal(s.grad.numpy(), (3.0 * w0).astype(np.float32))
