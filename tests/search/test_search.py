"""search, uniform, random_permutations, pareto."""

from __future__ import annotations

import numpy as np
import pytest

from dmxnum.config import parse_config
from dmxnum.search import ScoreTable, Site, evaluated, pareto, random_permutations, search, uniform

CANDS = ("MXFP4_E2M1", "MXFP6_E2M3", "MXFP8_E4M3")


def smollm2_table(blocks: int = 4, seed: int = 0) -> ScoreTable:
    shapes = {"self_attn.q_proj": 331776, "self_attn.k_proj": 110592, "self_attn.v_proj": 110592,
              "self_attn.o_proj": 331776, "mlp.gate_proj": 884736, "mlp.up_proj": 884736,
              "mlp.down_proj": 884736}
    sites = [Site(f"model.layers.{i}.{name}", "weight_format", e) for i in range(blocks) for name, e in shapes.items()]
    sites.append(Site("model.layers.0.mlp.down_proj", "input_format", 1536))
    rng = np.random.default_rng(seed)
    measured = np.abs(rng.normal(size=(len(sites), 3))) * np.array([4.0, 1.0, 0.1])
    proxy = measured * rng.uniform(0.5, 2.0, size=measured.shape)
    return ScoreTable(tuple(sites), CANDS, measured=measured, proxy=proxy, baseline=10.0, metric_name="ppl")


def test_search_result_and_config():
    t = smollm2_table()
    r = search(t, 6.0)
    e, bits = t.elements, t.bits
    choice = np.array([t.index(c) for c in r.choices])
    assert r.bits == pytest.approx((e * bits[choice]).sum() / e.sum()) and r.bits <= 6.0
    assert r.predicted == pytest.approx(t.measured[np.arange(len(choice)), choice].sum())
    assert r.metric is None
    parsed = parse_config(r.config)
    assert set(parsed) == {s.module for s in t.sites}
    assert str(parsed["model.layers.0.mlp.down_proj"]["input_format"]) == r.choices[-1]
    assert str(parsed["model.layers.0.mlp.down_proj"]["weight_format"]) == r.choices[6]
    g = search(t, 6.0, method="greedy")
    assert g.predicted >= r.predicted - 1e-12 and g.bits <= 6.0
    p = search(t, 6.0, kind="proxy")
    assert p.predicted == pytest.approx(t.proxy[np.arange(len(choice)), [t.index(c) for c in p.choices]].sum())
    with pytest.raises(ValueError, match="method"):
        search(t, 6.0, method="anneal")
    with pytest.raises(ValueError, match="needs 4.25 bits"):
        search(t, 4.0)


def test_uniform():
    t = smollm2_table()
    u = uniform(t, "MXFP8_E4M3")
    assert u.bits == 8.25 and set(u.choices) == {"MXFP8[E4M3]{32,-1}"}
    assert u.predicted == pytest.approx(t.measured[:, 2].sum())
    assert search(t, 8.25).predicted <= u.predicted
    with pytest.raises(ValueError, match="not a candidate"):
        uniform(t, "BFP16_64_LD")


def test_random_permutations_keep_bits_and_are_deterministic():
    t = smollm2_table()
    r = search(t, 6.0)
    perms = random_permutations(r, t, n=5, seed=3)
    assert len(perms) == 5
    assert perms == random_permutations(r, t, n=5, seed=3)
    assert perms != random_permutations(r, t, n=5, seed=4)
    e = t.elements
    for p in perms:
        assert p.bits == r.bits  # exactly: the same formats on equally sized sites
        assert p.choices != r.choices
        for v in np.unique(e):
            idx = np.flatnonzero(e == v)
            assert sorted(p.choices[i] for i in idx) == sorted(r.choices[i] for i in idx)
        assert p.predicted >= r.predicted - 1e-12  # the optimum is optimal
    assert len({p.choices for p in perms}) == 5
    assert random_permutations(uniform(t, "MXFP4_E2M1"), t) == []


def test_pareto_with_evaluate():
    t = smollm2_table()
    calls = []

    def evaluate(config):
        calls.append(config)
        return t.baseline + len(config)

    budgets = [8.25, 4.5, 6.0]
    rs = pareto(t, budgets, evaluate=evaluate)
    assert [r.bits <= b for r, b in zip(rs, budgets)] == [True] * 3
    assert [r.config for r in rs] == calls
    assert all(r.metric == t.baseline + len(r.config) for r in rs)
    assert rs[0].predicted <= rs[2].predicted <= rs[1].predicted  # more bits, less loss
    assert all(r.metric is None for r in pareto(t, budgets[:1]))
    assert evaluated(uniform(t, "MXFP6_E2M3"), lambda c: 1.5).metric == 1.5


def test_search_is_deterministic_with_ties():
    sites = tuple(Site(f"m{i}", "weight_format", 64) for i in range(5))
    t = ScoreTable(sites, CANDS, measured=np.zeros((5, 3)))
    r = search(t, 8.25)
    assert set(r.choices) == {"MXFP4[E2M1]{32,-1}"}  # free: the fewest bits
