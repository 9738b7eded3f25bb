"""The knapsack solvers against brute force on small instances."""

from __future__ import annotations

import itertools
import time

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dmxnum.search import solve_exact, solve_greedy
from dmxnum.search.solver import RTOL

DYADIC = [4.25, 6.25, 8.125, 8.25, 16.0, 4.5]


def brute_force(s, e, b, budget):
    """(best objective, least bits at that objective) over every assignment."""
    n, k = s.shape
    b = np.broadcast_to(b, (n, k))
    combos = np.array(list(itertools.product(range(k), repeat=n)))  # (k**n, n)
    sites = np.arange(n)
    score = s[sites, combos].sum(axis=1)  # NaN where a choice is not allowed
    cost = (e * b[sites, combos]).sum(axis=1)
    ok = ~np.isnan(score) & (cost <= budget * e.sum() * (1 + RTOL))
    if not ok.any():
        return np.inf, np.inf
    best = score[ok].min()
    return float(best), float(cost[ok & (score == best)].min())


@st.composite
def instances(draw, dyadic=True):
    n = draw(st.integers(1, 6))
    k = draw(st.integers(2, 4))
    factor = draw(st.sampled_from([1, 64, 110592]))
    e = np.array(draw(st.lists(st.integers(1, 9), min_size=n, max_size=n))) * factor
    if dyadic:
        b = np.array(draw(st.lists(st.sampled_from(DYADIC), min_size=k, max_size=k, unique=True)))
    else:
        b = np.array(draw(st.lists(st.floats(2.0, 9.0).map(lambda x: round(x, 3)), min_size=k, max_size=k)))
    # small integers make exact ties common; negatives and NaNs allowed
    vals = st.one_of(st.integers(-3, 9).map(float), st.just(np.nan))
    s = np.array(draw(st.lists(vals, min_size=n * k, max_size=n * k))).reshape(n, k)
    for i in range(n):  # at least one allowed candidate per site
        if np.isnan(s[i]).all():
            s[i, draw(st.integers(0, k - 1))] = 1.0
    lo = float((e * np.nanmin(np.where(np.isnan(s), np.nan, b), axis=1)).sum() / e.sum())
    budget = draw(st.sampled_from([lo, lo + 0.5, lo + 1.25, float(b.max()), draw(st.floats(lo, 20.0))]))
    return s, e, b, budget


def check(choice, s, e, b, budget, exact: bool):
    n = s.shape[0]
    score = s[np.arange(n), choice]
    assert not np.isnan(score).any()
    cost = float((e * b[choice]).sum())
    assert cost <= budget * e.sum() * (1 + RTOL)
    best, least_bits = brute_force(s, e, b, budget)
    if exact:
        assert score.sum() == pytest.approx(best, abs=1e-9)
        assert cost == pytest.approx(least_bits)  # fewest bits among ties
    else:
        assert score.sum() >= best - 1e-9
    return float(score.sum())


@given(instances())
def test_exact_equals_brute_force_and_greedy_never_beats_it(inst):
    s, e, b, budget = inst
    exact = check(solve_exact(s, e, b, budget), s, e, b, budget, exact=True)
    greedy = check(solve_greedy(s, e, b, budget), s, e, b, budget, exact=False)
    assert greedy >= exact - 1e-9


@given(instances(dyadic=False))
def test_exact_fallback_for_non_dyadic_bits(inst):
    # bits like 4.137 are not multiples of 1/1024: the MILP path must be exact too
    s, e, b, budget = inst
    check(solve_exact(s, e, b, budget), s, e, b, budget, exact=True)


def test_exact_fallback_for_a_large_grid(monkeypatch):
    import dmxnum.search.solver as solver

    rng = np.random.default_rng(1)
    s = rng.normal(size=(6, 3))
    e = rng.integers(1, 50, size=6)
    b = np.array([4.25, 6.25, 8.25])
    dp = solve_exact(s, e, b, 6.0)
    monkeypatch.setattr(solver, "MAX_GRID_CELLS", 0)
    assert solve_exact(s, e, b, 6.0).tolist() == dp.tolist()


