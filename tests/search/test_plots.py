"""The plots write valid PNG and SVG files and leave matplotlib's global state alone."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest

from dmxnum.search import evaluated, pareto, search, uniform
from dmxnum.search import plots

from .test_search import smollm2_table


def check_files(paths, stem):
    assert [p.name for p in paths] == [f"{stem}.png", f"{stem}.svg"]
    png, svg = (p.read_bytes() for p in paths)
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 5000
    head = svg.lstrip()[:200]
    assert (head.startswith(b"<?xml") or head.startswith(b"<svg")) and b"<svg" in svg and len(svg) > 5000


def test_plots_write_png_and_svg(tmp_path):
    backend, rc = matplotlib.get_backend(), dict(matplotlib.rcParams)
    t = smollm2_table(blocks=2)
    t2 = type(t)(t.sites, t.candidates, measured=np.where(t.measured > 0.3, t.measured, -0.2), baseline=10.0)
    check_files(plots.heatmap(t, tmp_path / "heat"), "heat")
    check_files(plots.heatmap(t2, tmp_path / "heat2", kind="measured"), "heat2")  # zero/negative scores

    def evaluate(config):  # a stand-in metric: baseline plus the additive prediction
        return t.baseline + search_predicted(config)

    def search_predicted(config):
        return sum(t.measured[i, t.index(config[s.module][s.slot])] for i, s in enumerate(t.sites))

    results = pareto(t, [4.5, 5.5, 6.5, 7.5], evaluate=evaluate)
    uniforms = [evaluated(uniform(t, c), evaluate) for c in t.candidates]
    check_files(plots.pareto_plot(results, uniforms, tmp_path / "sub" / "pareto"), "pareto")
    two = plots.pareto_plot(results[:2], uniforms, tmp_path / "two", label="measured", more=results[2:],
                            more_label="proxy")
    check_files(two, "two")
    svg = two[1].read_text()
    assert "measured" in svg and "proxy" in svg  # both legend entries
    check_files(plots.pareto_plot(pareto(t, [5.0, 7.0]), [uniform(t, "MXFP8_E4M3")], tmp_path / "pred"), "pred")
    check_files(plots.bits_bars(search(t, 6.0), t, tmp_path / "bars"), "bars")
    (only,) = plots.bits_bars(search(t, 6.0), t, tmp_path / "bars.svg")
    assert only.name == "bars.svg" and only.read_bytes().lstrip().startswith(b"<?xml")
    import matplotlib.pyplot as plt  # noqa: E402 - only to check that no figure leaked

    assert plt.get_fignums() == []
    assert matplotlib.get_backend() == backend and dict(matplotlib.rcParams) == rc


def test_bits_bars_rejects_a_foreign_result(tmp_path):
    t = smollm2_table(blocks=1)
    with pytest.raises(ValueError, match="choices"):
        plots.bits_bars(search(smollm2_table(blocks=2), 6.0), t, tmp_path / "x")
