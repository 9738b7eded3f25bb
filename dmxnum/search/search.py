"""Mixed-precision search over a :class:`~dmxnum.search.table.ScoreTable`.

:func:`search` picks one candidate format per site under an average bit
budget, minimizing the sum of the table's per-site scores (the scores are
additive estimates: each measures one site alone). The result's ``config``
is a configuration mapping (``{module: {slot: shorthand}}``) that
``dmxnum.config.parse_config`` and both frontends accept, so the predicted
optimum can be evaluated for real (:func:`pareto` with ``evaluate``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping

import numpy as np

from .solver import solve_exact, solve_greedy
from .table import KINDS, ScoreTable

METHODS = {"exact": solve_exact, "greedy": solve_greedy}


@dataclass(frozen=True)
class SearchResult:
    """One assignment of candidates to sites.

    ``choices``: the canonical shorthand chosen at each site, in table order;
    ``bits``: the element-weighted average bits per element over the sites,
    ``sum(elements_i * bits_i) / sum(elements_i)``; ``predicted``: the sum of
    the chosen scores (the predicted metric change; ``NaN`` if a chosen
    score is not measured); ``config``: ``{module: {slot: shorthand}}`` in
    site order; ``metric``: the evaluated metric, ``None`` until evaluated.
    """

    choices: tuple[str, ...]
    bits: float
    predicted: float
    config: dict
    metric: float | None = None


def _result(table: ScoreTable, choice: Iterable[int], kind: str) -> SearchResult:
    choice = np.asarray(list(choice), dtype=np.int64)
    e = table.elements
    bits = float((e * table.bits[choice]).sum() / e.sum())
    a = getattr(table, kind)
    predicted = float(a[np.arange(len(choice)), choice].sum()) if a is not None else float("nan")
    config: dict[str, dict[str, str]] = {}
    for site, j in zip(table.sites, choice):
        config.setdefault(site.module, {})[site.slot] = table.candidates[j]
    return SearchResult(tuple(table.candidates[j] for j in choice), bits, predicted, config)


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")


def search(table: ScoreTable, budget_bits: float, kind: str = "measured", method: str = "exact") -> SearchResult:
    """The assignment minimizing the sum of ``table.scores(kind)`` with
    average bits per element at most ``budget_bits``.

    ``method``: ``"exact"`` (:func:`~dmxnum.search.solver.solve_exact`) or
    ``"greedy"`` (:func:`~dmxnum.search.solver.solve_greedy`). NaN scores
    are never chosen. ``ValueError`` for an unknown kind or method, a
    missing kind, or a budget below the cheapest allowed assignment (the
    message names that minimum).
    """
    _check_kind(kind)
    if method not in METHODS:
        raise ValueError(f"method must be one of {tuple(METHODS)}, got {method!r}")
    choice = METHODS[method](table.scores(kind), table.elements, table.bits, budget_bits)
    return _result(table, choice, kind)


def uniform(table: ScoreTable, candidate, kind: str = "measured") -> SearchResult:
    """Every site at ``candidate`` (a candidate of the table, any spelling):
    its ``bits`` is the candidate's bits, ``predicted`` the sum of that
    column of ``kind`` scores (``NaN`` if a score there is NaN or the table
    has no such kind). ``ValueError`` for a candidate not in the table."""
    _check_kind(kind)
    j = table.index(candidate)
    return _result(table, [j] * len(table.sites), kind)


def random_permutations(
    result: SearchResult, table: ScoreTable, n: int = 5, seed: int = 0, kind: str = "measured"
) -> list[SearchResult]:
    """Controls for a searched ``result``: up to ``n`` assignments that
    shuffle its chosen formats among sites with equal element counts.

    Each one keeps the multiset of formats within every group of sites with
    the same ``elements``, so its ``bits`` equals ``result.bits`` exactly.
    Drawn with ``numpy.random.default_rng(seed)``; the same arguments give
    the same list. Assignments are distinct and differ from ``result``;
    fewer than ``n`` come back when no other distinct shuffles are found in
    ``100 * n`` draws (none when every group holds a single format).
    ``predicted`` uses ``kind`` scores (``NaN`` where a shuffled choice was
    not measured).
    """
    _check_kind(kind)
    if len(result.choices) != len(table.sites):
        raise ValueError(f"result has {len(result.choices)} choices, the table {len(table.sites)} sites")
    base = np.array([table.index(c) for c in result.choices], dtype=np.int64)
    e = table.elements
    groups = [np.flatnonzero(e == v) for v in np.unique(e)]
    groups = [g for g in groups if len(set(base[g].tolist())) > 1]
    rng = np.random.default_rng(seed)
    seen = {tuple(base.tolist())}
    out: list[SearchResult] = []
    for _ in range(100 * n):
        if len(out) >= n or not groups:
            break
        choice = base.copy()
        for g in groups:
            choice[g] = base[g][rng.permutation(len(g))]
        key = tuple(choice.tolist())
        if key not in seen:
            seen.add(key)
            out.append(_result(table, choice, kind))
    return out


def pareto(
    table: ScoreTable,
    budgets: Iterable[float],
    kind: str = "measured",
    evaluate: Callable[[Mapping[str, Mapping[str, str]]], float] | None = None,
    method: str = "exact",
) -> list[SearchResult]:
    """:func:`search` at each budget, in the given order.

    With ``evaluate``, each result's ``metric`` is ``float(evaluate(config))``
    (called once per budget, in order, with the result's ``config``);
    without it ``metric`` stays ``None``. An infeasible budget raises
    ``ValueError`` as in :func:`search`.
    """
    out = []
    for b in budgets:
        r = search(table, b, kind=kind, method=method)
        if evaluate is not None:
            r = evaluated(r, evaluate)
        out.append(r)
    return out


def evaluated(result: SearchResult, evaluate: Callable[[Mapping[str, Mapping[str, str]]], float]) -> SearchResult:
    """``result`` with ``metric = float(evaluate(result.config))`` (for
    uniform and permuted references)."""
    return dataclasses.replace(result, metric=float(evaluate(result.config)))
