"""Sensitivity and mixed-precision search on Flax models (``dmxnum.flax.sensitivity``
/ ``search``): measured and proxy scores against hand computations (weight
proxies with the kernel cast in PyTorch layout by hand, input proxies with
``jax.grad`` of a hand-written forward), the search's configuration applied
in Flax and, key for key, to the PyTorch twin, the on-disk cache, errors."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import dmxnum
import dmxnum.flax as dmf
from dmxnum.flax.registry import torch_alias
from dmxnum.flax.search import resolve_sites

CANDS = ["MXFP4_E2M1", "BFP16_64_LD"]  # two: each candidate and shape costs compilations
cast = jax.jit(dmxnum.cast, static_argnums=1)  # one compilation per shape, not one per op


class MLP(nn.Module):
    def setup(self):
        self.layers = [nn.Dense(64), nn.Dense(64), nn.Dense(10)]

    def __call__(self, x):
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = nn.relu(x)
        return x


class ConvNet(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = nn.relu(nn.Conv(16, (3, 3))(x))
        return nn.Dense(10)(x.reshape(x.shape[0], -1))


RNG = np.random.default_rng(0)
X = jnp.asarray(RNG.standard_normal((64, 32)), jnp.float32)
Y = jnp.asarray(RNG.integers(0, 10, 64))
BATCHES = [(X[:32], Y[:32]), (X[32:], Y[32:])]
XC = jnp.asarray(RNG.standard_normal((16, 8, 8, 3)), jnp.float32)
YC = jnp.asarray(RNG.integers(0, 10, 16))


def _random_variables(net, x):
    """Variables of ``net`` drawn with NumPy (fan-in scaled kernels): no JAX random
    compilations, which dominate a small test's time on a busy CPU."""
    rng = np.random.default_rng(1)

    def draw(s):
        scale = 1 / np.sqrt(np.prod(s.shape[:-1])) if len(s.shape) > 1 else 0.1
        return jnp.asarray(rng.standard_normal(s.shape) * scale, s.dtype)

    return jax.tree_util.tree_map(draw, jax.eval_shape(net.init, jax.random.key(0), x))


def _setup(net, x):
    model = dmf.Model(net)
    model.trace(x)
    return model, _random_variables(net, x)


def mse_of(x):
    def evaluate(model, variables):
        return float(jnp.mean((model.apply(variables, x) - model.module.apply(variables, x)) ** 2))

    return evaluate


def xent(net):
    def loss(variables, batch):
        logits = net.apply(variables, batch[0])
        return optax.softmax_cross_entropy_with_integer_labels(logits, batch[1]).mean()

    return loss


def torch_cast(w, cand):
    """The kernel cast as PyTorch casts its weight: OI(HW) layout, the format's own axis."""
    perm = (1, 0) if w.ndim == 2 else (3, 2, 0, 1)
    back = np.argsort(perm)
    return np.asarray(cast(jnp.transpose(w, perm), cand)).transpose(back)


def hand_proxy(net, variables, batches, names, cands=CANDS):
    g2 = {n: 0.0 for n in names}
    grad = jax.jit(jax.grad(lambda p, batch: xent(net)({**variables, "params": p}, batch)))
    for batch in batches:
        g = grad(variables["params"], batch)
        for n in names:
            g2[n] = g2[n] + np.asarray(g[n]["kernel"], np.float64) ** 2
    out = np.zeros((len(names), len(cands)))
    for i, n in enumerate(names):
        w = np.asarray(variables["params"][n]["kernel"])
        for j, c in enumerate(cands):
            d = torch_cast(w, c).astype(np.float64) - w
            out[i, j] = (d * d * g2[n]).sum()
    return out


@pytest.fixture(scope="module")
def mlp():
    return _setup(MLP(), X)


@pytest.fixture(scope="module")
def mlp_table(mlp):
    model, variables = mlp
    return dmf.sensitivity(model, variables, mse_of(X), CANDS, batches=BATCHES, loss=xent(model.module))


def test_mlp_measured_scores_are_single_site_metric_changes(mlp, mlp_table):
    model, variables = mlp
    table = mlp_table
    assert [(s.module, s.slot) for s in table.sites] == [(f"layers_{i}", "weight_format") for i in range(3)]
    assert [s.elements for s in table.sites] == [32 * 64, 64 * 64, 64 * 10]
    assert table.baseline == 0.0
    evaluate = mse_of(X)
    for i, site in enumerate(table.sites):
        for j, cand in enumerate(CANDS):
            hand = dmf.Model(model.module).transform({site.module: {"weight_format": cand}})
            assert table.measured[i, j] == evaluate(hand, variables)
    assert np.all(table.measured[:, 0] > table.measured[:, 1])  # 4 bits cost more than 8


