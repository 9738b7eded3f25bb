"""Flax: RMSNORM on RMSNorm modules, SILU on silu/swish ops and SiLU-kind modules."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dmxnum
import dmxnum.flax
from dmxnum.errors import ConfigError


class SiLU(nn.Module):
    """A user module named like PyTorch's nn.SiLU: kind ``silu``."""

    @nn.compact
    def __call__(self, x):
        return nn.silu(x)


class MLP(nn.Module):
    @nn.compact
    def __call__(self, x):
        h = nn.RMSNorm(epsilon=1e-5, name="norm")(x)
        g = nn.Dense(8, name="gate")(h)
        a = jax.nn.silu(g) * nn.swish(g)
        return SiLU(name="act")(a)


def _setup():
    model = dmxnum.flax.Model(MLP())
    x = jax.random.normal(jax.random.key(1), (2, 3, 8)) * 4.0
    variables = model.init(jax.random.key(0), x)
    variables = jax.tree_util.tree_map(lambda p: p * 1.5 + 0.25, variables)  # a non-trivial RMSNorm scale
    return model, variables, x


def _bits(a):
    return np.asarray(a, dtype=np.float32).view(np.uint32)


def test_names_and_slots():
    model, _, _ = _setup()
    names = model.dmx_module_names()
    for n in ("norm", "silu_0", "silu_1", "act"):
        assert "approximation_function" in names[n], n


@pytest.mark.parametrize("jit", [False, True])
def test_configured_logics_equal_approximate(jit):
    model, v, x = _setup()
    model.transform(
        {
            "norm": {"approximation_function": "RMSNORM(fallback,8,float16)"},
            "silu_0": {"approximation_function": "SILU(base2,float16)"},
            "silu_1": {"approximation_function": "SILU(poly2,bfloat16)"},
            "act": {"approximation_function": "SILU(base2quake3,float16)"},
        }
    )
    apply = jax.jit(model.apply) if jit else model.apply
    got = apply(v, x)
    p = v["params"]
    h = dmxnum.approximate(x, "RMSNORM(fallback,8,float16)", weight=p["norm"]["scale"], eps=1e-5)
    g = h @ p["gate"]["kernel"] + p["gate"]["bias"]
    a = dmxnum.approximate(g, "SILU(base2,float16)") * dmxnum.approximate(g, "SILU(poly2,bfloat16)")
    want = dmxnum.approximate(a, "SILU(base2quake3,float16)")
    # the Dense product may be evaluated differently under jit: compare the logics exactly on
    # the eager path and closely on the jitted one
    if jit:
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=2e-2, atol=2e-2)
    else:
        assert np.array_equal(_bits(got), _bits(want))


def test_rms_norm_module_uses_its_epsilon_and_scale():
    class Norm(nn.Module):
        @nn.compact
        def __call__(self, x):
            return nn.RMSNorm(epsilon=0.5, name="norm")(x)

    model = dmxnum.flax.Model(Norm())
    x = jnp.asarray(np.random.default_rng(0).normal(size=(4, 6)).astype(np.float32) * 0.1)
    v = model.init(jax.random.key(0), x)
    v = jax.tree_util.tree_map(lambda p: p * 2.0, v)
    model.transform({"norm": {"approximation_function": "RMSNORM(legacy,float32)"}})
    got = model.apply(v, x)
    want = dmxnum.approximate(x, "RMSNORM(legacy,float32)", weight=v["params"]["norm"]["scale"], eps=0.5)
    assert np.array_equal(_bits(got), _bits(want))


def test_wrong_family_is_rejected():
    model, _, _ = _setup()
    with pytest.raises(ConfigError, match="RMSNORM"):
        model.transform({"norm": {"approximation_function": "LAYERNORM(legacy,_,float32)"}})
    with pytest.raises(ConfigError, match="SILU"):
        model.transform({"silu_0": {"approximation_function": "GELU(poly2,float16)"}})
