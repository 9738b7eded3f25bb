"""Flax NNX models under ``dmxnum.flax.Model`` (issue 19).

The NNX twins of the Linen LeNet-5 (``examples/nnx_digits.py``) and of the
MLP with residual connections and the attention block of
``test_flax_primitives.py`` (same names, same parameters) are configured by
the same YAML files and must compute bit for bit what the wrapped Linen twins
compute; ``residual_format`` / ``multiplier_format`` cast exactly the
targeted operands (a hand-written twin); unknown op names list the recorded
ones; ``nnx.jit``, ``nnx.grad``, ``nnx.vmap``, ``nnx.Optimizer`` QAT, the
``dmx`` rng stream, split/merge, and the module is never changed.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from test_flax_primitives import (
    ATTN_CFG, ATTN_TWIN, BFP4, FP8, MLP_CFG, MLP_TWIN, AttnNet, ResMLP, _assert_bitwise, _bits, cast,
)

import dmxnum.flax
from dmxnum.errors import ConfigError, MissingRandomnessError, SlotNotAppliedWarning
from examples import demo_flax
from examples.nnx_digits import LeNet5, load_linen_params

D, H = 16, 2
CONFIGS = demo_flax.CONFIGS
LENET_CONFIGS = ("lenet5.yaml", "mxfp4_weights_mxfp8_act.yaml", "sparse_2of4.yaml", "bfp16_transformer.yaml")


# ----------------------------------------------------------------------------- NNX twins
class MLPBlock(nnx.Module):
    """NNX twin of ``test_flax_primitives.MLPBlock`` (``fmt``: the hand-written twin's casts)."""

    def __init__(self, rngs, fmt=None):
        self.fc1 = nnx.Linear(D, D, rngs=rngs)
        self.gate = nnx.Linear(D, D, rngs=rngs)
        self.fc2 = nnx.Linear(D, D, rngs=rngs)
        self.fmt = dict(fmt or {})

    def __call__(self, x):
        f = self.fmt
        h, g = self.fc1(x), self.gate(x)
        h = cast(nnx.gelu(h, approximate=False), f.get("mul_in")) * cast(g, f.get("mul_mult"))
        h = self.fc2(cast(h, f.get("mul_out")) * 0.5)
        return x + cast(h, f.get("residual"))


class NnxResMLP(nnx.Module):
    def __init__(self, rngs, fmt=None):
        f = dict(fmt or {})
        self.pos = nnx.Param(jnp.zeros((D,)))
        self.inp = nnx.Linear(D, D, rngs=rngs)
        self.b0 = MLPBlock(rngs, f.get("b0"))
        self.ln = nnx.LayerNorm(D, rngs=rngs)
        self.b1 = MLPBlock(rngs, f.get("b1"))
        self.fmt = {k: v for k, v in f.items() if not isinstance(v, dict)}

    def __call__(self, x):
        x = self.inp(x) + self.pos
        x = self.b1(self.ln(self.b0(x)))
        return x + cast(x * x, self.fmt.get("root_residual"))


class Attention(nnx.Module):
    def __init__(self, rngs, fmt=None):
        self.q, self.k, self.v, self.o = (nnx.Linear(D, D, rngs=rngs) for _ in range(4))
        self.fmt = dict(fmt or {})

    def __call__(self, x):
        f = self.fmt

        def heads(layer):
            return jnp.swapaxes(layer(x).reshape(*x.shape[:-1], H, -1), -3, -2)

        q, k, v = heads(self.q), heads(self.k), heads(self.v)
        s = cast(q, f.get("qk_in")) @ cast(jnp.swapaxes(k, -1, -2), f.get("qk_mult"))
        p = nnx.softmax(s * (1.0 / math.sqrt(D // H)), axis=-1)
        a = cast(cast(p, f.get("pv_in")) @ cast(v, f.get("pv_mult")), f.get("pv_out"))
        a = jnp.swapaxes(a, -3, -2).reshape(x.shape)
        return x + cast(self.o(a), f.get("residual"))


class NnxAttnNet(nnx.Module):
    def __init__(self, rngs, fmt=None):
        self.attn = Attention(rngs, (fmt or {}).get("attn"))
        self.ln = nnx.LayerNorm(D, rngs=rngs)

    def __call__(self, x):
        return self.ln(self.attn(x))


def _x(shape=(2, 8, D), seed=1):
    return jax.random.normal(jax.random.key(seed), shape)


def _pair(linen_cls, nnx_cls, x, fmt=None):
    """A Linen module with its variables and the NNX twin holding the same parameters."""
    linen = linen_cls()
    variables = linen.init(jax.random.key(0), x)
    params = jax.tree_util.tree_map(lambda a: a + 0.0, variables["params"])
    if "pos" in params:  # a non-zero learned position vector, as a trained model has
        params["pos"] = jax.random.normal(jax.random.key(7), (D,))
        variables = {"params": params}
    return linen, variables, load_linen_params(nnx_cls(nnx.Rngs(0), fmt), params)


def _lenet_pair():
    x = jnp.asarray(demo_flax.digits_data()[2][:32])
    linen = demo_flax.LeNet5()
    variables = linen.init(jax.random.key(0), x)
    return linen, variables, load_linen_params(LeNet5(nnx.Rngs(0)), variables["params"]), x


# ----------------------------------------------------------------------------- Linen parity
@pytest.mark.parametrize("config", LENET_CONFIGS)
def test_nnx_lenet5_equals_the_linen_twin_under_every_config(config):
    linen, variables, net, x = _lenet_pair()
    ref = dmxnum.flax.Model(linen)
    ref.init(jax.random.key(0), x)
    ref.transform(CONFIGS / config)
    model = dmxnum.flax.Model(net)
    assert isinstance(model, dmxnum.flax.NnxModel) and isinstance(model, nnx.Module)
    model.transform(CONFIGS / config)  # pending until the first call records the names
    y = model(x)
    assert list(model.dmx_module_names()) == list(ref.dmx_module_names())
    assert model.configuration == ref.configuration
    _assert_bitwise(y, ref.apply(variables, x), config)
    _assert_bitwise(nnx.jit(lambda m, x: m(x))(model, x), jax.jit(ref.apply)(variables, x), f"{config} jit")
    assert not np.array_equal(_bits(y), _bits(net(x)))  # the configuration acts
    report = model.dmx_report()
    assert report.missing == [] and report.rows


@pytest.mark.parametrize("config", ["bfp16_transformer.yaml", "mxfp4_weights_mxfp8_act.yaml", "sparse_2of4.yaml"])
def test_nnx_mlp_with_residuals_equals_the_linen_twin(config):
    x = _x()
    linen, variables, net = _pair(ResMLP, NnxResMLP, x)
    ref = dmxnum.flax.Model(linen)
    ref.init(jax.random.key(0), x)
    sites = {"b0.add_0": {"residual_format": BFP4}, "b1.mul_0": {"multiplier_format": FP8}, "add_0": {
        "input_format": "BF16"}}
    ref.transform(CONFIGS / config).transform(sites)
    model = dmxnum.flax.Model(net)
    model.trace(x)
    model.transform(CONFIGS / config).transform(sites)
    assert list(model.dmx_module_names()) == list(ref.dmx_module_names())
    _assert_bitwise(model(x), ref.apply(variables, x), config)
    _assert_bitwise(nnx.jit(lambda m, x: m(x))(model, x), jax.jit(ref.apply)(variables, x), f"{config} jit")


def test_names_follow_the_module_graph_with_list_indices():
    class Stack(nnx.Module):
        def __init__(self, rngs):
            self.layers = nnx.List([MLPBlock(rngs) for _ in range(2)])
            self.head = nnx.Linear(D, 4, rngs=rngs)

        def __call__(self, x):
            for layer in self.layers:
                x = layer(x)
            return self.head(x)

    model = dmxnum.flax.Model(Stack(nnx.Rngs(0)))
    block = ["fc1", "gate", "gelu_0", "mul_0", "fc2", "add_0"]
    assert list(model.trace(_x())) == [
        "layers.0", *(f"layers.0.{n}" for n in block), "layers.1", *(f"layers.1.{n}" for n in block), "head",
    ]
    assert model.dmx_module_names()["layers.1.fc2"][:3] == ("instance", "weight_sparseness", "weight_format")


# ----------------------------------------------------------------------------- operator sites
@pytest.mark.parametrize(
    "linen_cls, nnx_cls, cfg, twin_fmt",
    [(ResMLP, NnxResMLP, MLP_CFG, MLP_TWIN), (AttnNet, NnxAttnNet, ATTN_CFG, ATTN_TWIN)],
    ids=["mlp", "attention"],
)
def test_configured_sites_cast_exactly_the_targeted_operands(linen_cls, nnx_cls, cfg, twin_fmt):
    x = _x()
    _, _, net = _pair(linen_cls, nnx_cls, x)
    _, _, twin = _pair(linen_cls, nnx_cls, x, twin_fmt)
    model = dmxnum.flax.Model(net).transform(cfg)
    expected = twin(x)
    _assert_bitwise(model(x), expected, "eager")
    _assert_bitwise(nnx.jit(lambda m, x: m(x))(model, x), nnx.jit(lambda m, x: m(x))(twin, x), "jit")
    assert not np.array_equal(_bits(expected), _bits(net(x)))
    report = model.dmx_report()
    assert report.missing == [] and {r.name for r in report.rows} == set(cfg)


def test_unknown_op_name_lists_the_recorded_ones():
    model = dmxnum.flax.Model(NnxResMLP(nnx.Rngs(0)))
    model.trace(_x())
    with pytest.raises(
        ConfigError,
        match=r"no call of 'add' number 1 was recorded in 'b0' \(recorded there: 'b0\.gelu_0', "
        r"'b0\.mul_0', 'b0\.add_0'\)",
    ):
        model.transform({"b0.add_1": {"residual_format": FP8}})
    with pytest.raises(ConfigError, match=r"unknown module name 'b2'"):
        model.transform({"b2": {"input_format": FP8}})
    assert model.configuration == {}


def test_grad_and_vmap_equal_the_hand_written_twin():
    x = _x()
    _, _, net = _pair(AttnNet, NnxAttnNet, x)
    _, _, twin = _pair(AttnNet, NnxAttnNet, x, ATTN_TWIN)
    model = dmxnum.flax.Model(net).transform(ATTN_CFG)

    def loss(m):
        return jnp.sum(m(x) ** 2)

    g_model = nnx.jit(nnx.grad(loss))(model)["module"]
    g_twin = nnx.jit(nnx.grad(loss))(twin)
    leaves_model, leaves_twin = jax.tree_util.tree_leaves(g_model), jax.tree_util.tree_leaves(g_twin)
    assert len(leaves_model) == len(leaves_twin) == 10
    for a, b in zip(leaves_model, leaves_twin):
        _assert_bitwise(a, b, "grad")
    per_example = nnx.vmap(lambda m, x: m(x), in_axes=(None, 0))(model, x)
    _assert_bitwise(per_example, nnx.vmap(lambda m, x: m(x), in_axes=(None, 0))(twin, x), "vmap")
    jit_vmap = nnx.jit(nnx.vmap(lambda m, x: m(x), in_axes=(None, 0)))
    _assert_bitwise(jit_vmap(model, x), jit_vmap(twin, x), "jit(vmap)")


# ----------------------------------------------------------------------------- randomness
def test_stochastic_formats_draw_from_the_dmx_stream():
    x = _x()
    net = NnxResMLP(nnx.Rngs(0))
    cfg = {"b0.add_0": {"residual_format": "BFP[4|8]{8,-1}(SS)"}, "inp": {"weight_format": "FP[1|4|3,7](FS)"}}
    model = dmxnum.flax.Model(net).transform(cfg)
    with pytest.raises(MissingRandomnessError, match=r"rngs=nnx\.Rngs\(dmx=seed\)"):
        model(x)
    a = dmxnum.flax.Model(net, rngs=nnx.Rngs(dmx=3)).transform(cfg)
    b = dmxnum.flax.Model(net, rngs=nnx.Rngs(dmx=3)).transform(cfg)
    first, again = a(x), b(x)
    _assert_bitwise(first, again, "same seed")
    second = a(x)  # the stream advanced: fresh draws
    assert not np.array_equal(_bits(first), _bits(second))
    jitted = nnx.jit(lambda m, x: m(x))
    c = dmxnum.flax.Model(net, rngs=nnx.Rngs(dmx=3)).transform(cfg)
    c(x)
    in_jit = jitted(b, x)  # the second key of the stream, as ``second``
    np.testing.assert_allclose(np.asarray(in_jit), np.asarray(second), atol=1e-5)
    _assert_bitwise(in_jit, jitted(c, x), "jit")
    assert int(b.rngs.dmx.count.get_value()) == 2
    b.dmx_report(x, reference=True)  # report runs and effective_state leave the stream alone
    b.effective_state()
    assert int(b.rngs.dmx.count.get_value()) == 2
    with pytest.raises(TypeError, match=r"stream named 'dmx'.*got an nnx.Rngs with streams 'params'"):
        dmxnum.flax.Model(net, rngs=nnx.Rngs(params=0))


def test_a_dmx_stream_held_by_the_module_is_used():
    class WithRngs(nnx.Module):
        def __init__(self):
            self.fc = nnx.Linear(D, D, rngs=nnx.Rngs(0))
            self.rngs = nnx.Rngs(dmx=5)

        def __call__(self, x):
            return self.fc(x)

    cfg = {"fc": {"input_format": "FP[1|4|3,7](FS)"}}
    a, b = WithRngs(), WithRngs()
    ya = dmxnum.flax.Model(a).transform(cfg)(_x())
    yb = dmxnum.flax.Model(b, rngs=nnx.Rngs(dmx=5)).transform(cfg)(_x())
    _assert_bitwise(ya, yb, "the module's own dmx stream")
    assert int(a.rngs.dmx.count.get_value()) == 1


# ----------------------------------------------------------------------------- training and state
def test_qat_with_nnx_optimizer_updates_the_float_parameters():
    x_tr, y_tr, _, _ = demo_flax.digits_data()
    xb, yb = jnp.asarray(x_tr[:64]), jnp.asarray(y_tr[:64])
    net = LeNet5(nnx.Rngs(0))
    model = dmxnum.flax.Model(net).transform(CONFIGS / "mxfp4_weights_mxfp8_act.yaml")
    optimizer = nnx.Optimizer(model, optax.adam(1e-2), wrt=nnx.Param)

    def loss(m):
        return optax.softmax_cross_entropy_with_integer_labels(m(xb), yb).mean()

    before = jax.tree_util.tree_map(np.asarray, nnx.state(net, nnx.Param))
    grads = nnx.grad(loss)(model)
    # straight-through: the gradient of the float kernel is the gradient at the cast kernel
    eff = model.effective_state()
    plain = LeNet5(nnx.Rngs(1))
    nnx.update(plain, eff)
    ste = nnx.grad(lambda p: optax.softmax_cross_entropy_with_integer_labels(
        dmxnum.flax.Model(p).transform(_inputs_only())(xb), yb).mean())(plain)
    for name in ("conv1", "fc1", "fc3"):
        _assert_bitwise(grads["module"][name]["kernel"].get_value(), ste[name]["kernel"].get_value(), name)

    @nnx.jit
    def step(model, optimizer):
        value, grads = nnx.value_and_grad(loss)(model)
        optimizer.update(model, grads)
        return value

    losses = [float(step(model, optimizer)) for _ in range(15)]
    assert losses[-1] < 0.5 * losses[0], losses
    after = nnx.state(net, nnx.Param)
    kernel = np.asarray(after["fc1"]["kernel"].get_value())
    assert not np.array_equal(kernel, before["fc1"]["kernel"].get_value())  # updated in place
    eff_kernel = np.asarray(model.effective_state()["fc1"]["kernel"].get_value())
    assert not np.array_equal(kernel, eff_kernel)  # the float parameters are not the MXFP4 grid


def _inputs_only():
    """``mxfp4_weights_mxfp8_act.yaml`` without its weight formats (the STE reference)."""
    return {"rules": [
        {"module_types": ["linear"], "config": {"input_format": "MXFP8[E4M3]{32,-1}"}},
        {"module_types": ["conv"], "config": {"input_format": "MXFP8[E4M3]{32,1}"}},
    ]}


def test_the_module_is_never_changed_and_state_round_trips():
    linen, variables, net, x = _lenet_pair()
    graphdef = nnx.graphdef(net)
    params = jax.tree_util.tree_map(np.asarray, nnx.state(net))
    model = dmxnum.flax.Model(net).transform(CONFIGS / "lenet5.yaml")
    y = model(x)
    nnx.jit(lambda m, x: m(x))(model, x)
    nnx.grad(lambda m: m(x).sum())(model)
    assert nnx.graphdef(net) == graphdef and type(net.conv1) is nnx.Conv
    for a, b in zip(jax.tree_util.tree_leaves(params), jax.tree_util.tree_leaves(nnx.state(net))):
        _assert_bitwise(a, b, "parameters after configured calls")
    _assert_bitwise(net(x), linen.apply(variables, x), "the unwrapped module computes as before")
    graphdef2, state = nnx.split(model)
    copy = nnx.merge(graphdef2, state)
    assert copy.configuration == model.configuration
    _assert_bitwise(copy(x), y, "merge(split(model))")
    configured = model.configuration
    copy.transform({"fc3": {"output_format": FP8}})
    assert model.configuration == configured != copy.configuration
    assert not np.array_equal(_bits(copy(x)), _bits(y))
    _assert_bitwise(model(x), y, "the original keeps its configuration")


def test_batch_statistics_and_dropout_state_are_written_back():
    class Net(nnx.Module):
        def __init__(self, rngs):
            self.fc = nnx.Linear(D, D, rngs=rngs)
            self.bn = nnx.BatchNorm(D, rngs=rngs)
            self.drop = nnx.Dropout(0.5, rngs=rngs)

        def __call__(self, x):
            return self.drop(self.bn(self.fc(x)))

    x = _x((32, D))
    a, b = Net(nnx.Rngs(0)), Net(nnx.Rngs(0))
    model = dmxnum.flax.Model(a).transform({"fc": {"output_format": FP8}})
    y = model(x)
    h = dmxnum.cast(b.fc(x), FP8)
    _assert_bitwise(y, b.drop(b.bn(h)), "BatchNorm + Dropout")
    _assert_bitwise(a.bn.mean.get_value(), b.bn.mean.get_value(), "running mean")
    assert int(a.drop.rngs.count.get_value()) == 1
    model.eval()  # nnx.Module.eval reaches the wrapped module
    b.eval()
    assert a.bn.use_running_average and a.drop.deterministic
    _assert_bitwise(model(x), b.bn(dmxnum.cast(b.fc(x), FP8)), "eval")


def test_slots_that_do_not_run_are_reported():
    class Net(nnx.Module):
        def __init__(self, rngs):
            self.fc = nnx.Linear(D, D, rngs=rngs)
            self.ln = nnx.LayerNorm(D, use_bias=False, rngs=rngs)

        def __call__(self, x):
            return self.ln(self.fc(x))

    model = dmxnum.flax.Model(Net(nnx.Rngs(0)))
    model.trace(_x())
    model.transform({"fc": {"bias_format": FP8}, "ln": {"bias_format": "BF16", "weight_format": "BF16"}})
    with pytest.warns(SlotNotAppliedWarning, match=r"ln.*bias_format.*no 'bias' parameter"):
        model(_x())
    assert model.dmx_report().missing == [("ln", "bias_format")]


def test_errors_name_what_is_wrong():
    with pytest.raises(TypeError, match=r"flax.linen.Module or a flax.nnx.Module, got int"):
        dmxnum.flax.Model(3)
    model = dmxnum.flax.Model(LeNet5(nnx.Rngs(0))).transform({"fc9": {"input_format": FP8}})
    with pytest.raises(ConfigError, match=r"unknown module name 'fc9'.*fc1"):
        model(jnp.zeros((1, 8, 8, 1)))
    assert model.configuration == {}
    with pytest.raises(ConfigError, match=r"fc1: weight_sparseness.*BTOPK\{2:5,-1\}"):
        model.transform({"fc1": {"weight_sparseness": "BTOPK{2:5,-1}(U)"}})


def test_untraceable_module_records_its_names_from_a_concrete_call():
    class Branchy(nnx.Module):
        def __init__(self):
            self.fc = nnx.Linear(D, D, rngs=nnx.Rngs(0))

        def __call__(self, x):
            y = self.fc(x)
            return y + x if float(jnp.sum(x)) > 0 else y

    x = jnp.abs(_x())
    net = Branchy()
    model = dmxnum.flax.Model(net)
    _assert_bitwise(model(x), net(x), "empty configuration")
    assert list(model.dmx_module_names()) == ["fc"]
    model.transform({"fc": {"input_format": FP8}})
    _assert_bitwise(model(x), net.fc(dmxnum.cast(x, FP8)) + x, "configured")


def test_linen_modules_are_unaffected_by_nnx_support():
    linen = nn.Dense(4)
    model = dmxnum.flax.Model(linen)
    assert type(model) is dmxnum.flax.Model


SHARDED = """
import numpy as np, jax, jax.numpy as jnp
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
import dmxnum.flax
assert len(jax.devices()) == 8, jax.devices()

class MLP(nnx.Module):
    def __init__(self, rngs):
        self.up = nnx.Linear(128, 256, rngs=rngs)
        self.down = nnx.Linear(256, 128, rngs=rngs)
        self.head = nnx.Linear(128, 16, rngs=rngs)

    def __call__(self, x):
        h = x + self.down(nnx.gelu(self.up(x)))   # add_0: a residual connection
        return self.head(h)

def build():
    model = dmxnum.flax.Model(MLP(nnx.Rngs(0)))
    return model.transform({
        "up": {"weight_format": "MXFP4_E2M1", "input_format": "MXFP8_E4M3"},
        "down": {"weight_format": "BFP16_64_LD", "input_format": "BFP16_64_LD"},
        "head": {"weight_format": "MXFP6_E2M3", "output_format": "FP8_E4M3FN"},
        "add_0": {"residual_format": "BFP16_64_LD"},
        "gelu_0": {"approximation_function": "GELU(poly2,float16)"},
    })

x = jax.random.normal(jax.random.key(1), (64, 128))
plain, sharded = build(), build()
forward = nnx.jit(lambda m, x: m(x))
expected = forward(plain, x)
mesh = Mesh(np.array(jax.devices()).reshape(4, 2), ("data", "model"))
state = nnx.state(sharded)
spec = lambda a: NamedSharding(mesh, P(None, "model") if a.ndim == 2 else P("model"))
nnx.update(sharded, jax.tree_util.tree_map(lambda a: jax.device_put(a, spec(a)), state))
xs = jax.device_put(x, NamedSharding(mesh, P("data", None)))
out = forward(sharded, xs)
assert not out.sharding.is_fully_replicated
assert not sharded.module.up.kernel.get_value().sharding.is_fully_replicated
a, b = np.asarray(out), np.asarray(expected)
assert (a.view(np.uint32) == b.view(np.uint32)).all(), np.abs(a - b).max()
assert np.abs(b - np.asarray(forward(plain.module, x))).max() > 0  # the casts act
print("NNX-SHARDED-OK")
"""


def test_sharded_nnx_model_equals_unsharded(run_on_8_devices):
    run_on_8_devices(SHARDED, "NNX-SHARDED-OK")


def test_ptq_and_search_say_nnx_is_not_supported():
    model = dmxnum.flax.Model(LeNet5(nnx.Rngs(0)))
    x = jnp.zeros((2, 8, 8, 1))
    with pytest.raises(TypeError, match=r"NNX models are not supported yet"):
        dmxnum.flax.calibrate(model, {}, [x])
    with pytest.raises(TypeError, match=r"NNX models are not supported yet"):
        dmxnum.flax.sensitivity(model, {}, lambda m, v: 0.0, ["BF16"])


def test_report_with_reference_leaves_the_state_alone_and_the_graphdef_hashes():
    class Net(nnx.Module):
        def __init__(self, rngs):
            self.fc = nnx.Linear(D, D, rngs=rngs)
            self.bn = nnx.BatchNorm(D, rngs=rngs)

        def __call__(self, x):
            return self.bn(self.fc(x)) + x  # add_0

    x = _x((32, D))
    net = Net(nnx.Rngs(0))
    model = dmxnum.flax.Model(net).transform({"fc": {"weight_format": FP8}, "add_0": {"residual_format": FP8}})
    mean = np.asarray(net.bn.mean.get_value())
    report = model.dmx_report(x, reference=True)
    _assert_bitwise(net.bn.mean.get_value(), mean, "report runs do not update batch statistics")
    assert report.missing == [] and all(len(r.sqnr_db) == 1 and 10 < r.sqnr_db[0] < 80 for r in report.rows)
    graphdef = nnx.graphdef(model)
    assert hash(graphdef) == hash(nnx.graphdef(model))  # static attributes are hashable
    assert "2 configured" in repr(model)


def test_the_nnx_digits_example_trains_and_fine_tunes():
    """``examples/nnx_digits.py`` (shortened as in ``make demo``): FP32 training, the MXFP4/MXFP8
    cast, and QAT through the wrapper with ``nnx.Optimizer``."""
    from examples.nnx_digits import main

    results = main(epochs=12, qat_epochs=2)
    assert results["fp32"] >= 0.95
    assert results["mxfp4_ptq"] >= 0.90
    assert results["mxfp4_qat"] >= max(0.95, results["mxfp4_ptq"] - 0.005)


def test_nnx_multi_head_attention_projections_and_attention_are_configurable():
    mha = nnx.MultiHeadAttention(num_heads=2, in_features=D, qkv_features=D, decode=False, rngs=nnx.Rngs(0))
    x = _x()
    model = dmxnum.flax.Model(mha)
    assert list(model.trace(x)) == ["query", "key", "value", "dot_product_attention_0", "out"]
    assert model.dmx_module_names()["query"][:3] == ("instance", "weight_sparseness", "weight_format")
    model.transform(CONFIGS / "mxfp4_weights_mxfp8_act.yaml")
    assert model.dmx_config.count("instance: Linear") == 4
    # the (in, heads, head_dim) kernel blocks along its input features, as a PyTorch (out, in) weight does
    kernel = mha.query.kernel.get_value()
    blocked = dmxnum.cast(kernel.reshape(D, D).T, "MXFP4[E2M1]{32,-1}").T.reshape(kernel.shape)
    _assert_bitwise(model.effective_state()["query"]["kernel"].get_value(), blocked, "LinearGeneral kernel")
    y = model(x)
    assert model.dmx_report().missing == [] and not np.array_equal(_bits(y), _bits(mha(x)))
