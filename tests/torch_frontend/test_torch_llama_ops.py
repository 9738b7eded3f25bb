"""Llama-family ops in the PyTorch frontend, on a tiny randomly initialised
Hugging Face Llama (same classes as SmolLM2, seconds to build): RMS-norm and
SiLU kinds and approximations, the gated MLP's ``mul``, grouped-query
attention's key/value casts, tied weights cast per use, and generate."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import dmxnum
import torch_frontend as dmx
from dmxnum.errors import ConfigError


def tiny_llama(tie: bool = True, seed: int = 0):
    """A 2-layer Llama with grouped-query attention (4 query heads, 2
    key/value heads), SDPA attention and (by default) a tied LM head."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=96, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=64,
        tie_word_embeddings=tie, attn_implementation="sdpa",
    )
    net = LlamaForCausalLM(cfg).eval()
    with torch.no_grad():  # RMS-norm weights away from 1, so that they matter;
        for name, p in net.named_parameters():  # hidden states of unit scale, as in trained models
            if "norm" in name:
                p.uniform_(0.5, 1.5)
        net.model.embed_tokens.weight.normal_(0.0, 1.0)
    return net


IDS = torch.arange(2 * 12).reshape(2, 12) % 96


def logits(model, ids=IDS, **kw):
    with torch.no_grad():
        return model(input_ids=ids, use_cache=False, **kw).logits


def test_llama_kinds_and_op_names(aware):
    net = tiny_llama()
    model = dmx.Model(net)
    model.trace(input_ids=IDS, use_cache=False)
    names = model.dmx_module_names()
    assert "approximation_function" in names["model.layers.0.input_layernorm"]
    assert "weight_format" in names["model.norm"]
    assert "approximation_function" in names["model.layers.0.mlp.act_fn"]
    assert names["model.layers.0.mlp.mul_0"] == ("instance", "input_format", "multiplier_format", "output_format")
    assert "model.layers.1.self_attn.scaled_dot_product_attention_0" in names
    assert "model.layers.0.mlp.act_fn.silu_0" not in names  # inside a covered module: not an op of its own
    info = {name: (cls, kind) for name, cls, kind in model._info.values()}
    assert info["model.layers.0.input_layernorm"] == ("RMSNorm", "rms_norm")
    assert info["model.layers.0.mlp.act_fn"] == ("SiLU", "silu")


def test_no_configuration_is_bitwise_native(aware):
    net = tiny_llama()
    model = dmx.Model(net)
    assert torch.equal(logits(model), logits(net))
    assert not model.training  # a wrapped eval model is an eval model


def test_rms_norm_approximation_equals_the_logic(aware):
    net = tiny_llama()
    spec = "RMSNORM(fallback,8,float16)"
    model = dmx.Model(net).transform({"model.layers.1.post_attention_layernorm": {"approximation_function": spec}})
    norm = net.model.layers[1].post_attention_layernorm
    seen = {}
    hooks = [
        norm.register_forward_pre_hook(lambda m, a: seen.update(x=a[0].detach())),
        net.model.layers[1].mlp.register_forward_pre_hook(lambda m, a: seen.update(h=a[0].detach())),
    ]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", dmx.SlotNotAppliedWarning)
            logits(model)
    finally:
        for h in hooks:
            h.remove()
    with torch.no_grad():
        expect = dmxnum.approximate(seen["x"], spec, normalized_shape=(64,), weight=norm.weight,
                                    eps=norm.variance_epsilon)
        native = norm(seen["x"])
    assert torch.isfinite(expect).all()
    assert not torch.equal(expect, native)
    assert torch.equal(seen["h"], expect)  # the MLP reads the approximated norm's output
    assert ("model.layers.1.post_attention_layernorm", "approximation_function") in model._applied


