"""Issue 12 on PyTorch: every configured slot runs, or the user is told.

Each test pins one case found where a configuration ran without error and
was not applied (or was applied wrongly) before this round.
"""

from __future__ import annotations

import copy
import io
import warnings
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import dmxnum
import torch_frontend as dmx
from dmxnum.config import ConfigRule

ROOT = Path(__file__).resolve().parents[2]
BFP16 = "BFP[8|8]{16,-1}(SN)"
FP16 = "FP[1|5|10,15](FN)"


def _strict():
    """A context in which a SlotNotAppliedWarning is an error."""
    ctx = warnings.catch_warnings()
    ctx.__enter__()
    warnings.simplefilter("error", dmx.SlotNotAppliedWarning)
    return ctx


@pytest.fixture
def encoder_layer():
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=True).eval()
    return layer, torch.randn(2, 5, 16)


# --- case 1: fused fast paths -------------------------------------------------------------

def test_encoder_layer_children_apply_in_eval_no_grad(encoder_layer):
    layer, x = encoder_layer
    cfg = {"linear1": {"input_format": BFP16}, "norm1": {"output_format": FP16}}
    m = dmx.Model(layer).transform(cfg)
    with warnings.catch_warnings():
        warnings.simplefilter("error", dmx.SlotNotAppliedWarning)
        with torch.no_grad():
            fused_eligible = m(x)
        slow = m(x).detach()  # grad enabled: PyTorch's unfused path
    assert torch.equal(fused_eligible, slow)
    with torch.no_grad():
        assert not torch.equal(fused_eligible, layer(x))
    assert set(m.dmx_report().missing) == set()


def test_encoder_layer_recording_forward_is_native(aware, encoder_layer):
    layer, x = encoder_layer
    with torch.no_grad():
        native = layer(x)
        m = dmx.Model(layer)
        first = m(x)  # records the functional ops
        second = m(x)
    assert m._recorded is not None
    assert torch.equal(first, native) and torch.equal(second, native)