def test_mlp_proxy_equals_gradient_weighted_error_of_the_pytorch_layout_cast(mlp, mlp_table):
    model, variables = mlp
    expected = hand_proxy(model.module, variables, BATCHES, ["layers_0", "layers_1", "layers_2"])
    np.testing.assert_allclose(mlp_table.proxy, expected, rtol=1e-6)
    assert mlp_table.spearman() > 0.5


def test_conv_net_measured_and_proxy():
    model, variables = _setup(ConvNet(), XC)
    batches = [(XC, YC)]
    names = ["Conv_0", "Dense_0"]
    sites = [(n, "weight_format") for n in names] + [("Conv_0", "input_format")]
    table = dmf.sensitivity(model, variables, mse_of(XC), CANDS, sites, batches=batches, loss=xent(model.module))
    # the conv's input (NHWC) counts all but the batch axis per token
    assert [s.elements for s in table.sites] == [3 * 3 * 3 * 16, 8 * 8 * 16 * 10, 8 * 8 * 3]
    for i, n in enumerate(names):
        hand = dmf.Model(model.module).transform({n: {"weight_format": CANDS[0]}})
        assert table.measured[i, 0] == mse_of(XC)(hand, variables)
    np.testing.assert_allclose(table.proxy[:2], hand_proxy(model.module, variables, batches, names), rtol=1e-6)
    # the input cast blocks the NCHW axis -1 (W), as PyTorch's
    g = np.asarray(jax.grad(lambda x: xent(model.module)(variables, (x, YC)))(XC), np.float64)
    for j, c in enumerate(CANDS):
        q = np.asarray(cast(jnp.transpose(XC, (0, 3, 1, 2)), c)).transpose(0, 2, 3, 1)
        expected = ((g * (q.astype(np.float64) - np.asarray(XC, np.float64))) ** 2).sum()
        assert table.proxy[2, j] == pytest.approx(expected, rel=1e-5)


def test_input_site_proxy_elements_and_measured(mlp):
    model, variables = mlp
    sites = [("layers.1", "input_format"), ("layers_0", "weight_format")]  # PyTorch spelling accepted
    table = dmf.sensitivity(model, variables, mse_of(X), CANDS, sites, batches=BATCHES, loss=xent(model.module))
    assert [(s.module, s.slot, s.elements) for s in table.sites] == [
        ("layers_1", "input_format", 64), ("layers_0", "weight_format", 32 * 64)]
    hand = dmf.Model(model.module).transform({"layers_1": {"input_format": CANDS[1]}})
    assert table.measured[0, 1] == mse_of(X)(hand, variables)
    p = variables["params"]
    expected = np.zeros(len(CANDS))
    for x, y in BATCHES:
        h = jax.nn.relu(x @ p["layers_0"]["kernel"] + p["layers_0"]["bias"])

        def rest(h, y=y):
            z = jax.nn.relu(h @ p["layers_1"]["kernel"] + p["layers_1"]["bias"])
            logits = z @ p["layers_2"]["kernel"] + p["layers_2"]["bias"]
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

        g = np.asarray(jax.grad(rest)(h), np.float64)
        for j, c in enumerate(CANDS):
            d = np.asarray(cast(h, c), np.float64) - np.asarray(h, np.float64)
            expected[j] += ((g * d) ** 2).sum()
    np.testing.assert_allclose(table.proxy[0], expected, rtol=1e-5)


