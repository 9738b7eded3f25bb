"""Module by module: the wrapped forward equals an explicit functional
computation with the core casts, bit for bit (outputs and gradients)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import dmxnum
import torch_frontend as dmx

IN = "BFP[8|8]{16,-1}(SN)"
IN1 = "BFP[8|8]{16,1}(SN)"  # channel blocks (NCHW)
W = "BFP[6|8]{8,-1}(SN)"
ACC = "BF16"
B = "FP8_E4M3"
OUT = "FP16"
SP = "BTOPK{2:4,-1}(U)"


def c(x, fmt):
    return dmxnum.cast(x, dmxnum.parse(fmt))


def sp(w, spec=SP):
    return dmxnum.sparsify(w, dmxnum.parse_sparseness(spec))


def bits_equal(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype and torch.equal(
        a.detach().view(torch.int32) if a.dtype == torch.float32 else a.detach(),
        b.detach().view(torch.int32) if b.dtype == torch.float32 else b.detach(),
    )


def run_both(module, config, expected_fn, *inputs):
    """Wrapped forward+backward vs the explicit computation on a copy."""
    torch.manual_seed(1)
    model = dmx.Model(module).transform({"m": config})
    xs = [x.clone().requires_grad_(x.is_floating_point()) for x in inputs]
    out = model(*xs)
    grads_out = torch.randn_like(out)
    out.backward(grads_out)
    got_grads = [p.grad.clone() for p in module.parameters()] + [x.grad for x in xs if x.is_floating_point()]
    module.zero_grad()
    ys = [x.clone().requires_grad_(x.is_floating_point()) for x in inputs]
    params = dict(module.named_parameters())
    want = expected_fn(params, *ys)
    want.backward(grads_out)
    want_grads = [p.grad.clone() for p in module.parameters()] + [y.grad for y in ys if y.is_floating_point()]
    assert bits_equal(out, want), (out - want).abs().max()
    assert len(got_grads) == len(want_grads)
    for g, h in zip(got_grads, want_grads):
        assert bits_equal(g, h)


class Holder(nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, *x):
        return self.m(*x)


def test_linear_all_slots():
    torch.manual_seed(0)
    net = Holder(nn.Linear(32, 8))
    cfg = {"instance": "Linear", "weight_sparseness": SP, "weight_format": W, "input_format": IN,
           "accum_format": ACC, "bias_format": B, "output_format": OUT}

    def expected(p, x):
        w = c(sp(p["m.weight"]), W)
        y = c(F.linear(c(x, IN), w), ACC) + c(p["m.bias"], B)
        return c(y, OUT)

    run_both(net, cfg, expected, torch.randn(3, 5, 32))


def test_linear_without_accum_keeps_fused_op():
    torch.manual_seed(0)
    net = Holder(nn.Linear(32, 8))
    cfg = {"weight_format": W, "input_format": IN, "bias_format": B, "accum_format": "SAME"}
    run_both(net, cfg, lambda p, x: F.linear(c(x, IN), c(p["m.weight"], W), c(p["m.bias"], B)),
             torch.randn(4, 32))


def test_linear_sparsity_pattern():
    torch.manual_seed(0)
    net = Holder(nn.Linear(16, 4))
    model = dmx.Model(net).transform({"m": {"weight_sparseness": SP}})
    w = model.effective_parameters()["m.weight"]
    assert ((w.reshape(4, 4, 4) != 0).sum(-1) <= 2).all()
    assert torch.equal(w, sp(net.m.weight))


@pytest.mark.parametrize("kind", ["conv1d", "conv2d", "conv_transpose2d"])
def test_convolutions(kind):
    torch.manual_seed(0)
    if kind == "conv1d":
        mod, x, fn = nn.Conv1d(4, 6, 3, padding=1), torch.randn(2, 4, 10), F.conv1d
        extra = dict(padding=1)
    elif kind == "conv2d":
        mod, x, fn = nn.Conv2d(4, 6, 3, stride=2, padding=1), torch.randn(2, 4, 9, 9), F.conv2d
        extra = dict(stride=2, padding=1)
    else:
        mod, x, fn = nn.ConvTranspose2d(4, 6, 3, stride=2), torch.randn(2, 4, 5, 5), F.conv_transpose2d
        extra = dict(stride=2)
    cfg = {"weight_format": "BFP[6|8]{8,1}(SN)", "input_format": IN1, "accum_format": ACC,
           "bias_format": B, "output_format": OUT}

    def expected(p, x):
        w = c(p["m.weight"], "BFP[6|8]{8,1}(SN)")
        y = c(fn(c(x, IN1), w, None, **extra), ACC)
        shape = [1, -1] + [1] * (y.ndim - 2)
        return c(y + c(p["m.bias"], B).reshape(shape), OUT)

    run_both(Holder(mod), cfg, expected, x)


def test_embedding():
    torch.manual_seed(0)
    net = Holder(nn.Embedding(10, 16))
    idx = torch.tensor([[1, 2, 3], [9, 0, 2]])
    cfg = {"weight_sparseness": SP, "weight_format": W, "output_format": OUT}
    model = dmx.Model(net).transform({"m": cfg})
    want = c(F.embedding(idx, c(sp(net.m.weight), W)), OUT)
    assert bits_equal(model(idx), want)


NORMS = {
    "LayerNorm": (lambda: nn.LayerNorm(16), lambda p, x, m: F.layer_norm(
        x, (16,), c(p["m.weight"], W), c(p["m.bias"], B), m.eps)),
    "GroupNorm": (lambda: nn.GroupNorm(2, 16), lambda p, x, m: F.group_norm(
        x, 2, c(p["m.weight"], W), c(p["m.bias"], B), m.eps)),
    "RMSNorm": (lambda: nn.RMSNorm(16), lambda p, x, m: F.rms_norm(
        x, (16,), c(p["m.weight"], W), m.eps)),
}


@pytest.mark.parametrize("name", list(NORMS))
def test_norms(name):
    make, fn = NORMS[name]
    torch.manual_seed(0)
    mod = make()
    with torch.no_grad():
        mod.weight.uniform_(0.5, 1.5)
        if getattr(mod, "bias", None) is not None:
            mod.bias.uniform_(-0.5, 0.5)
    x = torch.randn(3, 16, 16) if name == "GroupNorm" else torch.randn(3, 5, 16)
    cfg = {"instance": name, "weight_format": W, "input_format": IN, "output_format": OUT}
    if name != "RMSNorm":
        cfg["bias_format"] = B
    run_both(Holder(mod), cfg, lambda p, x: c(fn(p, c(x, IN), mod), OUT), x)


def test_batchnorm_eval():
    torch.manual_seed(0)
    mod = nn.BatchNorm2d(4)
    with torch.no_grad():
        mod.running_mean.uniform_(-1, 1)
        mod.running_var.uniform_(0.5, 2)
        mod.weight.uniform_(0.5, 1.5)
        mod.bias.uniform_(-1, 1)
    mod.eval()
    cfg = {"weight_format": W, "bias_format": B, "input_format": IN, "output_format": OUT}

    def expected(p, x):
        return c(F.batch_norm(c(x, IN), mod.running_mean, mod.running_var, c(p["m.weight"], W),
                              c(p["m.bias"], B), False, 0.1, mod.eps), OUT)

    run_both(Holder(mod), cfg, expected, torch.randn(2, 4, 5, 16))


ELEMENTWISE = [
    (nn.Softmax(dim=-1), lambda x: F.softmax(x, -1)),
    (nn.GELU(), F.gelu),
    (nn.SiLU(), F.silu),
    (nn.ReLU(), F.relu),
    (nn.Tanh(), torch.tanh),
    (nn.MaxPool2d(2), lambda x: F.max_pool2d(x, 2)),
    (nn.AvgPool2d(2), lambda x: F.avg_pool2d(x, 2)),
    (nn.AdaptiveAvgPool2d(3), lambda x: F.adaptive_avg_pool2d(x, 3)),
    (nn.Dropout(0.5).eval(), lambda x: x),
]


@pytest.mark.parametrize("mod, fn", ELEMENTWISE, ids=lambda v: type(v).__name__)
def test_elementwise_and_pools(mod, fn):
    torch.manual_seed(0)
    cfg = {"instance": type(mod).__name__, "input_format": IN, "output_format": OUT}
    run_both(Holder(mod), cfg, lambda p, x: c(fn(c(x, IN)), OUT), torch.randn(2, 3, 8, 16))


def test_hf_conv1d_weight_in_pytorch_layout():
    from transformers.pytorch_utils import Conv1D

    torch.manual_seed(0)
    mod = Conv1D(8, 32)  # nf=8 outputs, nx=32 inputs, weight (32, 8)
    with torch.no_grad():
        mod.bias.uniform_(-1, 1)
    cfg = {"instance": "Conv1D", "weight_sparseness": SP, "weight_format": W, "input_format": IN,
           "accum_format": ACC, "bias_format": B, "output_format": OUT}

    def expected(p, x):
        w = c(sp(p["m.weight"].t()), W).t()  # blocks along the input features
        y = c(torch.mm(c(x, IN).reshape(-1, 32), w), ACC) + c(p["m.bias"], B)
        return c(y.reshape(3, 4, 8), OUT)

    run_both(Holder(mod), cfg, expected, torch.randn(3, 4, 32))
    model = dmx.Model(Holder(mod))
    assert model.dmx_module_names()["m"] == (
        "instance", "weight_sparseness", "weight_format", "weight_scale", "input_format", "input_scale", "accum_format",
        "bias_format", "output_format",
    )


# --- functional ops ----------------------------------------------------------------------


class Ops(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln_w = nn.Parameter(torch.rand(16) + 0.5)
        self.ln_b = nn.Parameter(torch.rand(16) - 0.5)

    def forward(self, x, y):
        a = F.softmax(x, dim=-1)
        b = F.gelu(x)
        s = F.silu(y)
        n = F.layer_norm(x, (16,), self.ln_w, self.ln_b)
        m = torch.matmul(a, y.transpose(-1, -2))
        k = torch.bmm(b, s.transpose(-1, -2))
        r = m + k
        r2 = torch.softmax(r, -1) @ n
        return r2 + n


def test_functional_ops_recorded_and_applied(aware):
    torch.manual_seed(0)
    net = Holder(Ops())
    x, y = torch.randn(2, 6, 16), torch.randn(2, 6, 16)
    model = dmx.Model(net)
    names = model.trace(x, y)
    ops = [n for n in names if n.startswith("m.")]
    assert ops == ["m.softmax_0", "m.gelu_0", "m.silu_0", "m.layer_norm_0", "m.matmul_0",
                   "m.bmm_0", "m.add_0", "m.softmax_1", "m.matmul_1", "m.add_1"]
    assert names["m.matmul_0"] == ("instance", "input_format", "multiplier_format", "output_format")
    assert names["m.add_0"] == ("instance", "input_format", "residual_format", "output_format")
    F16 = "FP16"
    model.transform({
        "m.softmax_0": {"input_format": IN, "output_format": F16},
        "m.gelu_0": {"input_format": IN},
        "m.silu_0": {"output_format": F16},
        "m.layer_norm_0": {"input_format": IN, "weight_format": W, "bias_format": B},
        "m.matmul_0": {"input_format": IN, "multiplier_format": W, "output_format": F16},
        "m.bmm_0": {"multiplier_format": IN},
        "m.add_0": {"input_format": F16, "residual_format": B, "output_format": ACC},
        "m.matmul_1": {"input_format": "BF16"},
        "m.add_1": {"residual_format": "FP8_E5M2"},
    })
    p = net.m
    a = c(F.softmax(c(x, IN), -1), F16)
    b = F.gelu(c(x, IN))
    s = c(F.silu(y), F16)
    n = F.layer_norm(c(x, IN), (16,), c(p.ln_w, W), c(p.ln_b, B))
    m = c(torch.matmul(c(a, IN), c(y.transpose(-1, -2), W)), F16)
    k = torch.bmm(b, c(s.transpose(-1, -2), IN))
    r = c(c(m, F16) + c(k, B), ACC)
    r2 = torch.matmul(c(torch.softmax(r, -1), "BF16"), n)
    want = r2 + c(n, "FP8_E5M2")
    assert bits_equal(model(x, y), want)


class Attn(nn.Module):
    def forward(self, q, k, v, mask):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


@pytest.mark.parametrize("accum", ["SAME", ACC])
def test_attention(aware, accum):
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 3, 5, 16) for _ in range(3))
    mask = torch.randn(2, 1, 5, 5)
    model = dmx.Model(Holder(Attn()))
    assert "m.scaled_dot_product_attention_0" in model.trace(q, k, v, mask)
    model.transform({"m.scaled_dot_product_attention_0": {
        "input_format": IN, "multiplier_format": W, "accum_format": accum, "output_format": OUT}})
    qc, kc, vc = c(q, IN), c(k, W), c(v, W)
    if accum == "SAME":
        want = F.scaled_dot_product_attention(qc, kc, vc, attn_mask=mask)
    else:
        scores = c(qc @ kc.transpose(-2, -1), ACC) * (1.0 / 4.0) + mask
        want = c(torch.softmax(scores, -1) @ vc, ACC)
    assert bits_equal(model(q, k, v, mask), c(want, OUT))


# --- approximation functions ---------------------------------------------------------------

SMX = "SOFTMAX(base2,float16)"
GELU = "GELU(poly2,float16)"
LN = "LAYERNORM(quake3,_,float16)"


def ap(x, spec, **args):
    return dmxnum.approximate(x, dmxnum.parse_logic(spec), **args)


@pytest.mark.parametrize("which", ["softmax", "gelu", "layer_norm"])
def test_module_approximations(which):
    torch.manual_seed(0)
    x = torch.randn(2, 5, 16)
    if which == "softmax":
        mod, cfg = nn.Softmax(dim=1), {"approximation_function": SMX}
        fn = lambda p, x: c(ap(c(x, IN), SMX, axis=1), OUT)  # noqa: E731
    elif which == "gelu":
        mod, cfg = nn.GELU(), {"approximation_function": GELU}
        fn = lambda p, x: c(ap(c(x, IN), GELU), OUT)  # noqa: E731
    else:
        mod = nn.LayerNorm(16)
        with torch.no_grad():
            mod.weight.uniform_(0.5, 1.5)
            mod.bias.uniform_(-0.5, 0.5)
        cfg = {"approximation_function": LN, "weight_format": W, "bias_format": B}
        fn = lambda p, x: c(ap(c(x, IN), LN, normalized_shape=(16,),  # noqa: E731
                               weight=c(p["m.weight"], W), bias=c(p["m.bias"], B)), OUT)
    cfg.update(input_format=IN, output_format=OUT)
    run_both(Holder(mod), cfg, fn, x)


class ApproxOps(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.rand(16) + 0.5)

    def forward(self, x, q, k, v):
        a = F.softmax(x, dim=-1) + F.gelu(x)
        n = F.layer_norm(a, (16,), self.w)
        return n, F.scaled_dot_product_attention(q, k, v, is_causal=True)


def test_functional_approximations(aware):
    torch.manual_seed(0)
    x = torch.randn(3, 16)
    q, k, v = (torch.randn(1, 2, 6, 16) for _ in range(3))
    net = Holder(ApproxOps())
    model = dmx.Model(net)
    model.trace(x, q, k, v)
    model.transform(None, dmx.ConfigRule(module_types=["softmax", "attention"],
                                         config={"approximation_function": SMX}),
                    dmx.ConfigRule(module_types="gelu", config={"approximation_function": GELU}),
                    dmx.ConfigRule(module_types="layer_norm", config={"approximation_function": LN}))
    n, att = model(x, q, k, v)
    a = ap(x, SMX, axis=-1) + ap(x, GELU)
    assert bits_equal(n, ap(a, LN, normalized_shape=(16,), weight=net.m.w, bias=None))
    scores = (q @ k.transpose(-2, -1)) * 0.25
    scores = scores.masked_fill(~torch.ones(6, 6, dtype=torch.bool).tril(), float("-inf"))
    assert bits_equal(att, ap(scores, SMX, axis=-1) @ v)


class Shared(nn.Module):
    def __init__(self):
        super().__init__()
        self.q = nn.Linear(16, 16)
        self.k = nn.Linear(16, 16)

    def forward(self, x):
        return self.q(x) * self.k(x)


def test_one_input_read_by_two_modules():
    """Both projections see the same cast input (shared within a forward)."""
    torch.manual_seed(0)
    net = Shared()
    model = dmx.Model(net).transform(None, dmx.ConfigRule(module_types="Linear", config={"input_format": IN}))
    x = torch.randn(4, 16, requires_grad=True)
    out = model(x)
    out.sum().backward()
    got = (out, x.grad.clone(), net.q.weight.grad.clone())
    net.zero_grad()
    y = x.detach().clone().requires_grad_()
    want = net.q(c(y, IN)) * net.k(c(y, IN))
    want.sum().backward()
    assert bits_equal(got[0], want) and bits_equal(got[1], y.grad) and bits_equal(got[2], net.q.weight.grad)
