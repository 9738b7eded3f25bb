"""Figures for a mixed-precision search (matplotlib, Agg canvas).

Each function draws on its own ``matplotlib.figure.Figure`` attached to an
Agg canvas (no ``pyplot``, no global figure registry, no rcParams or
backend changes) and writes it to ``path``: a path ending in ``.png``,
``.svg`` or ``.pdf`` writes that file; any other path gets ``.png`` and
``.svg`` appended and writes both. Each returns the written paths.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .search import SearchResult
from .sites import bits_of
from .table import ScoreTable

_SUFFIXES = (".png", ".svg", ".pdf")


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path) -> list[Path]:
    path = Path(path)
    if path.suffix.lower() in _SUFFIXES:
        targets = [path]
    else:
        targets = [path.with_name(path.name + ".png"), path.with_name(path.name + ".svg")]
    for t in targets:
        t.parent.mkdir(parents=True, exist_ok=True)
        meta = {"Date": None} if t.suffix.lower() == ".svg" else None  # reproducible SVG
        fig.savefig(t, dpi=150, metadata=meta)
    return targets


def _site_font(n: int) -> float:
    return 8.0 if n <= 40 else max(3.0, 8.0 * 40 / n)


def heatmap(table: ScoreTable, path, kind: str = "measured") -> list[Path]:
    """Heat map of ``log10(max(score, floor))`` for ``table.scores(kind)``:
    sites as rows in table order (labelled ``module:slot``), candidates as
    columns (labelled ``shorthand (bits)``). ``floor`` is a tenth of the
    smallest positive finite score (``1e-12`` if none), so zero and negative
    scores (no loss, or a gain) show at the floor; NaN cells stay blank.
    Returns the written paths."""
    a = table.scores(kind)
    pos = a[np.isfinite(a) & (a > 0)]
    floor = float(pos.min()) / 10 if pos.size else 1e-12
    z = np.ma.masked_invalid(np.log10(np.maximum(a, floor)))
    n, k = a.shape
    fig = _figure(2.5 + 1.1 * k, 1.5 + 0.16 * n)
    ax = fig.add_subplot()
    im = ax.imshow(z, aspect="auto", interpolation="nearest", cmap="viridis")
    ax.set_yticks(range(n), [s.label for s in table.sites], fontsize=_site_font(n))
    ax.set_xticks(range(k), [f"{c} ({b:g})" for c, b in zip(table.candidates, table.bits)],
                  rotation=30, ha="right", fontsize=8)
    ax.set_title(f"{kind} change in {table.metric_name}")
    fig.colorbar(im, ax=ax, label=f"log10(max(score, {floor:.2g}))")
    return _save(fig, path)


def _y(points: Sequence[SearchResult]) -> tuple[np.ndarray, str]:
    if all(p.metric is not None for p in points):
        return np.array([p.metric for p in points], dtype=np.float64), "measured metric"
    return np.array([p.predicted for p in points], dtype=np.float64), "predicted metric change (sum of scores)"


def pareto_plot(
    results: Sequence[SearchResult], uniforms: Sequence[SearchResult], path, label: str = "searched",
    more: Sequence[SearchResult] = (), more_label: str = "searched (other scores)",
) -> list[Path]:
    """Metric against average bits per element: ``results`` (the searched
    configurations, sorted by bits) as a line labelled ``label``, ``more``
    (optional, e.g. the searches on the other kind of score) as a second
    line labelled ``more_label``, each of ``uniforms`` as a
    labelled reference point (its format's shorthand). The y value is
    ``metric`` when every point has one, else ``predicted`` for every
    point (the axis label says which). Returns the written paths."""
    points = list(results) + list(uniforms) + list(more)
    if not points:
        raise ValueError("pareto_plot needs at least one result")
    y, ylabel = _y(points)
    fig = _figure(6.4, 4.2)
    ax = fig.add_subplot()
    if results:
        order = np.argsort([r.bits for r in results], kind="stable")
        ax.plot(np.array([r.bits for r in results])[order], y[: len(results)][order],
                "o-", color="C0", label=label)
    if more:
        order = np.argsort([r.bits for r in more], kind="stable")
        ax.plot(np.array([r.bits for r in more])[order], y[len(points) - len(more):][order],
                "^--", color="C2", label=more_label)
    for u, yu in zip(uniforms, y[len(results):len(results) + len(uniforms)]):
        ax.plot([u.bits], [yu], "s", color="C3")
        name = u.choices[0] if len(set(u.choices)) == 1 else "mixed"
        ax.annotate(name, (u.bits, yu), textcoords="offset points", xytext=(4, 4), fontsize=7)
    if uniforms:
        ax.plot([], [], "s", color="C3", label="uniform")
    ax.set_xlabel("average bits per element")
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    ax.legend()
    return _save(fig, path)


def bits_bars(result: SearchResult, table: ScoreTable, path) -> list[Path]:
    """Bars of the bits per element chosen at each site of ``result``
    (sites in table order, coloured by format, legend per format), with a
    dashed line at the element-weighted average ``result.bits``. Returns the
    written paths."""
    if len(result.choices) != len(table.sites):
        raise ValueError(f"result has {len(result.choices)} choices, the table {len(table.sites)} sites")
    n = len(table.sites)
    bits = np.array([bits_of(c) for c in result.choices])
    formats = list(dict.fromkeys(result.choices))
    colors = {c: f"C{i % 10}" for i, c in enumerate(formats)}
    fig = _figure(max(6.0, 1.5 + 0.14 * n), 4.2)
    ax = fig.add_subplot()
    ax.bar(range(n), bits, color=[colors[c] for c in result.choices], width=0.85)
    for c in formats:
        ax.bar([0], [0], color=colors[c], label=c)
    ax.axhline(result.bits, color="k", ls="--", lw=1, label=f"average {result.bits:.4g}")
    ax.set_xticks(range(n), [s.label for s in table.sites], rotation=90, fontsize=_site_font(n))
    ax.set_xlim(-0.5, n - 0.5)
    ax.set_ylabel("bits per element")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _save(fig, path)