def test_search_meets_the_budget_and_its_config_applies_in_flax_and_pytorch(mlp, mlp_table):
    model, variables = mlp
    config, report = dmf.search(model, variables, mse_of(X), CANDS, 6.0, scores=mlp_table)
    assert report.bits <= 6.0
    assert set(config) == {"layers_0", "layers_1", "layers_2"}
    assert len(set(report.result.choices)) > 1  # mixed
    trial = dmf.Model(model.module).transform(config)
    assert report.metric == mse_of(X)(trial, variables)
    model.transform(config)  # the recorded model takes it too
    y_flax = np.asarray(model.apply(variables, X))
    model.transform({n: {"weight_format": "SAME"} for n in config})
    _, proxy_report = dmf.search(model, variables, None, CANDS, 6.0, scores=mlp_table, kind="proxy")
    assert proxy_report.bits <= 6.0 and proxy_report.metric is None

    import torch
    import torch_frontend as dmx

    class TorchMLP(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = torch.nn.ModuleList([torch.nn.Linear(32, 64), torch.nn.Linear(64, 64),
                                               torch.nn.Linear(64, 10)])

        def forward(self, x):
            for i, layer in enumerate(self.layers):
                x = layer(x)
                x = torch.relu(x) if i < 2 else x
            return x

    tnet = TorchMLP()
    with torch.no_grad():
        for i, layer in enumerate(tnet.layers):
            layer.weight.copy_(torch.from_numpy(np.asarray(variables["params"][f"layers_{i}"]["kernel"]).T.copy()))
            layer.bias.copy_(torch.from_numpy(np.array(variables["params"][f"layers_{i}"]["bias"])))
    tmodel = dmx.Model(tnet).transform({torch_alias(n): slots for n, slots in config.items()})
    with torch.no_grad():
        y_torch = tmodel(torch.from_numpy(np.array(X))).numpy()
    np.testing.assert_allclose(y_torch, y_flax, rtol=1e-4, atol=1e-5)


def test_names_recorded_from_the_first_batch_and_default_loss():
    net = MLP()
    variables = _random_variables(net, X)
    model = dmf.Model(net)  # never initialized nor traced through the wrapper

    class WithLoss(nn.Module):
        def setup(self):
            self.mlp = MLP()

        def __call__(self, x, y):
            return optax.softmax_cross_entropy_with_integer_labels(self.mlp(x), y).mean()

    table = dmf.sensitivity(model, variables, None, CANDS, measure=False, batches=BATCHES, loss=xent(net))
    assert [s.module for s in table.sites] == ["layers_0", "layers_1", "layers_2"]
    wrapped = dmf.Model(WithLoss())
    v2 = {"params": {"mlp": variables["params"]}}
    own = dmf.sensitivity(wrapped, v2, None, CANDS, measure=False, batches=BATCHES)  # the module's scalar output
    assert [s.module for s in own.sites] == ["mlp.layers_0", "mlp.layers_1", "mlp.layers_2"]
    np.testing.assert_allclose(own.proxy, table.proxy, rtol=1e-6)


def test_cache_resumes_without_evaluating(mlp, tmp_path):
    model, variables = mlp
    calls = []

    def evaluate(m, v):
        calls.append(1)
        return mse_of(X)(m, v)

    evaluate.cache_key = "mse-v1"
    first = dmf.sensitivity(model, variables, evaluate, CANDS, "layers_[01]", proxy=False, cache_dir=tmp_path)
    assert len(calls) == 1 + 2 * 2 and len(list(tmp_path.glob("sensitivity-*.json"))) == 1

    def broken(m, v):
        raise AssertionError("cached")

    broken.cache_key = "mse-v1"
    again = dmf.sensitivity(model, variables, broken, CANDS, "layers_[01]", proxy=False, cache_dir=tmp_path)
    np.testing.assert_array_equal(first.measured, again.measured)
    other = jax.tree_util.tree_map(lambda a: a * 2, variables)  # other variables: another cache file
    dmf.sensitivity(model, other, evaluate, CANDS[:1], "layers_0", proxy=False, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("sensitivity-*.json"))) == 2


def test_site_selection_and_errors(mlp):
    model, variables = mlp
    resolve = resolve_sites
    assert resolve(model, dmf.ConfigRule(module_types="Linear")) == [(f"layers_{i}", "weight_format")
                                                                     for i in range(3)]
    assert resolve(model, "layers_2$") == [("layers_2", "weight_format")]
    with pytest.raises(ValueError, match="no module 'nope'"):
        dmf.sensitivity(model, variables, mse_of(X), CANDS, [("nope", "weight_format")], proxy=False)
    with pytest.raises(ValueError, match="has no format slot 'approximation_function'"):
        resolve(model, [("layers_0", "approximation_function")])
    with pytest.raises(ValueError, match="selects no site"):
        resolve(model, "^conv")
    with pytest.raises(ValueError, match="pair"):
        resolve(model, ["layers_0"])
    with pytest.raises(TypeError, match="dmxnum.flax.Model"):
        dmf.sensitivity(model.module, variables, mse_of(X), CANDS)
    with pytest.raises(ValueError, match="no recorded names"):
        dmf.sensitivity(dmf.Model(MLP()), variables, mse_of(X), CANDS, proxy=False)
    with pytest.raises(ValueError, match="needs batches"):
        dmf.sensitivity(model, variables, None, CANDS, measure=False)
    with pytest.raises(ValueError, match="cheapest|budget"):
        dmf.search(model, variables, None, CANDS, 2.0, scores=dmf.sensitivity(
            model, variables, None, CANDS, "layers_2", measure=False, batches=BATCHES, loss=xent(model.module)))