def test_rms_norm_approximation_on_torch_rmsnorm(aware):
    torch.manual_seed(1)
    net = nn.Sequential(nn.Linear(8, 16), nn.RMSNorm(16, eps=None)).eval()
    with torch.no_grad():
        net[1].weight.uniform_(0.5, 1.5)
    x = torch.randn(3, 8)
    model = dmx.Model(net).transform({"1": {"approximation_function": "RMSNORM(legacy,bfloat16)"}})
    with torch.no_grad():
        h = net[0](x)
        expect = dmxnum.approximate(h, "RMSNORM(legacy,bfloat16)", normalized_shape=(16,),
                                    weight=net[1].weight, eps=torch.finfo(torch.float32).eps)
        assert torch.equal(model(x), expect)


def test_silu_approximation_and_mul_slot(aware):
    net = tiny_llama()
    spec, fmt = "SILU(base2,float16)", "FP[1|4|3,7](FN)"
    model = dmx.Model(net).transform({
        "model.layers.0.mlp.act_fn": {"approximation_function": spec},
    })
    model.trace(input_ids=IDS, use_cache=False)
    model.transform({"model.layers.0.mlp.mul_0": {"multiplier_format": fmt, "output_format": fmt}})
    mlp = net.model.layers[0].mlp
    seen = {}
    hooks = [
        mlp.register_forward_pre_hook(lambda m, a: seen.update(x=a[0].detach())),
        mlp.down_proj.register_forward_pre_hook(lambda m, a: seen.update(down=a[0].detach())),
    ]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", dmx.SlotNotAppliedWarning)
            logits(model)
    finally:
        for h in hooks:
            h.remove()
    with torch.no_grad():
        gate = dmxnum.approximate(mlp.gate_proj(seen["x"]), spec)
        up = dmxnum.cast(mlp.up_proj(seen["x"]), fmt)
        expect = dmxnum.cast(gate * up, fmt)
    assert torch.equal(seen["down"], expect)


def test_mul_counts_only_tensor_products(aware):
    class Gated(nn.Module):
        def forward(self, a, b):
            return (a * 0.5) * b + torch.mul(a, b)

    model = dmx.Model(Gated())
    a, b = torch.randn(4), torch.randn(4)
    model.trace(a, b)
    ops = {n for n in model.dmx_module_names() if "mul" in n}
    assert ops == {"mul_0", "mul_1"}  # a * 0.5 is not an op of the model's numerics
    model.transform({"mul_1": {"input_format": "FP[1|2|1,1](FN)"}})
    assert torch.equal(model(a, b), (a * 0.5) * b + dmxnum.cast(a, "FP[1|2|1,1](FN)") * b)


@pytest.mark.parametrize("fmt", ["BFP[8|8]{16,-1}(SN)", "MXFP8[E4M3]{16,-1}", "FP[1|4|3,7](FN)"])
def test_gqa_key_value_cast_then_repeat_equals_repeat_then_cast(aware, fmt):
    """SDPA's multiplier_format casts key and value as passed: with
    enable_gqa (3 key/value heads) the decomposition repeats them after the
    cast, which equals casting the repeated heads (the blocks run along the
    head dimension, not across heads)."""

    class GQA(nn.Module):
        def __init__(self, repeat: bool):
            super().__init__()
            self.repeat = repeat

        def forward(self, q, k, v):
            if self.repeat:
                k, v = k.repeat_interleave(3, dim=1), v.repeat_interleave(3, dim=1)
                return F.scaled_dot_product_attention(q, k, v, is_causal=True)
            return F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)

    torch.manual_seed(2)
    q, k, v = torch.randn(2, 9, 5, 16), torch.randn(2, 3, 5, 16), torch.randn(2, 3, 5, 16)
    outs = []
    for repeat in (False, True):
        for approx in ("NONE", "SOFTMAX(base2,float16)"):
            model = dmx.Model(GQA(repeat))
            model.trace(q, k, v)
            model.transform({"scaled_dot_product_attention_0": {
                "multiplier_format": fmt, "approximation_function": approx}})
            outs.append(model(q, k, v))
    gqa_native, gqa_decomposed, rep_native, rep_decomposed = outs
    assert torch.equal(gqa_decomposed, rep_decomposed)
    torch.testing.assert_close(gqa_native, rep_native, rtol=1e-6, atol=1e-6)  # two native kernels
    kr = dmxnum.cast(k, fmt).repeat_interleave(3, dim=1)
    vr = dmxnum.cast(v, fmt).repeat_interleave(3, dim=1)
    assert torch.equal(kr, dmxnum.cast(k.repeat_interleave(3, dim=1), fmt))
    torch.testing.assert_close(gqa_native, F.scaled_dot_product_attention(q, kr, vr, is_causal=True))


