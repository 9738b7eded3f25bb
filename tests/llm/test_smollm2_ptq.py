"""PTQ on SmolLM2-135M, reduced to fit ``make test``: GPTQ and SmoothQuant on
the first two decoder layers with two calibration windows, perplexity on
evaluation window 0. The full table (every decoder layer, 32-128
calibration windows, 64 evaluation windows) is in docs/ptq.md."""

from __future__ import annotations

import warnings

import pytest
import torch

import dmxnum
import torch_frontend as dmx
from examples import llm
from examples.ptq_llm import batches

pytestmark = pytest.mark.xdist_group("llm")

FIRST_TWO = r"model\.layers\.[01]\."


def rule(**slots) -> dmx.ConfigRule:
    return dmx.ConfigRule(module_types=["linear"], name_re=FIRST_TWO, config=slots)


@pytest.fixture(scope="module")
def calib(smollm2):
    return batches(llm.corpus("calib", 2, tokenizer=smollm2[1]), size=1)


def test_gptq_on_two_decoder_layers_beats_round_to_nearest(smollm2, eval_windows, calib):
    net = smollm2[0]
    cfg = rule(weight_format="MXFP4_E2M1")
    rtn = dmx.Model(net).transform(cfg)
    q = dmx.gptq(dmx.Model(net).transform(cfg), calib, progress=False)
    stored = sorted(n for n, k, _ in q.dmx_ptq.items() if k == "weight")
    assert len(stored) == 14 and all(n.startswith(("model.layers.0.", "model.layers.1.")) for n in stored)
    for name in stored:
        w = q.dmx_ptq.get(name, "weight").detach()
        assert torch.equal(dmxnum.cast(w, "MXFP4_E2M1"), w)
        assert q._ptq_info[name]["loss"] < q._ptq_info[name]["loss_rtn"]
    assert llm.perplexity(q, eval_windows) < llm.perplexity(rtn, eval_windows)


def test_smoothquant_groups_the_llama_projections(smollm2, calib):
    net = smollm2[0]
    w8a8 = rule(weight_format="XP[8,0](CSN)", weight_scale="MINMAX{0}",
                input_format="XP[8,0](CSN)", input_scale="MINMAX")
    model = dmx.Model(net).transform(w8a8)
    with pytest.raises(dmx.NotCalibratedError, match="dmx.calibrate"):
        llm.perplexity(model, llm.corpus("eval", 1, tokenizer=smollm2[1])[:, :16])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dmx.PTQWarning)
        dmx.calibrate(dmx.smoothquant(model, calib, alpha=0.5, progress=False), calib, progress=False)
    f = {p: model.dmx_ptq.get(f"model.layers.0.{p}", "smooth") for p in
         ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
          "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")}
    assert torch.equal(f["self_attn.q_proj"], f["self_attn.k_proj"]) and torch.equal(f["self_attn.q_proj"], f["self_attn.v_proj"])
    assert torch.equal(f["mlp.gate_proj"], f["mlp.up_proj"])
    assert not torch.equal(f["self_attn.q_proj"], f["mlp.gate_proj"])
    assert f["mlp.down_proj"].shape == (1536,)
    s = model.dmx_ptq.get("model.layers.1.mlp.down_proj", "input_scale")
    assert s.ndim == 0 and s > 0
