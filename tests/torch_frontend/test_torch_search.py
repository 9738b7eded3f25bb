"""Sensitivity and mixed-precision search on PyTorch models: measured and
proxy scores against hand computations, the search's configuration applied,
the on-disk cache, and the command line end to end on the digits CNN."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import dmxnum
import torch_frontend as dmx
from dmxnum.search import ScoreTable

CANDS = ["MXFP4_E2M1", "MXFP6_E2M3", "BFP16_64_LD"]


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.fc1 = nn.Linear(32, 64)
        self.fc2 = nn.Linear(64, 64)
        self.fc3 = nn.Linear(64, 10)

    def forward(self, x):
        return self.fc3(torch.relu(self.fc2(torch.relu(self.fc1(x)))))


X = torch.randn(128, 32, generator=torch.Generator().manual_seed(1))
Y = torch.randint(0, 10, (128,), generator=torch.Generator().manual_seed(2))
BATCHES = [(X[:64], Y[:64]), (X[64:], Y[64:])]


def mse(model) -> float:
    with torch.no_grad():
        return float(F.mse_loss(model(X), MLP()(X)))


def loss(model, batch):
    return F.cross_entropy(model(batch[0]), batch[1])


def test_measured_scores_are_single_site_metric_changes():
    model = dmx.Model(MLP())
    table = dmx.sensitivity(model, mse, CANDS, proxy=False)
    assert [s.module for s in table.sites] == ["fc1", "fc2", "fc3"]
    assert [s.elements for s in table.sites] == [64 * 32, 64 * 64, 10 * 64]
    assert table.baseline == 0.0
    for i, site in enumerate(table.sites):
        for j, cand in enumerate(CANDS):
            m = dmx.Model(model.net).transform({site.module: {"weight_format": cand}})
            assert table.measured[i, j] == mse(m)
    assert np.all(table.measured[:, 0] > table.measured[:, 2])  # 4 bits cost more than 8


def test_proxy_scores_equal_gradient_weighted_squared_errors():
    net = MLP()
    table = dmx.sensitivity(dmx.Model(net), None, CANDS, measure=False, batches=BATCHES, loss=loss)
    g2 = {n: 0 for n in ("fc1", "fc2", "fc3")}
    for x, y in BATCHES:
        net.zero_grad()
        F.cross_entropy(net(x), y).backward()
        for n in g2:
            g2[n] = g2[n] + net.get_submodule(n).weight.grad.double() ** 2
    net.zero_grad(set_to_none=True)
    for i, n in enumerate(g2):
        w = net.get_submodule(n).weight.detach()
        for j, cand in enumerate(CANDS):
            d = (dmxnum.cast(w, cand) - w).double()
            assert table.proxy[i, j] == pytest.approx(float((d * d * g2[n]).sum()), rel=1e-6)
    assert all(p.grad is None for p in net.parameters())  # gradients cleaned up


def test_input_site_proxy_and_elements_per_token():
    net = MLP()
    sites = [("fc2", "input_format"), ("fc2", "weight_format")]
    table = dmx.sensitivity(dmx.Model(net), mse, CANDS, sites=sites, batches=BATCHES, loss=loss)
    assert [s.elements for s in table.sites] == [64, 64 * 64]  # an input counts by its elements per token
    acts = {}
    h = net.fc2.register_forward_pre_hook(lambda m, a: acts.setdefault("x", a[0]).retain_grad())
    total = np.zeros(len(CANDS))
    for x, y in BATCHES:
        acts.clear()
        F.cross_entropy(net(x), y).backward()
        a, g = acts["x"].detach(), acts["x"].grad
        for j, cand in enumerate(CANDS):
            total[j] += float(((g * (dmxnum.cast(a, cand) - a)).double() ** 2).sum())
    h.remove()
    np.testing.assert_allclose(table.proxy[0], total, rtol=1e-6)
    assert np.isfinite(table.spearman())


def test_search_config_meets_budget_and_applies(tmp_path):
    model = dmx.Model(MLP())
    table = dmx.sensitivity(model, mse, CANDS, batches=BATCHES, loss=loss, cache_dir=tmp_path)
    config, report = dmx.search(model, mse, CANDS, 6.0, scores=table)
    assert report.bits <= 6.0 and report.metric == mse(dmx.Model(model.net).transform(config))
    assert report.metric <= mse(dmx.Model(model.net).transform(
        dmx.ConfigRule(module_types=["linear"], config={"weight_format": "MXFP4_E2M1"})))
    # the cache resumes: a second run evaluates nothing
    calls = []

    def counting(m):
        calls.append(1)
        return mse(m)

    counting.cache_key = "tests.test_torch_search.mse"
    first = dmx.sensitivity(model, counting, CANDS, proxy=False, cache_dir=tmp_path / "c")
    n = len(calls)
    again = dmx.sensitivity(model, counting, CANDS, proxy=False, cache_dir=tmp_path / "c")
    assert len(calls) == n == 1 + 9 and np.array_equal(first.measured, again.measured)
    assert ScoreTable.from_csv(table.to_csv()) == table


def test_site_selection_errors():
    model = dmx.Model(MLP())
    with pytest.raises(ValueError, match="no module 'fc9'"):
        dmx.sensitivity(model, mse, CANDS, sites=[("fc9", "weight_format")], proxy=False)
    with pytest.raises(ValueError, match="has no format slot"):
        dmx.sensitivity(model, mse, CANDS, sites=[("fc1", "residual_format")], proxy=False)
    with pytest.raises(ValueError, match="needs batches"):
        dmx.sensitivity(model, mse, CANDS, measure=False)
    assert [s.module for s in dmx.sensitivity(model, mse, CANDS[:1], sites=r"fc[12]", proxy=False).sites] == ["fc1", "fc2"]


def test_command_line_on_the_digits_cnn(tmp_path):
    from torch_frontend.search import main

    summary = main(["--model", "examples.search_targets:digits_quick", "--budget", "5",
                    "--candidates", "MXFP4_E2M1,MXFP6_E2M3,BFP16_64_LD", "--budgets", "4.5,6,7",
                    "--out", str(tmp_path)])
    for name in ("heatmap", "pareto", "bits"):
        assert (tmp_path / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert b"<svg" in (tmp_path / f"{name}.svg").read_bytes()[:2000]
        assert (tmp_path / f"{name}.png").stat().st_size > 5000
    assert summary["bits"] <= 5.0 and len(summary["pareto"]) >= 3
    assert json.loads((tmp_path / "summary.json").read_text())["budget"] == 5.0
    config = dmxnum.config.parse_config(str(tmp_path / "config.yaml"))
    assert all(set(slots) <= {"weight_format", "input_format"} for slots in config.values())
    mx4 = summary["uniform"]["MXFP4[E2M1]{32,-1}"]["metric"]
    assert summary["metric"] <= mx4  # test cross-entropy at 5 bits no worse than uniform MXFP4


def test_digits_search_at_5_bits_beats_uniform_and_permuted_assignments():
    """The acceptance property on the digits CNN (weights and inputs, four
    candidates, measured scores): at a 5-bit budget the searched
    configuration beats uniform MXFP4 (the only candidate within budget) in
    accuracy and cross-entropy, and is no worse than the median of its
    random permutations among equal-size sites. LeNet-5 has one such
    alternative (the 64-element inputs of conv1 and fc1 swapped): it ties in
    accuracy (98.0 %) and loses in cross-entropy (0.0702 against 0.0685)."""
    import statistics

    import dmxnum.search as ds
    from examples.search_targets import digits

    model, nll, batches, loss, sites = digits()
    cands = ["MXFP4_E2M1", "MXFP6_E2M3", "MXFP8_E4M3", "BFP16_64_LD"]
    table = dmx.sensitivity(model, nll, cands, sites=sites, proxy=False, batches=batches, loss=loss, progress=False)
    chosen = ds.search(table, 5.0)

    def scored(config):
        m = dmx.Model(model.net).transform(config)
        return nll(m), nll.accuracy(m)

    searched = scored(chosen.config)
    uniform = scored(ds.uniform(table, "MXFP4_E2M1").config)
    permuted = [scored(r.config) for r in ds.random_permutations(chosen, table, 5)]
    assert chosen.bits <= 5.0 and len(permuted) == 1
    assert searched[0] < uniform[0] and searched[1] > uniform[1] + 5.0
    assert searched[0] < statistics.median(p[0] for p in permuted)
    assert searched[1] >= statistics.median(p[1] for p in permuted)