def test_multihead_attention_sites(encoder_layer):
    _, x = encoder_layer
    torch.manual_seed(1)
    mha = nn.MultiheadAttention(16, 2, batch_first=True).eval()
    names = dmx.Model(mha).dmx_module_names()
    assert {"in_proj", "scaled_dot_product_attention_0", "out_proj"} <= set(names)
    assert "weight_format" in names["in_proj"]
    m = dmx.Model(mha).transform({
        "in_proj": {"weight_format": BFP16, "output_format": FP16},
        "out_proj": {"input_format": BFP16, "output_format": FP16},
    })
    with warnings.catch_warnings():
        warnings.simplefilter("error", dmx.SlotNotAppliedWarning)
        with torch.no_grad():
            out, _ = m(x, x, x, need_weights=False)
    B, T, E, H = 2, 5, 16, 2
    qkv = dmxnum.cast(F.linear(x, dmxnum.cast(mha.in_proj_weight, BFP16), mha.in_proj_bias), FP16)
    q, k, v = (t.reshape(B, T, H, E // H).transpose(1, 2) for t in qkv.chunk(3, -1))
    a = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(B, T, E)
    want = dmxnum.cast(F.linear(dmxnum.cast(a, BFP16), mha.out_proj.weight, mha.out_proj.bias), FP16)
    assert torch.equal(out, want)


def test_multihead_attention_softmax_approximation(encoder_layer):
    _, x = encoder_layer
    torch.manual_seed(2)
    mha = nn.MultiheadAttention(16, 2, batch_first=True).eval()
    m = dmx.Model(mha).transform(ROOT / "configs" / "approx_logics.yaml")
    assert "scaled_dot_product_attention_0" in m.dmx_config
    with torch.no_grad():
        for need_weights in (False, True):
            out, _ = m(x, x, x, need_weights=need_weights)
            assert not torch.equal(out, mha(x, x, x, need_weights=need_weights)[0])
            assert ("scaled_dot_product_attention_0", "approximation_function") in m._applied


def test_multihead_attention_unconfigured_sites_match_pytorch(encoder_layer):
    """A configured MultiheadAttention (module-level output only) computes,
    before the cast, what PyTorch's unfused path computes, with and without
    the attention weights."""
    _, x = encoder_layer
    torch.manual_seed(3)
    mha = nn.MultiheadAttention(16, 2, batch_first=True).train()  # unfused natively
    mask = torch.rand(5, 5) > 0.7
    m = dmx.Model(mha).transform({"out_proj": {"output_format": "FP[1|8|23,127](FN)"}})
    for need_weights in (False, True):
        got, gw = m(x, x, x, need_weights=need_weights, attn_mask=mask)
        want, ww = mha(x, x, x, need_weights=need_weights, attn_mask=mask)
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)
        if need_weights:
            torch.testing.assert_close(gw, ww, rtol=1e-6, atol=1e-6)


# --- case 2: copies ----------------------------------------------------------------------

def test_deepcopy_and_whole_model_checkpoint_keep_activation_casts(lenet):
    net, (_, _, xte, _) = lenet
    m = dmx.Model(net).transform(ROOT / "configs" / "lenet5.yaml")
    x = xte[:16]
    with torch.no_grad():
        want = m(x)
        assert not torch.equal(want, dmx.Model(net).transform(
            ROOT / "configs" / "lenet5.yaml",
            ConfigRule(config={"input_format": "SAME"}, module_types=("Conv2d", "Linear")),
        )(x))
        assert torch.equal(copy.deepcopy(m)(x), want)
        buf = io.BytesIO()
        torch.save(m, buf)
        buf.seek(0)
        loaded = torch.load(buf, weights_only=False)
        assert torch.equal(loaded(x), want)
        assert loaded.dmx_config == m.dmx_config


# --- case 4: functional ops before the first forward -------------------------------------

def test_rules_select_ops_recorded_in_the_first_forward(aware, minilm):
    net, batch = minilm
    direct = dmx.Model(net).transform(ROOT / "configs" / "approx_logics.yaml")
    with torch.no_grad():
        first = direct(**batch).last_hidden_state
    traced = dmx.Model(net)
    traced.trace(**batch)
    traced.transform(ROOT / "configs" / "approx_logics.yaml")
    with torch.no_grad():
        want = traced(**batch).last_hidden_state
    assert direct.dmx_config == traced.dmx_config
    assert direct.dmx_config.count("instance:") == traced.dmx_config.count("instance:") > 13
    assert torch.equal(first, want)


def test_explicit_functional_name_before_recording_raises(aware, encoder_layer):
    layer, _ = encoder_layer
    m = dmx.Model(nn.Sequential(nn.Linear(4, 4), nn.Softmax(-1)))
    with pytest.raises(dmx.ConfigError, match="not been recorded yet"):
        m.transform({"softmax_0": {"output_format": FP16}})


# --- case 5: rules that select nothing ------------------------------------------------------

def test_rule_type_typo_is_an_error():
    m = dmx.Model(nn.Sequential(nn.Linear(4, 4)))
    with pytest.raises(dmx.ConfigError, match=r"'Linaer'.*'Linear'"):
        m.transform(None, ConfigRule(module_types="Linaer", config={"weight_format": BFP16}))
    assert m.dmx_config.strip() == "{}"


def test_rule_as_only_argument_and_empty_selection_warns():
    net = nn.Sequential(nn.Linear(16, 16))
    m = dmx.Model(net).transform(ConfigRule(module_types="Linear", config={"weight_format": BFP16}))
    assert "BFP[8|8]{16,-1}(SN)" in m.dmx_config
    with pytest.warns(dmx.ConfigWarning, match="selects no module"):
        m.transform(None, ConfigRule(module_types="conv", config={"weight_format": BFP16}))


def test_file_rules_warn_only_when_the_file_configures_nothing():
    linear_only = dmx.Model(nn.Sequential(nn.Linear(32, 32)))
    with warnings.catch_warnings():
        warnings.simplefilter("error", dmx.ConfigWarning)
        linear_only.transform(ROOT / "configs" / "mxfp4_weights_mxfp8_act.yaml")  # conv rule: nothing
    nothing = dmx.Model(nn.Sequential(nn.ReLU()))
    with pytest.warns(dmx.ConfigWarning, match="select no module"):
        nothing.transform(ROOT / "configs" / "mxfp4_weights_mxfp8_act.yaml")


# --- case 6: errors at transform ---------------------------------------------------------

def test_block_axis_and_nm_group_checked_at_transform():
    m = dmx.Model(nn.Sequential(nn.Linear(30, 8)))
    with pytest.raises(dmx.ConfigError, match=r"0: weight_format .*block axis 2"):
        m.transform({"0": {"weight_format": "BFP[8|8]{16,2}(SN)"}})
    with pytest.raises(dmx.ConfigError, match=r"0: weight_sparseness .*M = 4 does not divide"):
        m.transform({"0": {"weight_sparseness": "BTOPK{2:4,-1}(U)"}})
    assert m.dmx_config.strip() == "{}"


def test_activation_error_names_module_and_slot():
    m = dmx.Model(nn.Sequential(nn.Linear(30, 8)))
    m.transform({"0": {"input_format": "BFP[8|8]{16,3}(SN)"}})
    with pytest.raises(dmx.ConfigError, match=r"0: input_format"):
        m(torch.randn(2, 30))
    # now the shape is known: the next transform fails up front
    with pytest.raises(dmx.ConfigError, match=r"0: input_format .*block axis 3"):
        m.transform({"0": {"input_format": "BFP[8|8]{16,3}(SN)"}})


# --- the audit ------------------------------------------------------------------------------

class _Branchy(nn.Module):
    def __init__(self):
        super().__init__()
        self.used = nn.Linear(8, 8)
        self.unused = nn.Linear(8, 8)
        self.emb = nn.Embedding(10, 8)

    def forward(self, x):
        return self.used(x)


def test_audit_warns_for_a_module_never_called_once():
    m = dmx.Model(_Branchy()).transform({
        "used": {"weight_format": BFP16},
        "unused": {"weight_format": BFP16, "output_format": FP16},
    })
    x = torch.randn(3, 8)
    with pytest.warns(dmx.SlotNotAppliedWarning) as record:
        m(x)
    texts = sorted(str(w.message) for w in record)
    assert len(texts) == 2 and all(t.startswith("unused: ") for t in texts)
    assert "weight_format" in texts[1] and "output_format" in texts[0]
    with warnings.catch_warnings():
        warnings.simplefilter("error", dmx.SlotNotAppliedWarning)
        m(x)  # once per slot until the configuration changes
    m.transform({"unused": {"bias_format": FP16}})
    with pytest.warns(dmx.SlotNotAppliedWarning):
        m(x)
    assert m.dmx_report()["unused"].missing == ("weight_format", "bias_format", "output_format")


def test_audit_input_of_integer_tensor_is_not_applied():
    class Takes(nn.Module):
        def forward(self, idx, x):
            return x * 2

    net = nn.Module()
    net.inner = Takes()
    net.forward = lambda idx, x: net.inner(idx, x)
    m = dmx.Model(net).transform({"inner": {"input_format": FP16}})
    with pytest.warns(dmx.SlotNotAppliedWarning, match="inner: input_format"):
        m(torch.arange(3), torch.randn(3))


def test_no_op_values_are_not_audited():
    m = dmx.Model(_Branchy()).transform({"unused": {"weight_format": "SAME", "weight_sparseness": "DENSE"}})
    with warnings.catch_warnings():
        warnings.simplefilter("error", dmx.SlotNotAppliedWarning)
        m(torch.randn(2, 8))


def test_fully_applied_configurations_warn_nothing(lenet, aware, minilm):
    net, (_, _, xte, _) = lenet
    for cfg in ("lenet5.yaml", "mltools_lenet5.yaml"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", dmx.ConfigWarning)
            m = dmx.Model(net).transform(ROOT / "configs" / cfg)
        with warnings.catch_warnings():
            warnings.simplefilter("error", dmx.SlotNotAppliedWarning)
            m(xte[:8])
    bert, batch = minilm
    m = dmx.Model(bert)
    m.trace(**batch)
    m.transform(ROOT / "configs" / "bfp16_transformer.yaml")
    with warnings.catch_warnings():
        warnings.simplefilter("error", dmx.SlotNotAppliedWarning)
        with torch.no_grad():
            m(**batch)


# --- dmx_report -------------------------------------------------------------------------------

def test_report_lenet(lenet):
    net, (_, _, xte, _) = lenet
    m = dmx.Model(net).transform(ROOT / "configs" / "lenet5.yaml")
    report = m.dmx_report(xte[:32], reference=True)
    assert [r.name for r in report if r.configured] == ["conv1", "conv2", "fc1", "fc2", "fc3"]
    assert report["relu1"].configured == () and report["mp1"].formats["output_format"] == "SAME"
    for row in (r for r in report if r.configured):
        assert row.configured == ("weight_format", "input_format") == row.applied
        assert row.bits == 8 + 8 / 64
        assert len(row.sqnr_db) == 1 and 20 < row.sqnr_db[0] < 80
    text = str(report)
    assert "conv1" in text and "2/2" in text and "10/10 slots applied" in text
    assert "dmx report" in repr(m)


def test_report_minilm_per_call_and_keyword_inputs(aware, minilm):
    net, batch = minilm
    m = dmx.Model(net)
    m.trace(**batch)
    m.transform(ROOT / "configs" / "bfp16_transformer.yaml")
    report = m.dmx_report(**batch, reference=True)
    assert len(report) > 30 and not report.missing
    assert all(r.sqnr_db and all(v > 10 for v in r.sqnr_db) for r in report if "query" in r.name)
    assert m.config is net.config  # attribute reads reach the network


def test_report_without_inputs_needs_them_for_reference():
    m = dmx.Model(nn.Linear(4, 4))
    assert str(m.dmx_report()) == "dmx report: nothing configured"
    with pytest.raises(ValueError, match="needs the model's inputs"):
        m.dmx_report(reference=True)


# --- mltools configuration files -------------------------------------------------------------

def test_mltools_file_transforms_lenet(lenet):
    net, (_, _, xte, _) = lenet
    with pytest.warns(dmx.ConfigWarning, match="state_dict_url") as record:
        m = dmx.Model(net).transform(ROOT / "configs" / "mltools_lenet5.yaml")
    assert len([w for w in record if "state_dict_url" in str(w.message)]) == 1
    explicit = {}
    for name in ("conv1", "conv2"):
        explicit[name] = {"weight_format": "BFP[8|8]{64,1}(SN)", "input_format": "BFP[8|8]{64,1}(SN)",
                          "output_format": FP16}
    for name in ("fc1", "fc2", "fc3"):
        explicit[name] = {"weight_format": "BFP[8|8]{64,-1}(SN)", "input_format": "BFP[8|8]{64,-1}(SN)",
                          "output_format": FP16}
    for name in ("mp1", "mp2"):
        explicit[name] = {"output_format": FP16}
    want = dmx.Model(net).transform(explicit)
    assert m.dmx_config.replace("  input_format: SAME\n", "") .count("FP[1|5|10,15](FN)") == 7
    with torch.no_grad():
        assert torch.equal(m(xte[:16]), want(xte[:16]))
    assert not dmx.Model(net).transform({"mp1": {"approximation_function": "NONE"}})._config.get("mp1", {}).get(
        "approximation_function")
    with pytest.raises(dmx.ConfigError, match="has no slot 'approximation_function'"):
        dmx.Model(net).transform({"mp1": {"approximation_function": "SOFTMAX(base2,float16)"}})


def test_attribute_reads_reach_the_network():
    net = nn.Linear(3, 2)
    m = dmx.Model(net)
    assert m.in_features == 3 and m.weight is net.weight
    with pytest.raises(AttributeError):
        m.no_such_attribute


# --- torch.compile ----------------------------------------------------------------------------

def test_compiled_wrapped_model_applies_and_audits(encoder_layer):
    """Under torch.compile the configured forward runs outside the compiled
    region: the same result as eager, and the audit still warns."""
    layer, x = encoder_layer

    class Holder(nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = layer
            self.unused = nn.Linear(16, 16)

        def forward(self, x):
            return self.layer(x)

    m = dmx.Model(Holder()).transform({
        "layer.linear1": {"input_format": BFP16},
        "layer.self_attn.in_proj": {"weight_format": BFP16},
        "unused": {"output_format": FP16},
    })
    with torch.no_grad():
        with pytest.warns(dmx.SlotNotAppliedWarning, match="unused: output_format"):
            eager = m(x)
        m.transform({})  # a configuration change re-arms the audit
        compiled = torch.compile(m, backend="aot_eager", fullgraph=True)
        with pytest.warns(dmx.SlotNotAppliedWarning, match="unused: output_format"):
            got = compiled(x)
    assert torch.equal(got, eager)
    assert ("layer.linear1", "input_format") in m._applied


def test_compiled_aware_unconfigured_is_native(aware, encoder_layer):
    layer, x = encoder_layer
    with torch.no_grad():
        native = layer(x)
        got = torch.compile(dmx.Model(layer))(x)
    assert torch.equal(got, native)


def test_wrapped_model_runs_on_meta():
    """Shape-only runs (``meta`` tensors) go through every configured slot."""
    from examples.digits_cnn import LeNet5

    net = LeNet5().to("meta")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dmx.ConfigWarning)
        m = dmx.Model(net).transform(ROOT / "configs" / "mltools_lenet5.yaml",
                                     ConfigRule(module_types="linear", config={"weight_format": "MXFP4_E2M1"}))
    with warnings.catch_warnings():
        warnings.simplefilter("error", dmx.SlotNotAppliedWarning)
        y = m(torch.empty(3, 1, 8, 8, device="meta"))
    assert y.device.type == "meta" and y.shape == (3, 10)


def test_report_sqnr_per_call_of_a_repeated_module():
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(16, 16)

        def forward(self, x):
            return self.fc(torch.tanh(self.fc(x)))

    torch.manual_seed(0)
    m = dmx.Model(Twice()).transform({"fc": {"weight_format": "BFP[4|8]{16,-1}(SN)"}})
    row = m.dmx_report(torch.randn(8, 16), reference=True)["fc"]
    assert len(row.sqnr_db) == 2 and row.applied == ("weight_format",)
    assert all(5 < v < 40 for v in row.sqnr_db)


def test_multihead_attention_with_separate_projections_is_configurable():
    """kdim/vdim != embed_dim: three projection weights, all reached by a
    ``linear`` rule through the ``in_proj`` site (none left FP32 silently)."""
    torch.manual_seed(4)
    mha = nn.MultiheadAttention(16, 2, kdim=8, vdim=12, batch_first=True).eval()
    q, k, v = torch.randn(2, 5, 16), torch.randn(2, 7, 8), torch.randn(2, 7, 12)
    m = dmx.Model(mha).transform(ConfigRule(module_types="linear", config={"weight_format": "BFP[8|8]{4,-1}(SN)"}))
    assert "in_proj" in m.dmx_config and "out_proj" in m.dmx_config
    with warnings.catch_warnings():
        warnings.simplefilter("error", dmx.SlotNotAppliedWarning)
        with torch.no_grad():
            out, _ = m(q, k, v, need_weights=False)
    fmt = "BFP[8|8]{4,-1}(SN)"
    bq, bk, bv = mha.in_proj_bias.chunk(3)
    heads = [
        F.linear(t, dmxnum.cast(w, fmt), b).reshape(2, -1, 2, 8).transpose(1, 2)
        for t, w, b in ((q, mha.q_proj_weight, bq), (k, mha.k_proj_weight, bk), (v, mha.v_proj_weight, bv))
    ]
    a = F.scaled_dot_product_attention(*heads).transpose(1, 2).reshape(2, 5, 16)
    want = F.linear(a, dmxnum.cast(mha.out_proj.weight, fmt), mha.out_proj.bias)
    # the same math in another memory layout (PyTorch projects (T, B, E)): last-bit differences
    torch.testing.assert_close(out, want, rtol=1e-6, atol=1e-6)
    native = mha(q, k, v, need_weights=False)[0]
    assert (out - native).abs().max() > 100 * (out - want).abs().max()
    with pytest.raises(dmx.ConfigError, match=r"in_proj: weight_sparseness .*M = 3 does not divide"):
        m.transform({"in_proj": {"weight_sparseness": "BTOPK{1:3,-1}(U)"}})


def test_transformer_encoder_with_padding_mask(aware):
    """TransformerEncoder's nested-tensor path (eval, no_grad, padding mask):
    native when nothing inside is configured (the recording forward too);
    with a configured layer every slot runs and real positions match the
    unfused computation."""
    torch.manual_seed(5)
    layer = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=True)
    enc = nn.TransformerEncoder(layer, 2, enable_nested_tensor=True).eval()
    x = torch.randn(2, 5, 16)
    pad = torch.tensor([[False] * 5, [False] * 3 + [True] * 2])
    with torch.no_grad():
        native = enc(x, src_key_padding_mask=pad)
        m = dmx.Model(enc)
        assert torch.equal(m(x, src_key_padding_mask=pad), native)  # recording forward
        assert torch.equal(m(x, src_key_padding_mask=pad), native)
        m.transform({"layers.0.linear2": {"input_format": BFP16}, "layers.1.linear2": {"input_format": BFP16}})
        with warnings.catch_warnings():
            warnings.simplefilter("error", dmx.SlotNotAppliedWarning)
            got = m(x, src_key_padding_mask=pad)
    want = m(x, src_key_padding_mask=pad).detach()  # grad enabled: unfused natively
    assert torch.equal(got, want)
    assert not torch.equal(got[~pad], native[~pad])
