"""Operator sites in Flax (issue 19): ``+``, ``*`` and ``@`` between activations.

``dmxnum.flax.primitives`` finds them in the jaxpr of the run and names them
``<module path>.<op>_<i>`` as the PyTorch frontend names ``add``, ``mul`` and
``matmul``. Checked here: the names recorded for an MLP with residual
connections and for an attention block with ``@`` (and what is not counted:
bias adds, LayerNorm and GELU internals, products with constants, broadcasts);
``residual_format`` / ``multiplier_format`` / ``input_format`` /
``output_format`` change exactly the targeted operands, bit for bit against a
hand-written twin with explicit ``dmxnum.cast`` calls, eager, under
``jax.jit``, ``jax.grad`` and ``jax.vmap``; unknown op names; a PyTorch twin
configured by the same YAML agrees per op bit for bit; the compiled HLO has
no more ops than the hand-written twin's (``benchmarks/bench_flax_sites.py``).
"""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import flax.linen as nn
import flax_twins as tw
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn as tnn

import dmxnum
import dmxnum.flax
import torch_frontend as dmx
from dmxnum.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
D, H, T = 16, 2, 8
BFP4 = "BFP[4|8]{8,-1}(SN)"
BFP4_T = "BFP[4|8]{8,-2}(SN)"
FP8 = "FP[1|4|3,7](FN)"


# ----------------------------------------------------------------------------- models
def cast(x, fmt):
    """The hand-written twins' cast (the call the frontend makes for an op operand)."""
    return x if fmt is None else dmxnum.cast(x, fmt)


class MLPBlock(nn.Module):
    """A gated MLP with a residual connection; ``fmt``: the twin's explicit casts."""

    fmt: tuple = ()

    @nn.compact
    def __call__(self, x):
        f = dict(self.fmt)
        h = nn.Dense(D, name="fc1")(x)
        g = nn.Dense(D, name="gate")(x)
        h = cast(nn.gelu(h, approximate=False), f.get("mul_in")) * cast(g, f.get("mul_mult"))  # mul_0
        h = cast(h, f.get("mul_out"))
        h = nn.Dense(D, name="fc2")(h * 0.5)  # a product with a constant: not a site
        return x + cast(h, f.get("residual"))  # add_0


class ResMLP(nn.Module):
    fmt: tuple = ()

    @nn.compact
    def __call__(self, x):
        f = dict(self.fmt)
        pos = self.param("pos", nn.initializers.normal(1.0), (D,))
        x = nn.Dense(D, name="inp")(x) + pos  # broadcasts a parameter: not a site
        x = MLPBlock(name="b0", fmt=f.get("b0", ()))(x)
        x = nn.LayerNorm(name="ln")(x)  # var + eps, scale * x: its implementation
        x = MLPBlock(name="b1", fmt=f.get("b1", ()))(x)
        return x + cast(x * x, f.get("root_residual"))  # mul_0 (no slot configured), add_0


