"""Mixed-precision search on SmolLM2-135M, reduced to fit ``make test``:
proxy scores of the 210 decoder weights from two calibration windows, the
search at 5 bits per weight, and perplexity on two evaluation windows. The
full run (measured scores, 64 evaluation windows, budgets 5 and 7) is in
docs/search.md (``examples/search_llm.py``)."""

from __future__ import annotations

import statistics

import pytest

import dmxnum.search as ds
import torch_frontend as dmx
from examples import llm
from examples.search_llm import CANDIDATES, SITES
from examples.search_targets import ResumingPerplexity

pytestmark = pytest.mark.xdist_group("llm")


@pytest.fixture(scope="module")
def windows(smollm2):
    return llm.corpus("eval", 2, tokenizer=smollm2[1])


def test_resuming_perplexity_equals_the_whole_forward(smollm2, windows):
    net = smollm2[0]
    evaluate = ResumingPerplexity(net, windows[:1])
    late = dmx.Model(net).transform({"model.layers.27.mlp.down_proj": {"weight_format": "MXFP4_E2M1"}})
    assert evaluate._first_layer(late) == 27
    assert evaluate(late) == llm.perplexity(late, windows[:1])
    inputs = dmx.Model(net).transform({"model.layers.28.mlp.up_proj": {"input_format": "MXFP8_E4M3"}})
    assert evaluate._first_layer(inputs) is None  # not weight-only: the whole forward
    assert evaluate(inputs) == llm.perplexity(inputs, windows[:1])
    assert evaluate(dmx.Model(net)) == llm.perplexity(net, windows[:1])


def test_proxy_search_at_5_bits_beats_uniform_mxfp4_and_permuted_assignments(smollm2, windows):
    net = smollm2[0]
    ids = llm.corpus("calib", 2, tokenizer=smollm2[1])
    batches = [{"input_ids": ids[i:i + 1], "labels": ids[i:i + 1], "use_cache": False} for i in range(2)]
    table = dmx.sensitivity(dmx.Model(net), None, CANDIDATES, sites=SITES, measure=False, batches=batches,
                            progress=False)
    assert len(table.sites) == 210 and table.measured is None
    chosen = ds.search(table, 5.0, kind="proxy")
    assert 4.9 < chosen.bits <= 5.0

    def perplexity(result) -> float:
        return llm.perplexity(dmx.Model(net).transform(result.config), windows)

    searched = perplexity(chosen)
    assert searched < perplexity(ds.uniform(table, "MXFP4_E2M1"))
    permuted = [perplexity(r) for r in ds.random_permutations(chosen, table, 5, kind="proxy")]
    assert len(permuted) == 5 and searched < statistics.median(permuted)