def test_infeasible_budget_names_the_minimum():
    s = np.zeros((2, 2))
    e = np.array([1, 3])
    b = np.array([4.25, 8.25])
    for solve in (solve_exact, solve_greedy):
        with pytest.raises(ValueError, match=r"needs 4\.25 bits per element"):
            solve(s, e, b, 4.0)
    s[1, 0] = np.nan  # site 1 must take 8.25: minimum (4.25 + 3 * 8.25) / 4
    with pytest.raises(ValueError, match=r"needs 7\.25 bits"):
        solve_exact(s, e, b, 7.0)
    assert solve_exact(s, e, b, 7.25).tolist() == [0, 1]


def test_nan_candidates_are_never_chosen():
    s = np.array([[np.nan, 5.0, 1.0], [0.0, np.nan, np.nan]])
    e = np.array([2, 2])
    b = np.array([4.25, 6.25, 8.25])
    # the budget would allow anything; site 0's cheapest allowed is 6.25, site 1 only 4.25
    for solve in (solve_exact, solve_greedy):
        assert solve(s, e, b, 8.25).tolist() == [2, 0]
    with pytest.raises(ValueError, match="allow no candidate"):
        solve_exact(np.array([[np.nan, np.nan]]), [1], [4.25, 8.25], 8.0)


def test_ties_prefer_fewer_bits_then_earlier_candidate():
    s = np.array([[1.0, 1.0, 0.0, 0.0]])
    b = np.array([8.25, 4.25, 8.125, 8.125])
    assert solve_exact(s, [1], b, 9.0).tolist() == [2]
    assert solve_exact(np.zeros((1, 3)), [1], [8.0, 4.0, 4.0], 9.0).tolist() == [1]


def test_greedy_is_the_ratio_baseline():
    # greedy takes site 0's upgrade (1.5 per bit) first; then site 1's (1.25
    # per bit) no longer fits, and the optimum (site 1 upgraded alone) is missed
    s = np.array([[10.0, 8.5, np.nan], [10.0, np.nan, 5.0]])
    e = np.array([1, 1])
    b = np.array([4.0, 5.0, 8.0])
    assert solve_greedy(s, e, b, 6.0).tolist() == [1, 0]
    assert solve_exact(s, e, b, 6.0).tolist() == [0, 2]
    # with room for both, greedy takes both
    assert solve_greedy(s, e, b, 6.5).tolist() == [1, 2]


def test_rejects_malformed_inputs():
    with pytest.raises(ValueError, match="finite or NaN"):
        solve_exact([[np.inf, 1.0]], [1], [4.0, 8.0], 8.0)
    with pytest.raises(ValueError, match="elements must have shape"):
        solve_exact([[0.0, 1.0]], [1, 2], [4.0, 8.0], 8.0)
    with pytest.raises(ValueError, match="positive"):
        solve_exact([[0.0, 1.0]], [0], [4.0, 8.0], 8.0)
    with pytest.raises(ValueError, match="bits must have shape"):
        solve_exact([[0.0, 1.0]], [1], [4.0, 8.0, 6.0], 8.0)


def smollm2_like(seed=0):
    # 30 blocks x 7 linear weights: q,o 576x576; k,v 576x192; gate,up,down 576x1536
    per_block = [331776, 110592, 110592, 331776, 884736, 884736, 884736]
    e = np.array(per_block * 30)
    rng = np.random.default_rng(seed)
    s = np.abs(rng.normal(size=(e.size, 4))) * np.array([8.0, 2.0, 1.1, 1.0])
    return s, e, np.array([4.25, 6.25, 8.125, 8.25])


def test_large_instance_is_fast_and_beats_greedy():
    s, e, b = smollm2_like()
    assert s.shape == (210, 4)
    for budget in (4.5, 6.0, 7.5):
        t = time.perf_counter()
        choice = solve_exact(s, e, b, budget)
        elapsed = time.perf_counter() - t
        assert elapsed < 0.5, elapsed
        assert (e * b[choice]).sum() <= budget * e.sum()
        greedy = solve_greedy(s, e, b, budget)
        assert s[np.arange(210), choice].sum() <= s[np.arange(210), greedy].sum() + 1e-9
