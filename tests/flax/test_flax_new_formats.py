"""configs/nvfp4.yaml and configs/mxfp4.yaml on the Flax frontend: the same
casts as ``dmxnum.cast`` on the PyTorch layout of each Dense kernel and on
its input."""

from __future__ import annotations

from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dmxnum
import dmxnum.flax

ROOT = Path(__file__).resolve().parents[2]


class Mlp(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = nn.relu(nn.Dense(32, name="fc1")(x))
        return nn.Dense(8, name="fc2")(x)


def _bits(a):
    return np.asarray(a, dtype=np.float32).view(np.uint32)


@pytest.mark.parametrize("name, fmt", [("nvfp4", "NVFP4"), ("mxfp4", "MXFP4_E2M1")])
def test_config_file_casts_every_dense(name, fmt):
    model = dmxnum.flax.Model(Mlp())
    x = 3 * jax.random.normal(jax.random.key(1), (5, 48))
    v = model.init(jax.random.key(0), x)
    model.transform(ROOT / "configs" / f"{name}.yaml")
    got = model.apply(v, x)
    p = v["params"]
    h = x
    for layer in ("fc1", "fc2"):
        kernel = dmxnum.cast(np.asarray(p[layer]["kernel"]).T, fmt).T  # PyTorch layout (out, in)
        h = jnp.asarray(dmxnum.cast(np.asarray(h), fmt)) @ kernel + p[layer]["bias"]
        h = nn.relu(h) if layer == "fc1" else h
    np.testing.assert_allclose(np.asarray(got), np.asarray(h), rtol=1e-6, atol=1e-6)
    eff = model.effective_variables(v)["params"]
    want = dmxnum.cast(np.asarray(p["fc1"]["kernel"]).T, fmt).T
    assert np.array_equal(_bits(eff["fc1"]["kernel"]), _bits(want))
    assert not np.allclose(np.asarray(got), np.asarray(Mlp().apply(v, x)))
