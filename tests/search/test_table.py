"""ScoreTable: validation, Markdown, CSV round trip, Spearman."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats

from dmxnum.search import ScoreTable, Site, bits_of, spearman

CANDS = ("MXFP4_E2M1", "MXFP6_E2M3", "MXFP8_E4M3", "BFP16_64_LD")


def make_table(**kw) -> ScoreTable:
    sites = (
        Site("model.layers.0.self_attn.q_proj", "weight_format", 331776),
        Site("model.layers.0.self_attn.q_proj", "input_format", 576),
        Site("model.layers.0.mlp.down_proj", "weight_format", 884736),
    )
    measured = np.array([[0.5, 0.1, 0.0, 0.01], [2.0, np.nan, 0.05, -0.01], [1.25, 0.2, 0.02, 0.03]])
    proxy = np.array([[0.4, 0.2, 0.01, 0.02], [3.0, 0.4, 0.04, 0.03], [np.nan, 0.1, 0.03, 0.02]])
    args = dict(sites=sites, candidates=CANDS, measured=measured, proxy=proxy, baseline=12.5, metric_name="ppl")
    args.update(kw)
    return ScoreTable(**args)


@pytest.mark.parametrize(
    "fmt, bits", [("MXFP4_E2M1", 4.25), ("MXFP6_E2M3", 6.25), ("MXFP8_E4M3", 8.25), ("BFP16_64_LD", 8.125)]
)
def test_bits_of(fmt, bits):
    assert bits_of(fmt) == bits


def test_site_validation():
    assert Site("a", "weight_format", 3).kind == "weight"
    assert Site("a", "input_format", 3).kind == "activation"
    with pytest.raises(ValueError, match="format slot"):
        Site("a", "weight_sparseness", 3)
    with pytest.raises(ValueError, match="positive"):
        Site("a", "weight_format", 0)
    with pytest.raises(TypeError):
        Site("a", "weight_format", 2.5)


def test_table_canonicalizes_and_validates():
    t = make_table()
    assert t.candidates == ("MXFP4[E2M1]{32,-1}", "MXFP6[E2M3]{32,-1}", "MXFP8[E4M3]{32,-1}", "BFP[8|8]{64,-1}(SN)")
    assert t.bits.tolist() == [4.25, 6.25, 8.25, 8.125]
    assert t.elements.tolist() == [331776, 576, 884736]
    assert t.index("MXFP8_E4M3") == 2
    assert not t.scores("measured").flags.writeable
    with pytest.raises(ValueError, match="shape"):
        make_table(proxy=np.zeros((2, 4)))
    with pytest.raises(ValueError, match="twice"):
        make_table(candidates=("MXFP4_E2M1", "MXFP4[E2M1]{32,-1}", "MXFP8_E4M3", "BFP16_64_LD"))
    with pytest.raises(ValueError, match="no proxy"):
        make_table(proxy=None).scores("proxy")
    with pytest.raises(ValueError, match="not a candidate"):
        t.index("MXFP6_E3M2")


def test_csv_round_trip():
    t = make_table()
    text = t.to_csv()
    assert ScoreTable.from_csv(text) == t
    assert "MXFP4[E2M1]{32,-1}" in text  # commas in shorthands survive quoting
    only = make_table(proxy=None, baseline=None, metric_name="top-1 error")
    back = ScoreTable.from_csv(only.to_csv())
    assert back == only and back.proxy is None and back.baseline is None
    nan_base = make_table(baseline=float("nan"))
    assert ScoreTable.from_csv(nan_base.to_csv()) == nan_base != t
    assert make_table(measured=np.full((3, 4), np.nan)) == ScoreTable.from_csv(
        make_table(measured=np.full((3, 4), np.nan)).to_csv())


def test_markdown():
    md = make_table().to_markdown()
    assert "**ppl**, baseline 12.5" in md
    assert "measured change in ppl:" in md and "proxy change in ppl:" in md
    assert "| module | slot | elements | MXFP4[E2M1]{32,-1} (4.25) |" in md
    assert "| model.layers.0.self_attn.q_proj | input_format | 576 | 2 | n/a | 0.05 | -0.01 |" in md
    assert "proxy change" not in make_table(proxy=None).to_markdown()


def test_spearman_matches_scipy_and_hand_example():
    t = make_table()
    m, p = t.measured, t.proxy
    ok = np.isfinite(m) & np.isfinite(p)
    assert t.spearman() == pytest.approx(scipy.stats.spearmanr(p[ok], m[ok]).statistic)
    # hand example: ranks (1, 2.5, 2.5, 4) vs (1, 2, 3, 4)
    assert spearman([1, 2, 2, 3], [10, 20, 30, 40]) == pytest.approx(4.5 / np.sqrt(4.5 * 5))
    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert np.isnan(spearman([1.0], [2.0])) and np.isnan(spearman([1, 1, 1], [1, 2, 3]))
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 5, 50).astype(float), rng.normal(size=50)
    assert spearman(x, y) == pytest.approx(scipy.stats.spearmanr(x, y).statistic)
