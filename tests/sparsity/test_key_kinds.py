"""BERN masks take any kind of key on any backend: the key's own library
draws the words, which are then moved to the scores' backend (issue 12)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from dmxnum.sparsity import mask, sparsify

from ._helpers import BACKENDS, to_backend, to_numpy

P = np.linspace(0.0, 1.0, 60, dtype=np.float32).reshape(5, 12)
W = np.linspace(-2.0, 2.0, 60, dtype=np.float32).reshape(5, 12)

KEYS = {
    "jax": (lambda: jax.random.key(11), lambda: np.asarray(jax.random.bits(jax.random.key(11), P.shape, jnp.uint32))),
    "numpy": (lambda: np.random.default_rng(11),
              lambda: np.random.default_rng(11).integers(0, 2**32, size=P.shape, dtype=np.uint32)),
    "torch": (lambda: torch.Generator().manual_seed(11),
              lambda: torch.randint(-(2**31), 2**31, P.shape, dtype=torch.int32,
                                    generator=torch.Generator().manual_seed(11)).numpy().view(np.uint32)),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", sorted(KEYS))
def test_bern_with_any_key_on_any_backend(backend, kind):
    make_key, words = KEYS[kind]
    p, w = to_backend(P, backend), to_backend(W, backend)
    want = to_numpy(mask(P, "BERN", random_bits=words()))
    np.testing.assert_array_equal(to_numpy(mask(p, "BERN", key=make_key())), want)
    np.testing.assert_array_equal(to_numpy(sparsify(w, "BERN", scores=p, key=make_key())), np.where(want, W, 0))
