"""SPEC section 10: casts of sharded jax.Arrays under jit equal the unsharded
result bit for bit and keep the input's sharding (8 simulated CPU devices)."""

from __future__ import annotations

import textwrap

SCRIPT = textwrap.dedent(
    """
    import numpy as np, jax, jax.numpy as jnp
    from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
    import dmxnum
    assert len(jax.devices()) == 8, jax.devices()
    mesh = Mesh(np.array(jax.devices()).reshape(4, 2), ("rows", "cols"))
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((32, 96)) * 2.0 ** rng.integers(-130, 60, (32, 1))).astype(np.float32)
    x[3, 5] = np.nan; x[7, 1] = np.inf; x[9] = 0.0; x[10, :] = 1e-42
    # normal data too, so that the guarded float paths (lax.cond) run sharded
    clean = (rng.standard_normal((32, 96)) * 2.0 ** rng.integers(-40, 40, (32, 1))).astype(np.float32)
    words = rng.integers(0, 2**32, x.shape, dtype=np.uint32)
    fmts = ["FP8_E4M3FN", "FP[1|5|2,15](_S)", "XP[8,3](CSN)", "BFP[8|8]{16,-1}(SN)", "BFP[6|8]{12,0}(_U)",
            "BFP[8|8]{16,-1}(SS)", "MXINT8{32,-1}", "MXFP4[E2M1]{32,-1}", "MXFP8[E5M2]{8,0}",
            "SBFP<XP[8,0](CSN)><FP[1|8|3,127](_N)>{16,-1}", "SBFP<XP[8,0](CSS)><FP[1|8|3,127](_N)>{16,-1}",
            "NVFP4(T)", "MXFP8[E4M3]{32,-1}(R)"]
    for spec, x in [(s, a) for s in (P("rows", "cols"), P("rows", None), P(None, "cols")) for a in (x, clean)]:
        sharding = NamedSharding(mesh, spec)
        xs = jax.device_put(jnp.asarray(x), sharding)
        ws = jax.device_put(jnp.asarray(words), sharding)
        for f in fmts:
            fn = jax.jit(lambda v, w, f=f: dmxnum.cast(v, f, random_bits=w))
            y = fn(xs, ws)
            ref = np.asarray(fn(jnp.asarray(x), jnp.asarray(words)))
            got = np.asarray(y)
            same = (got.view(np.uint32) == ref.view(np.uint32)) | (np.isnan(got) & np.isnan(ref))
            assert same.all(), (f, spec)
            assert y.sharding.is_equivalent_to(xs.sharding, x.ndim), (f, spec, y.sharding)
    print("SHARDING-OK")
    """
)


def test_sharded_casts_equal_unsharded_and_keep_sharding(run_on_8_devices) -> None:
    run_on_8_devices(SCRIPT, "SHARDING-OK")
