"""Post-training quantization in the PyTorch frontend: static-scale slots,
``dmx.calibrate``, ``dmx.smoothquant`` and ``dmx.gptq`` against hand-written
twins built from the core functions, state dicts, QAT on GPTQ weights and
the tiny Hugging Face Llama's repeated blocks."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import dmxnum
import dmxnum.ptq as core
import torch_frontend as dmx
from dmxnum.errors import ConfigError, NotCalibratedError, PTQWarning

INT8 = "XP[8,0](CSN)"
INT4 = "XP[4,0](CSN)"


def c(x, fmt, scale=None):
    return dmxnum.cast(x, fmt, scale=scale)


class MLP(nn.Module):
    def __init__(self, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.fc1 = nn.Linear(12, 24)
        self.fc2 = nn.Linear(24, 6)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))


class Block(nn.Module):
    """Two projections reading one tensor (a shared SmoothQuant group), then one more."""

    def __init__(self):
        super().__init__()
        self.gate = nn.Linear(16, 32)
        self.up = nn.Linear(16, 32)
        self.down = nn.Linear(32, 16)

    def forward(self, x):
        return x + self.down(F.silu(self.gate(x)) * self.up(x))


class Stack(nn.Module):
    def __init__(self, n: int = 3, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.embed = nn.Linear(8, 16)
        self.layers = nn.ModuleList([Block() for _ in range(n)])
        self.head = nn.Linear(16, 5)

    def forward(self, x):
        x = self.embed(x)
        for layer in self.layers:
            x = layer(x)
        return self.head(x)


def correlated(n: int, rows: int, dim: int, seed: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    mix = torch.randn(dim, dim, generator=g) / dim**0.5 + torch.eye(dim)
    outlier = torch.ones(dim)
    outlier[1] = 20.0  # one channel with large activations, as in LLMs
    return [(torch.randn(rows, dim, generator=g) @ mix) * outlier for _ in range(n)]


def w8a8(axis_w: str = "MINMAX{0}", act: str = "MINMAX") -> dict:
    return {"weight_format": INT8, "weight_scale": axis_w, "input_format": INT8, "input_scale": act}


# --- configuration ----------------------------------------------------------------------


def test_scale_slots_validate_against_their_format():
    model = dmx.Model(MLP())
    with pytest.raises(ConfigError, match="static scale .XP, FP or NVFP4.T.."):
        model.transform({"fc1": {"weight_format": "MXFP4_E2M1", "weight_scale": "MINMAX"}})
    with pytest.raises(ConfigError, match="input_format, which is not set"):
        model.transform({"fc1": {"input_scale": "MSE"}})
    with pytest.raises(ConfigError, match="PERCENTILE.p. needs a number"):
        model.transform({"fc1": {"weight_format": INT8, "weight_scale": "PERCENTILE(0)"}})
    assert model.dmx_config.strip() == "{}"  # nothing installed
    model.transform({"fc1": {"weight_format": "NVFP4(T)", "weight_scale": "MSE", "input_scale": "NONE"},
                     "fc2": {"input_format": "FP8_E4M3FN", "input_scale": "PERCENTILE(99.9){-1}"}})
    assert "PERCENTILE(99.9){-1}" in model.dmx_config
    assert dmx.Model(MLP()).transform(model.dmx_config).dmx_config == model.dmx_config


def test_forward_before_calibration_says_to_calibrate():
    model = dmx.Model(MLP()).transform({"fc1": w8a8()})
    with pytest.raises(NotCalibratedError, match=r"fc1: weight_scale = 'MINMAX\{0\}' has not been calibrated"):
        model(torch.randn(3, 12))
    model = dmx.Model(MLP()).transform({"fc2": {"input_format": INT8, "input_scale": "MSE"}})
    with pytest.raises(NotCalibratedError, match=r"dmx.calibrate\(model, batches\)"):
        model(torch.randn(3, 12))
    assert not nn.modules.module._global_forward_hooks  # the failed call left no hook behind
    assert not nn.modules.module._global_forward_pre_hooks


# --- calibration ------------------------------------------------------------------------


@pytest.mark.parametrize("act", ["MINMAX", "PERCENTILE(99)", "MSE", "MINMAX{-1}"])
def test_calibrated_mlp_equals_twin_with_observer_scales(act):
    net = MLP().eval()
    cfg = {"fc1": w8a8("MSE{0}", act), "fc2": w8a8("MINMAX", act)}
    model = dmx.Model(net).transform(cfg)
    xs = [torch.randn(5, 12) * 3 for _ in range(4)]
    assert dmx.calibrate(model, xs) is model
    spec = dmxnum.ptq.parse_scale_spec(act)

    # the twin: weight scales from the weights, input scales from the inputs
    # each layer receives in the calibrated model's own forward
    sw1 = core.observer("mse", INT8, 0).update(net.fc1.weight).scale()
    sw2 = core.observer("minmax", INT8).update(net.fc2.weight).scale()
    w1 = c(net.fc1.weight, INT8, torch.from_numpy(np.asarray(sw1)))
    w2 = c(net.fc2.weight, INT8, torch.from_numpy(np.asarray(sw2)))
    o1 = spec.observer(INT8)
    for x in xs:
        o1.update(x)
    s1 = torch.from_numpy(np.asarray(o1.scale()))
    o2 = spec.observer(INT8)
    for x in xs:  # fc2's input during calibration: fc1 fully cast (its scale is observed only at the end)
        o2.update(torch.relu(F.linear(x, w1, net.fc1.bias)))
    s2 = torch.from_numpy(np.asarray(o2.scale()))
    assert torch.equal(model.dmx_ptq.get("fc1", "input_scale"), s1)
    assert torch.equal(model.dmx_ptq.get("fc2", "input_scale"), s2)

    x = torch.randn(7, 12) * 3
    want = F.linear(c(torch.relu(F.linear(c(x, INT8, s1), w1, net.fc1.bias)), INT8, s2), w2, net.fc2.bias)
    with torch.no_grad():
        assert torch.equal(model(x), want)
    row = model.dmx_report()["fc1"]
    assert row.ptq == ("input_scale", "weight_scale") and "input_scale" in row.applied


def test_calibration_observes_uncast_inputs_of_every_static_site():
    """During calibration the static-scaled input casts pass values uncast,
    so a layer's observed input does not depend on an earlier layer's
    not-yet-known input scale."""
    net = MLP().eval()
    model = dmx.Model(net).transform({"fc1": {"input_format": INT8, "input_scale": "MINMAX"},
                                      "fc2": {"input_format": INT8, "input_scale": "MINMAX"}})
    xs = [torch.randn(4, 12)]
    dmx.calibrate(model, xs)
    with torch.no_grad():
        h = torch.relu(net.fc1(xs[0]))
    expect = core.scale_from_amax(h.abs().max().numpy(), INT8)
    assert model.dmx_ptq.get("fc2", "input_scale").item() == float(expect)


def test_scales_live_in_the_state_dict_and_load_into_a_fresh_wrapper():
    net = MLP().eval()
    cfg = {"fc1": w8a8(), "fc2": {"weight_format": "NVFP4(T)", "weight_scale": "MINMAX"}}
    model = dmx.Model(net).transform(cfg)
    dmx.calibrate(model, [torch.randn(6, 12)])
    state = model.state_dict()
    assert {k for k in state if k.startswith("dmx_ptq.")} == {
        "dmx_ptq.fc1.input_scale", "dmx_ptq.fc1.weight_scale", "dmx_ptq.fc2.weight_scale"}
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    fresh = dmx.Model(net).transform(cfg)
    fresh.load_state_dict(torch.load(buffer))
    x = torch.randn(3, 12)
    with torch.no_grad():
        assert torch.equal(fresh(x), model(x))
    import copy
    with torch.no_grad():
        assert torch.equal(copy.deepcopy(model)(x), model(x))


def test_changing_a_format_drops_its_calibrated_scale():
    model = dmx.Model(MLP()).transform({"fc1": w8a8(), "fc2": w8a8()})
    dmx.calibrate(model, [torch.randn(6, 12)])
    with pytest.warns(PTQWarning, match=r"fc1.weight_scale"):
        model.transform({"fc1": {"weight_format": "XP[6,0](CSN)"}})
    assert model.dmx_ptq.get("fc1", "weight_scale") is None
    assert model.dmx_ptq.get("fc1", "input_scale") is not None
    assert model.dmx_ptq.get("fc2", "weight_scale") is not None
    with warnings.catch_warnings():
        warnings.simplefilter("error", PTQWarning)
        model.transform({"fc2": {"output_format": "SAME"}})  # unrelated slot: nothing dropped


# --- SmoothQuant ------------------------------------------------------------------------


def test_smoothquant_groups_readers_of_one_tensor_and_equals_twin():
    net = Stack(n=1).eval()
    model = dmx.Model(net).transform(dmx.ConfigRule(module_types=["linear"], name_re=r"layers\.", config=w8a8()))
    xs = correlated(3, 20, 8, seed=1)
    dmx.smoothquant(model, xs, alpha=0.5)  # uncalibrated static casts pass values uncast: float statistics
    blk = net.layers[0]
    with torch.no_grad():
        h = [net.embed(x) for x in xs]
        a = torch.stack([t.abs().amax(0) for t in h]).amax(0)
        f = core.smoothquant_factors(a, [blk.gate.weight, blk.up.weight], 0.5)
        assert torch.equal(model.dmx_ptq.get("layers.0.gate", "smooth"), f)
        assert torch.equal(model.dmx_ptq.get("layers.0.up", "smooth"), f)
        inner = torch.stack([(F.silu(blk.gate(t)) * blk.up(t)).abs().amax(0) for t in h]).amax(0)
        fd = core.smoothquant_factors(inner, [blk.down.weight], 0.5)
        assert torch.equal(model.dmx_ptq.get("layers.0.down", "smooth"), fd)
    dmx.calibrate(model, xs)
    with torch.no_grad():
        def lin(name, t, ff):
            mod = net.get_submodule(name)
            s_in, s_w = model.dmx_ptq.get(name, "input_scale"), model.dmx_ptq.get(name, "weight_scale")
            assert s_w.shape == (mod.weight.shape[0], 1)
            return F.linear(c(t / ff, INT8, s_in), c(mod.weight * ff, INT8, s_w), mod.bias)

        x = xs[0]
        e = net.embed(x)
        mid = F.silu(lin("layers.0.gate", e, f)) * lin("layers.0.up", e, f)
        want = net.head(e + lin("layers.0.down", mid, fd))
        assert torch.equal(model(x), want)
    assert model.dmx_report()["layers.0.up"].ptq == ("smoothquant", "input_scale", "weight_scale")


def test_smoothquant_helps_per_tensor_int8_with_an_outlier_channel():
    net = Stack(n=2).eval()
    cfg = dmx.ConfigRule(module_types=["linear"], name_re=r"layers\.", config=w8a8())
    xs, held = correlated(4, 32, 8, seed=2), correlated(2, 32, 8, seed=3)
    plain = dmx.calibrate(dmx.Model(net).transform(cfg), xs)
    smooth = dmx.calibrate(dmx.smoothquant(dmx.Model(net).transform(cfg), xs, alpha=0.5), xs)
    with torch.no_grad():
        err = [sum((m(x) - net(x)).pow(2).sum().item() for x in held) for m in (plain, smooth)]
    assert err[1] < err[0]


def test_smoothquant_after_calibration_drops_the_scales_with_a_warning():
    model = dmx.Model(MLP()).transform({"fc1": w8a8()})
    dmx.calibrate(model, [torch.randn(4, 12)])
    with pytest.warns(PTQWarning, match="calibrate .and run GPTQ. again"):
        dmx.smoothquant(model, [torch.randn(4, 12)])
    with pytest.raises(NotCalibratedError):
        model(torch.randn(2, 12))
    with pytest.raises(ValueError, match="alpha"):
        dmx.smoothquant(model, [torch.randn(4, 12)], alpha=1.5)


# --- GPTQ -------------------------------------------------------------------------------


def hessian(rows_per_call):
    total, n = 0, 0
    for r in rows_per_call:
        r = r.float().reshape(-1, r.shape[-1])
        total = total + (r.T @ r).double()
        n += r.shape[0]
    return total * (2.0 / n)


@pytest.mark.parametrize("fmt", ["MXFP4_E2M1", "BFP[4|8]{8,-1}(SN)", "NVFP4"])
def test_gptq_single_layer_equals_core_gptq_on_the_cast_inputs(fmt):
    net = MLP().eval()
    model = dmx.Model(net).transform({"fc2": {"weight_format": fmt, "input_format": "BFP[8|8]{8,-1}(SN)"}})
    xs = [torch.randn(6, 12) for _ in range(3)]
    dmx.gptq(model, xs)
    with torch.no_grad():
        inputs = [c(torch.relu(net.fc1(x)), "BFP[8|8]{8,-1}(SN)") for x in xs]
    want = core.gptq(net.fc2.weight.detach(), hessian(inputs).numpy(), fmt)
    got = model.dmx_ptq.get("fc2", "weight")
    assert torch.equal(got.detach(), want.Wq)
    assert torch.equal(c(got.detach(), fmt), got.detach())  # on the grid: the weight cast keeps it
    assert model.dmx_ptq.get("fc1", "weight") is None  # not configured
    x = torch.randn(4, 12)
    with torch.no_grad():
        ref = F.linear(c(torch.relu(net.fc1(x)), "BFP[8|8]{8,-1}(SN)"), want.Wq, net.fc2.bias)
        assert torch.equal(model(x), ref)
    assert model.dmx_report()["fc2"].ptq[0].startswith("gptq (loss")


@pytest.mark.parametrize("fmt,scale", [("MXFP4_E2M1", None), (INT4, "MSE{0}"), ("NVFP4", None)])
def test_gptq_blocks_quantize_every_layer_on_its_grid_below_rtn_loss(fmt, scale):
    net = Stack(n=3).eval()
    slots = {"weight_format": fmt, **({"weight_scale": scale} if scale else {})}
    cfg = dmx.ConfigRule(module_types=["linear"], config=slots)
    xs = correlated(8, 32, 8, seed=4)
    q = dmx.gptq(dmx.Model(net).transform(cfg), xs)
    names = {n for n, k, _ in q.dmx_ptq.items() if k == "weight"}
    assert names == {"embed", "head"} | {f"layers.{i}.{p}" for i in range(3) for p in ("gate", "up", "down")}
    for name in names:
        w = q.dmx_ptq.get(name, "weight").detach()
        s = q.dmx_ptq.get(name, "weight_scale")
        assert torch.equal(c(w, fmt, s), w)
        info = q._ptq_info[name]  # each layer's loss tr((W - Q) H (W - Q)^T) on its own Hessian
        assert info["loss"] < info["loss_rtn"] and not info["fallback"]


def test_sequential_gptq_feeds_the_next_block_with_gptq_weights():
    net = Stack(n=2).eval()
    cfg = dmx.ConfigRule(module_types=["linear"], name_re=r"layers\.", config={"weight_format": "MXFP4_E2M1"})
    xs = correlated(4, 16, 8, seed=9)
    one = dmx.gptq(dmx.Model(net).transform(cfg), xs)
    seq = dmx.gptq(dmx.Model(net).transform(cfg), xs, sequential=True)
    same = lambda n: torch.equal(one.dmx_ptq.get(n, "weight"), seq.dmx_ptq.get(n, "weight"))
    assert all(same(f"layers.0.{p}") for p in ("gate", "up", "down"))  # block 0 sees the same inputs
    assert not all(same(f"layers.1.{p}") for p in ("gate", "up", "down"))  # block 1: GPTQ'd vs cast block 0
    # the sequential Hessians of block 1 are those of block 1's inputs after GPTQ's block 0
    with torch.no_grad():
        up_in = [seq.run_submodule("layers.0", net.embed(x)) for x in xs]  # block 0 with GPTQ's weights
    want = core.gptq(net.layers[1].up.weight.detach(), hessian(up_in).numpy(), "MXFP4_E2M1")
    assert torch.equal(seq.dmx_ptq.get("layers.1.up", "weight").detach(), want.Wq)


def test_gptq_weights_train_and_survive_state_dict_and_format_change():
    net = Stack(n=2).eval()
    cfg = dmx.ConfigRule(module_types=["linear"], name_re=r"layers\.", config={"weight_format": "MXFP4_E2M1"})
    model = dmx.gptq(dmx.Model(net).transform(cfg), correlated(3, 16, 8, seed=6))
    q = model.dmx_ptq.get("layers.0.down", "weight")
    assert any(p is q for p in model.parameters())
    model(torch.randn(4, 8)).sum().backward()
    assert q.grad is not None and q.grad.abs().sum() > 0  # straight through the cast to GPTQ's weight
    assert net.layers[0].down.weight.grad is None  # the float weight it replaces is not used
    fresh = dmx.Model(net).transform(cfg)
    fresh.load_state_dict(model.state_dict())
    x = torch.randn(3, 8)
    with torch.no_grad():
        assert torch.equal(fresh(x), model(x))
    with pytest.warns(PTQWarning, match="layers.0.down.weight"):
        fresh.transform(dmx.ConfigRule(module_types=["linear"], name_re=r"down", config={"weight_format": "NVFP4"}))
    assert fresh.dmx_ptq.get("layers.0.down", "weight") is None
    assert fresh.dmx_ptq.get("layers.0.up", "weight") is not None


def test_gptq_selection_and_errors():
    net = Stack(n=2).eval()
    cfg = dmx.ConfigRule(module_types=["linear"], config={"weight_format": "MXFP4_E2M1"})
    xs = correlated(2, 8, 8, seed=7)
    model = dmx.gptq(dmx.Model(net).transform(cfg), xs, modules=r"\.down$")
    assert sorted(n for n, k, _ in model.dmx_ptq.items()) == ["layers.0.down", "layers.1.down"]
    with pytest.raises(ValueError, match="eligible modules"):
        dmx.gptq(model, xs, modules=["layers.0.nope"])
    with pytest.raises(ValueError, match="selects no eligible module"):
        dmx.gptq(model, xs, modules="attention")
    sparse = dmx.Model(net).transform({"head": {"weight_format": INT4, "weight_sparseness": "TOPK{0.5}(U)"}})
    with pytest.raises(ValueError, match="weight_sparseness"):
        dmx.gptq(sparse, xs)
    with pytest.raises(TypeError, match="dmx.Model"):
        dmx.gptq(net, xs)
    with pytest.raises(ValueError, match="no calibration batches"):
        dmx.gptq(model, [])


def test_gptq_on_conv_layers():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, stride=2), nn.Flatten(),
                        nn.Linear(8 * 3 * 3, 4)).eval()
    cfg = dmx.ConfigRule(module_types=["conv", "linear"], config={"weight_format": "BFP[4|8]{8,1}(SN)"})
    base = torch.randn(1, 3, 8, 8)
    xs = [base + 0.3 * torch.randn(4, 3, 8, 8) for _ in range(4)]
    q = dmx.gptq(dmx.Model(net).transform(cfg), xs)
    w = q.dmx_ptq.get("2", "weight").detach()
    assert w.shape == (8, 8, 3, 3) and torch.equal(c(w, "BFP[4|8]{8,1}(SN)"), w)
    held = [base + 0.3 * torch.randn(4, 3, 8, 8) for _ in range(2)]
    rtn = dmx.Model(net).transform(cfg)
    with torch.no_grad():
        err = [sum((m(x) - net(x)).pow(2).sum().item() for x in held) for m in (rtn, q)]
    assert err[1] < err[0]


def test_gptq_on_the_tiny_llama_blocks_excludes_the_tied_head():
    from test_torch_llama_ops import IDS, logits, tiny_llama

    net = tiny_llama(tie=True)
    cfg = dmx.ConfigRule(module_types=["linear"], config={"weight_format": "MXFP4_E2M1"})
    calib = [{"input_ids": (IDS + k) % 96, "use_cache": False} for k in range(4)]
    model = dmx.gptq(dmx.Model(net).transform(cfg), calib)
    done = sorted(n for n, k, _ in model.dmx_ptq.items() if k == "weight")
    assert "lm_head" not in done and len(done) == 2 * 7
    assert model.dmx_report()["lm_head"].ptq == ()
    rtn = dmx.Model(net).transform(cfg)
    ref = logits(net)
    err = [(logits(m) - ref).pow(2).mean().item() for m in (rtn, model)]
    assert err[1] < err[0]


def test_calibrated_gptq_model_compiles_and_exports_to_the_same_bits():
    net = Stack(n=2).eval()
    cfg = dmx.ConfigRule(module_types=["linear"], name_re=r"layers\.",
                         config={**w8a8(), "weight_format": INT4, "weight_scale": "MSE{0}"})
    xs = correlated(3, 16, 8, seed=8)
    model = dmx.gptq(dmx.calibrate(dmx.smoothquant(dmx.Model(net).transform(cfg), xs), xs), xs)
    x = torch.randn(5, 8)
    with torch.no_grad():
        eager = model(x)
        compiled = torch.compile(model, backend="aot_eager", fullgraph=True)(x)
        program = model.export((x,))
    assert torch.equal(compiled, eager)
    assert torch.equal(program.module()(x), eager)
    casts = [n for n in program.graph.nodes if n.target is torch.ops.dmxnum.cast.default]
    assert any(n.args[2] is not None for n in casts)  # static scales enter the graph
