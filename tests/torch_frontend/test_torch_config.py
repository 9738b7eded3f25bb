"""Configuring a dmx.Model: files, rules, export/import, errors, randomness, QAT."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import dmxnum
import torch_frontend as dmx
from dmxnum.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
BFP16 = "BFP[8|8]{64,-1}(SN)"


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(16, 16)
        self.norm = nn.LayerNorm(16)

    def forward(self, x):
        return self.norm(F.gelu(self.proj(x)) + x)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.inp = nn.Linear(8, 16)
        self.blocks = nn.Sequential(Block(), Block())
        self.head = nn.Linear(16, 4)
        self.act = nn.ReLU()

    def forward(self, x):
        return self.head(self.act(self.blocks(self.inp(x))))


def make():
    torch.manual_seed(0)
    return Net(), torch.randn(5, 8)


def snapshot(model):
    return (model.dmx_config, copy.deepcopy(model._config), copy.deepcopy(model._op_config),
            list(model._param_jobs), dict(model._replace))


def test_module_names_and_slots():
    net, _ = make()
    names = dmx.Model(net).dmx_module_names()
    assert list(names) == ["inp", "blocks", "blocks.0", "blocks.0.proj", "blocks.0.norm", "blocks.1",
                           "blocks.1.proj", "blocks.1.norm", "head", "act"]
    assert names["blocks"] == ("instance", "input_format", "output_format")
    assert names["act"] == ("instance", "input_format", "output_format")
    assert names["blocks.0.norm"] == ("instance", "weight_format", "input_format",
                                      "approximation_function", "bias_format", "output_format")


def test_rules_by_type_and_regex():
    net, x = make()
    model = dmx.Model(net).transform(
        None,
        dmx.ConfigRule(module_types="Linear", config={"weight_format": BFP16, "input_format": BFP16}),
        dmx.ConfigRule(name_re=r"blocks\.\d+\.proj$", config={"input_format": "FP16"}),
        dmx.ConfigRule(module_types=["layer_norm"], config={"output_format": "BF16"}),
    )
    cfg = dmxnum.config.parse_config(model.dmx_config)
    assert list(cfg) == ["inp", "blocks.0.proj", "blocks.0.norm", "blocks.1.proj", "blocks.1.norm", "head"]
    assert cfg["blocks.1.proj"] == {"instance": "Linear", "weight_format": dmxnum.parse(BFP16),
                                    "input_format": dmxnum.parse("FP16")}
    assert cfg["head"]["input_format"] == dmxnum.parse(BFP16)
    assert cfg["blocks.0.norm"] == {"instance": "LayerNorm", "output_format": dmxnum.parse("BF16")}
    assert model(x).shape == (5, 4)


def test_transform_merges_onto_current_configuration():
    net, _ = make()
    model = dmx.Model(net).transform({"head": {"input_format": "FP16"}})
    model.transform({"head": {"output_format": "BF16"}, "inp": {"input_format": "BF16"}})
    cfg = dmxnum.config.parse_config(model.dmx_config)
    assert cfg["head"] == {"instance": "Linear", "input_format": dmxnum.parse("FP16"),
                           "output_format": dmxnum.parse("BF16")}


@pytest.mark.parametrize("name", ["bfp16_transformer", "mxfp4_weights_mxfp8_act", "sparse_2of4"])
def test_export_import_round_trip(name):
    net, x = make()
    model = dmx.Model(net).transform(ROOT / "configs" / f"{name}.yaml")
    text = model.dmx_config
    again = dmx.Model(copy.deepcopy(net)).transform(text)
    assert again.dmx_config == text
    assert dmxnum.config.parse_config(text) == {**model._config}
    with torch.no_grad():
        assert torch.equal(model(x), again(x))


def test_round_trip_with_functional_ops(aware):
    net, x = make()
    model = dmx.Model(net)
    model.trace(x)
    model.transform({"blocks.0.gelu_0": {"input_format": "FP16"},
                     "blocks.1.add_0": {"residual_format": "BF16"}})
    text = model.dmx_config
    assert "blocks.0.gelu_0:\n  instance: gelu\n  input_format:" in text
    other = dmx.Model(copy.deepcopy(net))
    other.trace(x)
    assert other.transform(text).dmx_config == text
    with torch.no_grad():
        assert torch.equal(model(x), other(x))
        assert not torch.equal(model(x), net(x))


def test_lenet_file_on_the_cnn(lenet):
    net, _ = lenet
    model = dmx.Model(net).transform(str(ROOT / "configs" / "lenet5.yaml"))
    assert set(dmxnum.config.parse_config(model.dmx_config)) == {
        "conv1", "relu1", "mp1", "conv2", "relu2", "mp2", "fc1", "fc2", "fc3"}


@pytest.mark.parametrize(
    "config, fragments",
    [
        ({"blocks.0.prj": {"input_format": "SAME"}}, ["'blocks.0.prj'", "'blocks.0.proj'"]),
        ({"head": {"input_fromat": "SAME"}}, ["'input_fromat'", "'input_format'"]),
        ({"act": {"weight_format": BFP16}}, ["'act'", "'weight_format'"]),
        ({"head": {"instance": "Conv2d"}}, ["Conv2d", "Linear"]),
        ({"head": {"weight_format": "BFP[8|8]{64,-1"}}, ["head", "weight_format", "BFP[8|8]{64,-1"]),
        ({"head": {"input_format": "BFP[8|8]{64,-1}(SS)"}}, ["stochastic", "key"]),
        ({"inp": {"input_format": "SAME"}, "bad": {"input_format": "SAME"}}, ["'bad'"]),
        ({"blocks.0.gelu_0": {"input_format": "SAME"}}, ["dmx.aware()"]),
    ],
)
def test_bad_input_leaves_model_unchanged(config, fragments):
    net, x = make()
    model = dmx.Model(net).transform({"head": {"input_format": "FP16"}})
    with torch.no_grad():
        before_out = model(x)
    before = snapshot(model)
    with pytest.raises(ConfigError) as info:
        model.transform(config)
    for fragment in fragments:
        assert fragment in str(info.value)
    assert snapshot(model)[:4] == before[:4]
    with torch.no_grad():
        assert torch.equal(model(x), before_out)


def test_bad_rule_leaves_model_unchanged():
    net, _ = make()
    model = dmx.Model(net).transform({"head": {"input_format": "FP16"}})
    before = snapshot(model)
    with pytest.raises(ConfigError, match="'act'.*weight_format"):
        model.transform({"inp": {"output_format": "BF16"}},
                        dmx.ConfigRule(name_re="head|act", config={"weight_format": BFP16}))
    assert snapshot(model)[:4] == before[:4]


def test_functional_names_need_recording(aware):
    net, x = make()
    model = dmx.Model(net)
    with pytest.raises(ConfigError, match=r"not been recorded yet.*model\.trace"):
        model.transform({"blocks.0.gelu_0": {"input_format": "FP16"}})
    model(x)  # the first call records
    model.transform({"blocks.0.gelu_0": {"input_format": "FP16"}})
    with pytest.raises(ConfigError, match="'blocks.0.gelu_1'.*'blocks.0.gelu_0'"):
        model.transform({"blocks.0.gelu_1": {"input_format": "FP16"}})


def test_aware_off_removes_functional_config(aware):
    net, x = make()
    model = dmx.Model(net)
    model.trace(x)
    model.transform({"blocks.0.gelu_0": {"input_format": "BFP[4|8]{16,-1}(SN)"}})
    with torch.no_grad():
        configured = model(x)
        dmx.aware(False)
        assert not dmx.is_aware()
        with pytest.warns(dmx.SlotNotAppliedWarning, match=r"blocks\.0\.gelu_0: input_format"):
            plain = model(x)  # the op's slot cannot run without the interception: told
        dmx.aware()
        dmx.aware()  # idempotent
        again = model(x)
    assert torch.equal(plain, net(x))
    assert not torch.equal(configured, plain)
    assert torch.equal(configured, again)
    with pytest.raises(RuntimeError, match=r"dmx\.aware\(\)"):
        dmx.aware(False)
        model.trace(x)


def test_stochastic_formats_take_the_models_key():
    net, x = make()
    cfg = {"head": {"input_format": "BFP[4|8]{16,-1}(SS)", "weight_format": "BFP[4|8]{16,-1}(SS)"}}
    a = dmx.Model(net, key=7).transform(cfg)
    b = dmx.Model(net, key=7).transform(cfg)
    g = torch.Generator().manual_seed(7)
    c = dmx.Model(net, key=g).transform(cfg)
    with torch.no_grad():
        a1, a2, b1, c1 = a(x), a(x), b(x), c(x)
    assert torch.equal(a1, b1) and torch.equal(a1, c1)  # same seed, same words
    assert not torch.equal(a1, a2)  # fresh words on every call


def test_eval_cache_follows_parameter_updates():
    net, x = make()
    model = dmx.Model(net).transform({"head": {"weight_format": BFP16}}).eval()
    with torch.no_grad():
        first = model(x)
        assert torch.equal(model(x), first)
        net.head.weight.mul_(2.0)
        second = model(x)
    assert not torch.equal(first, second)
    want = F.linear(net.act(net.blocks(net.inp(x))), dmxnum.cast(net.head.weight, dmxnum.parse(BFP16)),
                    net.head.bias)
    assert torch.equal(second, want.detach())


def test_qat_loss_decreases_with_bfp16():
    net, _ = make()
    torch.manual_seed(1)
    x = torch.randn(64, 8)
    target = torch.randn(64, 4)
    model = dmx.Model(net).transform(
        None, dmx.ConfigRule(module_types="linear", config={"weight_format": "BFP[8|8]{16,-1}(SN)",
                                                            "input_format": "BFP[8|8]{16,-1}(SN)"}))
    before = [p.detach().clone() for p in net.parameters()]
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    losses = []
    for _ in range(20):
        opt.zero_grad()
        loss = F.mse_loss(model(x), target)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0], losses
    # the float originals are what trains
    assert all(p.dtype == torch.float32 for p in net.parameters())
    assert any(not torch.equal(p, q) for p, q in zip(net.parameters(), before))