class Attention(nn.Module):
    """Multi-head attention with explicit ``@`` (q @ k^T, p @ v) and a residual."""

    fmt: tuple = ()

    @nn.compact
    def __call__(self, x):  # (B, T, D)
        f = dict(self.fmt)

        def heads(name):  # (..., H, T, Dh); unbatched under jax.vmap
            return jnp.swapaxes(nn.Dense(D, name=name)(x).reshape(*x.shape[:-1], H, -1), -3, -2)

        q, k, v = heads("q"), heads("k"), heads("v")
        s = cast(q, f.get("qk_in")) @ cast(jnp.swapaxes(k, -1, -2), f.get("qk_mult"))  # matmul_0
        p = nn.softmax(s * (1.0 / math.sqrt(D // H)), axis=-1)
        a = cast(cast(p, f.get("pv_in")) @ cast(v, f.get("pv_mult")), f.get("pv_out"))  # matmul_1
        a = jnp.swapaxes(a, -3, -2).reshape(x.shape)
        return x + cast(nn.Dense(D, name="o")(a), f.get("residual"))  # add_0


class AttnNet(nn.Module):
    fmt: tuple = ()

    @nn.compact
    def __call__(self, x):
        f = dict(self.fmt)
        x = Attention(name="attn", fmt=f.get("attn", ()))(x)
        return nn.LayerNorm(name="ln")(x)


def _x(shape=(2, T, D), seed=1):
    return jax.random.normal(jax.random.key(seed), shape)


def _bits(a):
    return np.asarray(a, dtype=np.float32).view(np.uint32)


def _assert_bitwise(a, b, what=""):
    a, b = _bits(a), _bits(b)
    assert a.shape == b.shape, what
    differ = np.flatnonzero(a != b)
    assert differ.size == 0, f"{what}: {differ.size} of {a.size} elements differ"


# ----------------------------------------------------------------------------- names
def test_names_of_an_mlp_with_residual_connections():
    model = dmxnum.flax.Model(ResMLP())
    model.init(jax.random.key(0), _x())
    block = ["fc1", "gate", "gelu_0", "mul_0", "fc2", "add_0"]
    assert list(model.dmx_module_names()) == [
        "inp", "b0", *(f"b0.{n}" for n in block), "ln", "b1", *(f"b1.{n}" for n in block), "mul_0", "add_0",
    ]
    names = model.dmx_module_names()
    assert names["b0.add_0"] == ("instance", "input_format", "residual_format", "output_format")
    assert names["b0.mul_0"] == ("instance", "input_format", "multiplier_format", "output_format")
    # the PyTorch spelling of a site is the Flax one
    model.transform({"b1.add_0": {"residual_format": FP8}})
    assert list(model.configuration) == ["b1.add_0"]


def test_names_of_an_attention_block_with_matmul_operators():
    model = dmxnum.flax.Model(AttnNet())
    assert list(model.trace(_x())) == [
        "attn", "attn.q", "attn.k", "attn.v", "attn.matmul_0", "attn.softmax_0", "attn.matmul_1", "attn.o",
        "attn.add_0", "ln",
    ]
    assert model.dmx_module_names()["attn.matmul_1"] == (
        "instance", "input_format", "multiplier_format", "output_format",
    )


def test_what_is_not_a_site():
    """Bias adds, LayerNorm / GELU / softmax internals, products with constants or with
    parameters, broadcasting additions, integer arithmetic and products of weights."""

    class Odd(nn.Module):
        @nn.compact
        def __call__(self, x, idx):
            w = self.param("w", nn.initializers.normal(1.0), (D, D))
            u = self.param("u", nn.initializers.normal(1.0), (D, D))
            wu = w @ u  # parameters only: not a matmul site
            y = x @ wu  # one operand derives from parameters only: not a site
            y = y + x[:1]  # broadcasts: not a site
            y = y * jnp.ones_like(y)  # a constant: not a site
            n = idx + idx  # integers: not a site
            y = nn.LayerNorm(name="ln")(nn.gelu(y))
            return y + y[::-1], n  # add_0

    model = dmxnum.flax.Model(Odd())
    model.init(jax.random.key(0), _x(), jnp.arange(3))
    assert list(model.dmx_module_names()) == ["gelu_0", "ln", "add_0"]


def test_sites_inside_a_jitted_helper_belong_to_the_calling_body():
    @jax.jit
    def gate(a, b):
        return a * jnp.tanh(b)  # mul_0 of the calling body (jnp.tanh is not a hooked op)

    class Gated(nn.Module):
        @nn.compact
        def __call__(self, x):
            return nn.Dense(D, name="fc")(gate(x, x)) + x

    model = dmxnum.flax.Model(Gated())
    x = _x()
    variables = model.init(jax.random.key(0), x)
    assert list(model.dmx_module_names()) == ["mul_0", "fc", "add_0"]
    model.transform({"mul_0": {"multiplier_format": FP8}})

    class Twin(nn.Module):
        @nn.compact
        def __call__(self, x):
            return nn.Dense(D, name="fc")(x * dmxnum.cast(jnp.tanh(x), FP8)) + x

    _assert_bitwise(jax.jit(model.apply)(variables, x), jax.jit(Twin().apply)(variables, x), "jit helper")


def test_a_module_with_python_control_flow_on_values_still_initializes():
    class Branchy(nn.Module):
        @nn.compact
        def __call__(self, x):
            y = nn.Dense(D, name="fc")(x)
            return y + x if float(jnp.sum(x)) > 0 else y

    model = dmxnum.flax.Model(Branchy())
    x = jnp.abs(_x())
    variables = model.init(jax.random.key(0), x)  # eager: the names, without operator sites
    assert list(model.dmx_module_names()) == ["fc"]
    _assert_bitwise(model.apply(variables, x), Branchy().apply(variables, x))


def test_unknown_op_name_lists_the_recorded_ones():
    model = dmxnum.flax.Model(ResMLP())
    model.init(jax.random.key(0), _x())
    with pytest.raises(
        ConfigError,
        match=r"no call of 'add' number 1 was recorded in 'b0' \(recorded there: 'b0\.gelu_0', "
        r"'b0\.mul_0', 'b0\.add_0'\)",
    ):
        model.transform({"b0.add_1": {"residual_format": FP8}})
    with pytest.raises(ConfigError, match=r"no call of 'matmul' number 0 .*top-level module.*'mul_0', 'add_0'"):
        model.transform({"matmul_0": {"input_format": FP8}})
    assert model.configuration == {}


# ----------------------------------------------------------------------------- exact operands
MLP_CFG = {
    "b0.add_0": {"residual_format": BFP4},
    "b1.mul_0": {"input_format": FP8, "multiplier_format": BFP4, "output_format": "BF16"},
}
MLP_TWIN = {"b0": {"residual": BFP4}, "b1": {"mul_in": FP8, "mul_mult": BFP4, "mul_out": "BF16"}}

ATTN_CFG = {
    "attn.matmul_0": {"input_format": BFP4, "multiplier_format": BFP4_T},
    "attn.matmul_1": {"multiplier_format": BFP4_T, "output_format": FP8},
    "attn.add_0": {"residual_format": "BF16"},
}
ATTN_TWIN = {"attn": {"qk_in": BFP4, "qk_mult": BFP4_T, "pv_mult": BFP4_T, "pv_out": FP8, "residual": "BF16"}}


def _freeze(fmt):
    """A twin's ``fmt`` attribute: nested dicts as tuples of items (hashable)."""
    return tuple((k, _freeze(v) if isinstance(v, dict) else v) for k, v in fmt.items())


def _twins(net_cls, cfg, twin_fmt):
    """The wrapped model configured by ``cfg`` and its hand-written twin (explicit casts)."""
    x = _x()
    model = dmxnum.flax.Model(net_cls())
    variables = model.init(jax.random.key(0), x)
    model.transform(cfg)
    return model, net_cls(fmt=_freeze(twin_fmt)), variables, x


@pytest.mark.parametrize(
    "net_cls, cfg, twin_fmt", [(ResMLP, MLP_CFG, MLP_TWIN), (AttnNet, ATTN_CFG, ATTN_TWIN)], ids=["mlp", "attention"]
)
def test_configured_sites_cast_exactly_the_targeted_operands(net_cls, cfg, twin_fmt):
    model, twin, variables, x = _twins(net_cls, cfg, twin_fmt)
    expected = twin.apply(variables, x)
    _assert_bitwise(model.apply(variables, x), expected, "eager")
    _assert_bitwise(jax.jit(model.apply)(variables, x), jax.jit(twin.apply)(variables, x), "jit")
    assert not np.array_equal(_bits(expected), _bits(net_cls().apply(variables, x)))  # the casts act
    report = model.dmx_report()
    assert report.missing == [] and {r.name for r in report.rows} == set(cfg)


def test_grad_and_vmap():
    model, twin, variables, x = _twins(AttnNet, ATTN_CFG, ATTN_TWIN)

    def loss(apply):
        return lambda v, x: jnp.sum(apply(v, x) ** 2)

    g_model = jax.jit(jax.grad(loss(model.apply), argnums=(0, 1)))(variables, x)
    g_twin = jax.jit(jax.grad(loss(twin.apply), argnums=(0, 1)))(variables, x)
    for a, b in zip(jax.tree_util.tree_leaves(g_model), jax.tree_util.tree_leaves(g_twin)):
        _assert_bitwise(a, b, "grad")
    assert all(np.all(np.isfinite(np.asarray(a))) for a in jax.tree_util.tree_leaves(g_model))
    per_example = jax.jit(jax.vmap(model.apply, in_axes=(None, 0)))(variables, x)
    twin_per_example = jax.jit(jax.vmap(twin.apply, in_axes=(None, 0)))(variables, x)
    _assert_bitwise(per_example, twin_per_example, "vmap")
    np.testing.assert_allclose(np.asarray(per_example), np.asarray(model.apply(variables, x)), atol=2e-2)


def test_stochastic_site_format_draws_from_the_dmx_stream():
    model = dmxnum.flax.Model(ResMLP())
    x = _x()
    variables = model.init(jax.random.key(0), x)
    model.transform({"b0.add_0": {"residual_format": "BFP[4|8]{8,-1}(SS)"}})
    a = model.apply(variables, x, rngs={"dmx": jax.random.key(3)})
    b = jax.jit(model.apply)(variables, x, rngs={"dmx": jax.random.key(3)})
    c = model.apply(variables, x, rngs={"dmx": jax.random.key(4)})
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5)
    assert not np.allclose(np.asarray(a), np.asarray(c))


def test_pending_configuration_and_report_with_sites():
    x = _x()
    model = dmxnum.flax.Model(AttnNet()).transform(ATTN_CFG)
    variables = AttnNet().init(jax.random.key(0), x)
    expected = AttnNet(fmt=_freeze(ATTN_TWIN)).apply(variables, x)
    _assert_bitwise(model.apply(variables, x), expected, "pending, first apply")
    report = model.dmx_report(variables, x, reference=True)
    sqnr = {r.name: r.sqnr_db for r in report.rows}
    assert all(len(v) == 1 and math.isfinite(v[0]) for v in sqnr.values()), sqnr


# ----------------------------------------------------------------------------- PyTorch twin
class TorchOps(tnn.Module):
    def forward(self, x, y):
        r = x + y  # add_0
        g = r * y  # mul_0
        s = g @ y.transpose(-2, -1)  # matmul_0
        return r, g, s


class TorchOpsNet(tnn.Module):
    def __init__(self):
        super().__init__()
        self.ops = TorchOps()

    def forward(self, x, y):
        r, g, s = self.ops(x, y)
        return r, g, s, s @ x, x + r  # matmul_0, add_0


class FlaxOps(nn.Module):
    def __call__(self, x, y):
        r = x + y
        g = r * y
        s = g @ jnp.swapaxes(y, -1, -2)
        return r, g, s


class FlaxOpsNet(nn.Module):
    def setup(self):
        self.ops = FlaxOps()

    def __call__(self, x, y):
        r, g, s = self.ops(x, y)
        return r, g, s, s @ x, x + r


# Products of 4-bit mantissas sharing one exponent per contraction are exact in
# float32, so the matmul sites agree bit for bit, as the element-wise ones do.
OPS_YAML = """
ops.add_0:
  instance: add
  input_format: BFP[8|8]{8,-1}(SN)
  residual_format: BFP[4|8]{8,-1}(SN)
  output_format: FP[1|5|10,15](_N)
ops.mul_0:
  instance: mul
  multiplier_format: MXFP8[E4M3]{8,-1}
  output_format: BF16
ops.matmul_0:
  instance: matmul
  input_format: BFP[4|8]{8,-1}(SN)
  multiplier_format: BFP[4|8]{8,-2}(SN)
matmul_0:
  instance: matmul
  input_format: BFP[4|8]{8,-1}(SN)
  multiplier_format: BFP[4|8]{4,-2}(SN)
  output_format: BFP[6|8]{8,-1}(SN)
add_0:
  residual_format: FP[1|4|3,7](FN)
"""


def test_pytorch_twin_agrees_per_op_bit_for_bit():
    rng = np.random.default_rng(5)
    x = (rng.standard_normal((2, 8, 8)) * rng.choice([1e-2, 1.0, 30.0], size=(2, 8, 8))).astype(np.float32)
    y = rng.standard_normal((2, 8, 8)).astype(np.float32)
    dmx.aware()
    tmodel = dmx.Model(TorchOpsNet())
    tmodel.trace(torch.from_numpy(x), torch.from_numpy(y))
    fmodel = dmxnum.flax.Model(FlaxOpsNet())
    fmodel.trace(jnp.asarray(x), jnp.asarray(y))
    t_names = [n for n in tmodel.dmx_module_names() if n != "ops"]
    f_names = [n for n in fmodel.dmx_module_names() if n != "ops"]
    assert t_names == f_names == ["ops.add_0", "ops.mul_0", "ops.matmul_0", "matmul_0", "add_0"]
    tmodel.transform(OPS_YAML)
    fmodel.transform(OPS_YAML)
    with torch.no_grad():
        t_out = tmodel(torch.from_numpy(x), torch.from_numpy(y))
    f_out = jax.jit(fmodel.apply)({}, jnp.asarray(x), jnp.asarray(y))
    for name, a, b in zip(["ops.add_0", "ops.mul_0", "ops.matmul_0", "matmul_0", "add_0"], t_out, f_out):
        _assert_bitwise(a.numpy(), b, name)
    plain = FlaxOpsNet().apply({}, jnp.asarray(x), jnp.asarray(y))
    assert all(not np.array_equal(_bits(a), _bits(b)) for a, b in zip(plain, f_out))


def test_transformer_block_twins_with_residual_formats():
    """The explicit-attention block of the cross-framework tests, its two residual
    additions (``add_0``, ``add_1``, the root's) configured too: end to end within
    the documented tolerance (4 quanta of BFP[6|8] at the output's magnitude)."""
    from test_cross_framework import BLOCK_EXPLICIT, _quanta

    config = BLOCK_EXPLICIT + """
add_0:
  residual_format: BFP[8|8]{16,-1}(SN)
add_1:
  input_format: BF16
  residual_format: BFP[8|8]{16,-1}(SN)
"""
    torch.manual_seed(1)
    tnet = tw.TorchBlock(True).eval()
    fvars = tw.block_flax_params(tnet)
    x = np.random.default_rng(1).standard_normal((2, 8, tw.D_MODEL)).astype(np.float32)
    dmx.aware()
    tmodel = dmx.Model(tnet)
    tmodel.trace(torch.from_numpy(x))
    fmodel = dmxnum.flax.Model(tw.FlaxBlock(True))
    fmodel.trace(jnp.asarray(x))
    sites = ["matmul_0", "softmax_0", "matmul_1", "add_0", "gelu_0", "add_1"]
    assert [n for n in fmodel.dmx_module_names() if n in sites] == sites
    assert [n for n in tmodel.dmx_module_names() if n in sites] == sites
    tmodel.transform(config)
    fmodel.transform(config)
    with torch.no_grad():
        y_t = tmodel(torch.from_numpy(x)).numpy()
    y_f = np.asarray(jax.jit(fmodel.apply)(fvars, jnp.asarray(x)))
    assert fmodel.dmx_report().missing == []
    assert np.max(np.abs(y_t - y_f)) <= 4 * _quanta(y_t, 6)


# ----------------------------------------------------------------------------- compiled cost
def test_compiled_hlo_is_no_larger_than_the_hand_written_twin():
    spec = importlib.util.spec_from_file_location("bench_flax_sites", ROOT / "benchmarks" / "bench_flax_sites.py")
    bench = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = bench
    spec.loader.exec_module(bench)
    counts = bench.hlo_counts()
    assert counts["wrapped"] <= 1.2 * counts["twin"], counts
    counts = bench.nnx_hlo_counts()  # the same block in Flax NNX
    assert counts["wrapped"] <= 1.2 * counts["twin"], counts
    assert counts["twin"] > counts["plain"]  # the casts are there


# ----------------------------------------------------------------------------- sharding
SHARDED = """
import numpy as np, jax, jax.numpy as jnp
import flax.linen as nn
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
import dmxnum.flax
assert len(jax.devices()) == 8, jax.devices()

class GatedMLP(nn.Module):
    @nn.compact
    def __call__(self, x):
        h = nn.silu(nn.Dense(256, name="gate")(x)) * nn.Dense(256, name="up")(x)   # mul_0
        return x + nn.Dense(128, name="down")(h)                                   # add_0

model = dmxnum.flax.Model(GatedMLP())
x = jax.random.normal(jax.random.key(1), (64, 128))
variables = model.init(jax.random.key(0), x)
model.transform({
    "mul_0": {"input_format": "BFP16_64_LD", "multiplier_format": "MXFP8_E4M3", "output_format": "BF16"},
    "add_0": {"residual_format": "BFP16_64_LD"},
})
mesh = Mesh(np.array(jax.devices()).reshape(4, 2), ("data", "model"))
spec = lambda path, leaf: NamedSharding(mesh, P(None, "model") if leaf.ndim == 2 else P("model"))
sharded = jax.device_put(variables, jax.tree_util.tree_map_with_path(spec, variables))
xs = jax.device_put(x, NamedSharding(mesh, P("data", None)))
apply = jax.jit(model.apply)
a, b = np.asarray(apply(sharded, xs)), np.asarray(apply(variables, x))
assert (a.view(np.uint32) == b.view(np.uint32)).all(), np.abs(a - b).max()
assert np.abs(b - np.asarray(jax.jit(GatedMLP().apply)(variables, x))).max() > 0  # the casts act
g = jax.jit(jax.grad(lambda v, x: jnp.sum(model.apply(v, x) ** 2)))(sharded, xs)
g0 = jax.jit(jax.grad(lambda v, x: jnp.sum(model.apply(v, x) ** 2)))(variables, x)
for p, q in zip(jax.tree_util.tree_leaves(g), jax.tree_util.tree_leaves(g0)):
    assert np.allclose(np.asarray(p), np.asarray(q), rtol=1e-5, atol=1e-4), np.abs(np.asarray(p) - np.asarray(q)).max()
print("FLAX-SITES-SHARDED-OK")
"""


def test_sharded_run_with_operator_sites_equals_the_unsharded_one(run_on_8_devices):
    """8 simulated CPU devices (4 data x 2 model), as tests/flax/test_flax_sharded.py."""
    run_on_8_devices(SHARDED, "FLAX-SITES-SHARDED-OK")
