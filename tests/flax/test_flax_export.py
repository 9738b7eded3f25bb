"""``jax.export`` of dmxnum-wrapped Flax models (issue, part 4).

Every JAX cast runs under ``jax.named_scope("dmxnum.cast[<shorthand>]")``
(``dmxnum.approximate[...]``, ``dmxnum.sparsify[...]`` likewise): the name
survives as location metadata in ``Exported.mlir_module()`` and in the
serialized bytes. A wrapped Flax LeNet-5 exports, serializes, deserializes and
runs to the same bits as the jitted original.

Model: the Flax LeNet-5 twin of ``flax_twins`` (conv1, conv2: ``nn.Conv``;
fc1..fc3: ``nn.Dense``; NHWC 8x8 input).
"""

from __future__ import annotations

import re
from pathlib import Path

import flax_twins as tw
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import export

import dmxnum
import dmxnum.flax
import dmxnum.reference
from dmxnum.formats.same import Same
from dmxnum.flax import translate
from dmxnum.testing import assert_bit_exact

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
X = jax.random.uniform(jax.random.key(1), (4, 8, 8, 1))
# the unwrapped module's variables (jitted init: quick), shared by every test
VARIABLES = jax.jit(tw.FlaxLeNet().init)(jax.random.key(0), X)
# (ndim, Flax layout, spatial axes) of each configured tensor of the LeNet twin, by module kind
CONV = {"weight_format": (4, "conv_weight", 2), "input_format": (4, "channels", 2), "output_format": (4, "channels", 2)}
DENSE = {"weight_format": (2, "linear_weight", None), "input_format": (2, "features", None),
         "output_format": (2, "features", None)}
KINDS = {"conv1": CONV, "conv2": CONV, "fc1": DENSE, "fc2": DENSE, "fc3": DENSE}


def _bits(a) -> np.ndarray:
    return np.asarray(a, dtype=np.float32).view(np.uint32)


def _expected_scopes(model: dmxnum.flax.Model) -> set[str]:
    """``dmxnum.cast[...]`` for every format the configuration casts with, in its Flax
    layout (block axes translated as the frontend translates them)."""
    names = set()
    for module, slots in model.configuration.items():
        for slot, fmt in slots.items():
            if not slot.endswith("_format") or isinstance(fmt, Same):
                continue
            ndim, layout, spatial = KINDS[module][slot]
            names.add(f"dmxnum.cast[{translate(fmt, ndim, layout, spatial)}]")
    return names


@pytest.mark.parametrize("config", ["lenet5.yaml", "mxfp4_weights_mxfp8_act.yaml"])
def test_wrapped_lenet_exports_serializes_and_runs_to_the_same_bits(config):
    model = dmxnum.flax.Model(tw.FlaxLeNet()).transform(CONFIGS / config)
    jitted = jax.jit(lambda v, x: model.apply(v, x))
    expected = jitted(VARIABLES, X)

    exp = export.export(jitted)(VARIABLES, X)
    blob = exp.serialize()
    restored = export.deserialize(blob)
    got = restored.call(VARIABLES, X)
    assert got.shape == expected.shape == (4, 10)
    assert np.array_equal(_bits(got), _bits(expected))

    scopes = _expected_scopes(model)
    assert len(scopes) == 4  # BFP/MX weights and inputs, conv and dense axes
    text = exp.mlir_module()
    found = set(re.findall(r'[/"](dmxnum\.cast\[.*?\])/', text))
    assert found == scopes
    for name in scopes:
        assert name.encode() in bytes(blob), name


def test_export_names_approximate_and_sparsify():
    def f(x):
        y = dmxnum.sparsify(x, "BTOPK{2:4,-1}(U)")
        return dmxnum.approximate(y, "SOFTMAX(base2,float16)")

    text = export.export(jax.jit(f))(jnp.ones((2, 8))).mlir_module()
    for name in ("dmxnum.sparsify[BTOPK{2:4,-1}(U)]", "dmxnum.approximate[SOFTMAX(base2,float16)]"):
        assert f'"jit(f)/{name}/' in text, name
    assert "dmxnum.cast" not in text


FORMATS = ("BFP[8|8]{64,-1}(SN)", "MXFP8[E4M3]{32,-1}", "FP[1|4|3,7](_N)")


@pytest.mark.parametrize("fmt", FORMATS)
def test_jitted_cast_keeps_its_bits_gradient_and_vmap(fmt):
    x = np.array(jax.random.normal(jax.random.key(3), (64, 64)) * 8, dtype=np.float32)
    x[0, :4] = [0.0, -0.0, np.inf, np.nan]
    cast = jax.jit(lambda v: dmxnum.cast(v, fmt))
    assert_bit_exact(cast(jnp.asarray(x)), fmt, x)
    assert f'"dmxnum.cast[{dmxnum.parse(fmt)}]/' in export.export(cast)(jnp.asarray(x)).mlir_module()

    w = jnp.asarray(x[1:])  # finite rows (blocks run along rows)
    g = jax.jit(jax.grad(lambda v: (dmxnum.cast(v, fmt) * v).sum()))(w)
    # straight-through: d/dv (cast(v) * v) = cast(v) + v
    assert np.array_equal(_bits(g), _bits(jnp.asarray(dmxnum.reference.cast(x[1:], fmt)) + w))
    both = jax.vmap(lambda v: dmxnum.cast(v, fmt))(jnp.stack([w, -w]))
    assert_bit_exact(both, fmt, jnp.stack([w, -w]))
