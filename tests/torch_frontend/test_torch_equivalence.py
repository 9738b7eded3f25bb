"""With dmx.aware() on and no configuration, outputs and gradients are
bitwise those of the native model (MLP, CNN, MiniLM)."""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

import torch_frontend as dmx


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(16, 32)
        self.ln = nn.LayerNorm(32)
        self.fc2 = nn.Linear(32, 16)
        self.drop = nn.Dropout(0.0)

    def forward(self, x):
        h = F.gelu(self.ln(self.fc1(x)))
        h = torch.softmax(h, -1) @ torch.ones(32, 32) + h
        return F.silu(self.fc2(self.drop(h))) + x


def _grads(module):
    return {n: p.grad.clone() for n, p in module.named_parameters() if p.grad is not None}


def _check(net, make_inputs, reduce):
    """Native vs wrapped (aware, no config), on two deep copies."""
    native, wrapped_net = net, copy.deepcopy(net)
    model = dmx.Model(wrapped_net)
    for call in range(2):  # the first wrapped call records names, the second does not
        native.zero_grad()
        wrapped_net.zero_grad()
        a = native(**make_inputs())
        b = model(**make_inputs())
        ra, rb = reduce(a), reduce(b)
        assert torch.equal(ra.view(torch.int32), rb.view(torch.int32)), call
        ra.sum().backward()
        rb.sum().backward()
        ga, gb = _grads(native), _grads(wrapped_net)
        assert ga.keys() == gb.keys() and ga
        for k in ga:
            assert torch.equal(ga[k].view(torch.int32), gb[k].view(torch.int32)), k
    return model


def test_mlp(aware):
    torch.manual_seed(0)
    x = torch.randn(4, 16)
    model = _check(MLP(), lambda: {"x": x}, lambda y: y)
    assert "softmax_0" in model.dmx_module_names()  # ops of the root module's own forward


def test_cnn(aware, lenet):
    net, (xtr, ytr, _, _) = lenet
    net = copy.deepcopy(net)
    x, y = xtr[:32], ytr[:32]
    _check(net, lambda: {"x": x}, lambda out: F.cross_entropy(out, y).reshape(1))


def test_minilm(aware, minilm):
    net, batch = minilm
    net = copy.deepcopy(net)
    model = _check(net, lambda: dict(batch), lambda out: out.last_hidden_state)
    names = model.dmx_module_names()
    assert "encoder.layer.0.attention.self.scaled_dot_product_attention_0" in names
    assert "encoder.layer.5.intermediate.intermediate_act_fn.gelu_0" in names
    assert names["encoder.layer.0.attention.self.query"][:3] == (
        "instance", "weight_sparseness", "weight_format")


def test_wrapping_does_not_mutate(aware):
    torch.manual_seed(0)
    net = MLP()
    state = {k: v.clone() for k, v in net.state_dict().items()}
    model = dmx.Model(net).transform({"fc1": {"weight_format": "BFP[8|8]{16,-1}(SN)",
                                              "input_format": "FP16"}})
    model(torch.randn(2, 16)).sum().backward()
    for k, v in net.state_dict().items():
        assert torch.equal(v, state[k])
    for m in net.modules():
        assert not m._forward_hooks and not m._forward_pre_hooks
    assert not nn.modules.module._global_forward_hooks
    assert not nn.modules.module._global_forward_pre_hooks
    assert torch.nn.functional.softmax is F.softmax