def test_tied_head_weight_is_cast_per_use(aware):
    net = tiny_llama(tie=True)
    assert net.lm_head.weight is net.model.embed_tokens.weight
    fmt = "MXFP4[E2M1]{32,-1}"
    model = dmx.Model(net).transform({"lm_head": {"weight_format": fmt}})
    seen = {}
    hook = net.model.layers[0].register_forward_pre_hook(lambda m, a: seen.update(h=a[0].detach()))
    try:
        out = logits(model)
    finally:
        hook.remove()
    with torch.no_grad():
        assert torch.equal(seen["h"], net.model.embed_tokens(IDS))  # the embedding reads the float table
        hidden = net.model(input_ids=IDS, use_cache=False).last_hidden_state
        expect = F.linear(hidden, dmxnum.cast(net.lm_head.weight, fmt))
    assert torch.equal(out, expect)
    # and the other way round: an embedding format leaves the head's weight float
    model = dmx.Model(net).transform({"model.embed_tokens": {"weight_format": fmt}})
    with torch.no_grad():
        out = logits(model)
        table = dmxnum.cast(net.model.embed_tokens.weight, fmt)
        hidden = net.model(inputs_embeds=F.embedding(IDS, table), use_cache=False).last_hidden_state
    assert torch.equal(out, F.linear(hidden, net.lm_head.weight))


def test_generate_runs_every_step_through_the_wrapper(aware):
    net = tiny_llama()
    net.generation_config.eos_token_id = None  # a random model: never stop early
    prompt = torch.tensor([[5, 17, 33, 7]])
    attention = torch.ones_like(prompt)
    kw = dict(max_new_tokens=6, do_sample=False, pad_token_id=0)
    plain = net.generate(prompt, attention_mask=attention, **kw)
    assert torch.equal(dmx.Model(net).generate(prompt, attention_mask=attention, **kw), plain)
    assert "forward" not in net.__dict__  # the routing is removed afterwards
    model = dmx.Model(net).transform(None, dmx.ConfigRule(
        module_types=["linear"], config={"weight_format": "MXFP4[E2M1]{32,-1}", "input_format": "MXFP4[E2M1]{32,-1}"}))
    steps = model._forwards
    with warnings.catch_warnings():
        warnings.simplefilter("error", dmx.SlotNotAppliedWarning)
        out = model.generate(prompt, attention_mask=attention, **kw)
    assert model._forwards - steps == 6  # the prompt, then one forward per further token
    # the first new token is the configured model's greedy choice
    first = logits(model, prompt)[0, -1].argmax()
    assert out[0, 4] == first


def test_generate_needs_a_generation_model():
    model = dmx.Model(nn.Linear(2, 2))
    with pytest.raises(AttributeError, match="no generate method"):
        model.generate(torch.zeros(1, 2))


def test_rms_norm_approximation_rejects_other_families():
    net = tiny_llama()
    with pytest.raises(ConfigError, match="RMSNORM"):
        dmx.Model(net).transform({"model.norm": {"approximation_function": "LAYERNORM(legacy,_,float16)"}})


@pytest.mark.parametrize("config", ["llm_mxfp8", "llm_approx"])
def test_llama_compiles_as_one_graph_with_eager_bits(aware, config):
    """SmolLM2's classes (on the tiny Llama) under ``torch.compile(fullgraph=True)``
    with ``use_cache=False``: one graph, the same bits as the eager wrapper
    (``aot_eager``); docs/llm.md has the 30-layer SmolLM2 run."""
    from pathlib import Path

    net = tiny_llama()
    model = dmx.Model(net).transform(str(Path(__file__).resolve().parents[2] / "configs" / f"{config}.yaml"))
    eager = logits(model)
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    with warnings.catch_warnings():
        warnings.simplefilter("error", dmx.SlotNotAppliedWarning)
        assert torch.equal(logits(compiled), eager)
