"""A wrapped Flax model with its parameters and batch sharded over a 2-D
mesh (8 simulated CPU devices: 4 data x 2 model) under ``jax.jit``: outputs
bitwise equal to the unsharded model, and a ``jax.grad`` SGD step that
keeps every parameter's sharding and equals the unsharded step up to the
order of the cross-device gradient sums."""

from __future__ import annotations

import textwrap

SCRIPT = textwrap.dedent(
    """
    import numpy as np, jax, jax.numpy as jnp
    import flax.linen as nn
    from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
    import dmxnum.flax
    assert len(jax.devices()) == 8, jax.devices()

    class MLP(nn.Module):
        @nn.compact
        def __call__(self, x):
            h = nn.gelu(nn.Dense(256, name="up")(x))
            h = x + nn.Dense(128, name="down")(h)   # a residual connection
            return nn.Dense(16, name="head")(h)

    model = dmxnum.flax.Model(MLP())
    x = jax.random.normal(jax.random.key(1), (64, 128))
    y = jax.random.normal(jax.random.key(2), (64, 16))
    variables = model.init(jax.random.key(0), x)
    model.transform({
        "up": {"weight_format": "MXFP4_E2M1", "input_format": "MXFP8_E4M3"},
        "down": {"weight_format": "BFP16_64_LD", "input_format": "BFP16_64_LD"},
        "head": {"weight_format": "MXFP6_E2M3", "output_format": "FP8_E4M3FN"},
        "gelu_0": {"approximation_function": "GELU(poly2,float16)"},
    })
    mesh = Mesh(np.array(jax.devices()).reshape(4, 2), ("data", "model"))

    def spec(path, leaf):
        # column-parallel kernels (the output features on "model"); biases alike
        return NamedSharding(mesh, P(None, "model") if leaf.ndim == 2 else P("model"))

    shardings = jax.tree_util.tree_map_with_path(spec, variables)
    sharded = jax.device_put(variables, shardings)
    xs = jax.device_put(x, NamedSharding(mesh, P("data", None)))
    ys = jax.device_put(y, NamedSharding(mesh, P("data", None)))

    apply = jax.jit(model.apply)
    out_sharded, out_plain = apply(sharded, xs), apply(variables, x)
    assert not out_sharded.sharding.is_fully_replicated
    a, b = np.asarray(out_sharded), np.asarray(out_plain)
    assert (a.view(np.uint32) == b.view(np.uint32)).all(), np.abs(a - b).max()
    assert np.abs(b - np.asarray(jax.jit(MLP().apply)(variables, x))).max() > 0  # the casts act

    def loss(v, x, y):
        return jnp.mean((model.apply(v, x) - y) ** 2)

    @jax.jit
    def step(v, x, y):
        g = jax.grad(loss)(v, x, y)
        return jax.tree_util.tree_map(lambda p, d: p - 0.1 * d, v, g)

    new_sharded, new_plain = step(sharded, xs, ys), step(variables, x, y)
    for (path, p), s in zip(jax.tree_util.tree_leaves_with_path(new_sharded), jax.tree_util.tree_leaves(shardings)):
        assert p.sharding.is_equivalent_to(s, p.ndim), (path, p.sharding)
    worst = 0.0
    for p, q, o in zip(jax.tree_util.tree_leaves(new_sharded), jax.tree_util.tree_leaves(new_plain),
                       jax.tree_util.tree_leaves(variables)):
        d = np.abs(np.asarray(p) - np.asarray(q)).max()
        worst = max(worst, float(d))
        assert np.allclose(np.asarray(p), np.asarray(q), rtol=0, atol=1e-6), d
        assert np.abs(np.asarray(q) - np.asarray(o)).max() > 0  # the step moves every parameter
    print("FLAX-SHARDED-OK", worst)
    """
)


def test_sharded_flax_model_equals_unsharded_and_trains_sharded(run_on_8_devices) -> None:
    run_on_8_devices(SCRIPT, "FLAX-SHARDED-OK")
