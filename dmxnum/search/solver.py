"""Multiple-choice knapsack solvers for a bit budget.

Given ``scores`` (sites x candidates; lower is better, ``NaN`` = candidate not
allowed at that site), ``elements`` (per site) and ``bits`` (per candidate,
or per site and candidate), choose one candidate ``j_i`` per site to minimize
``sum_i scores[i, j_i]`` subject to::

    sum_i elements[i] * bits[i, j_i]  <=  budget_bits * sum_i elements[i]

i.e. the element-weighted average bits per element stays within
``budget_bits``, up to a relative ``RTOL`` (so a budget computed in floating
point, such as another assignment's average bits, admits that assignment). Both solvers return the chosen column per site as an int64
array and raise ``ValueError`` when the budget is below the cheapest allowed
assignment (the message names that minimum, in average bits per element).
"""

from __future__ import annotations

import math
from fractions import Fraction
from functools import reduce

import numpy as np

#: the exact solver's dynamic program runs when sites x cost grid cells stay within this
MAX_GRID_CELLS = 20_000_000
#: relative slack of the budget: a choice fits when its bits are at most ``budget * (1 + RTOL)``
RTOL = 1e-12
#: the largest power-of-two denominator of ``bits`` the dynamic program accepts
MAX_DENOMINATOR = 1 << 10


class _Problem:
    """Validated inputs: ``s`` scores (+inf where not allowed), ``allowed``,
    ``e`` int elements, ``b`` (n, k) bits, ``cost`` = e * b (float)."""

    def __init__(self, scores, elements, bits, budget_bits):
        s = np.array(scores, dtype=np.float64)
        if s.ndim != 2 or 0 in s.shape:
            raise ValueError(f"scores must be a non-empty 2-D array (sites x candidates), got shape {s.shape}")
        n, k = s.shape
        if np.isinf(s).any():
            raise ValueError("scores must be finite or NaN (NaN: candidate not allowed at that site)")
        e = np.asarray(elements)
        if e.shape != (n,):
            raise ValueError(f"elements must have shape ({n},), got {e.shape}")
        if not np.issubdtype(e.dtype, np.integer):
            if not np.all(np.isfinite(e)) or not np.all(e == np.round(e)):
                raise ValueError("elements must be integers")
        e = e.astype(np.int64)
        if (e <= 0).any():
            raise ValueError("elements must be positive")
        b = np.asarray(bits, dtype=np.float64)
        try:
            b = np.broadcast_to(b, (n, k)).copy()
        except ValueError:
            raise ValueError(f"bits must have shape ({k},) or ({n}, {k}), got {b.shape}") from None
        if not (np.isfinite(b).all() and (b > 0).all()):
            raise ValueError("bits must be finite and positive")
        budget = float(budget_bits)
        if not math.isfinite(budget):
            raise ValueError(f"budget_bits must be finite, got {budget_bits!r}")
        self.allowed = ~np.isnan(s)
        bad = np.flatnonzero(~self.allowed.any(axis=1))
        if bad.size:
            raise ValueError(f"site(s) {bad.tolist()} allow no candidate (every score is NaN)")
        self.s = np.where(self.allowed, s, np.inf)
        self.e, self.b, self.n, self.k, self.budget = e, b, n, k, budget
        self.cost = e[:, None].astype(np.float64) * b
        self.total = int(e.sum())
        self.limit = budget * self.total * (1 + RTOL)
        # cheapest allowed assignment, in average bits per element
        self.min_bits = float(np.where(self.allowed, self.cost, np.inf).min(axis=1).sum() / self.total)

    def infeasible(self) -> ValueError:
        return ValueError(
            f"budget of {self.budget:g} bits per element is infeasible: the cheapest allowed "
            f"assignment needs {self.min_bits:.6g} bits per element"
        )

    def objective(self, choice: np.ndarray) -> float:
        return float(self.s[np.arange(self.n), choice].sum())

    def tie_tol(self) -> float:
        """Two objectives within this are a tie (summation-order rounding)."""
        return 1e-12 * float(np.where(self.allowed, np.abs(self.s), 0.0).max(axis=1).sum() + 1.0)


def _integer_costs(p: _Problem):
    """Exact integer costs: ``(units (n, k) int64 objects, capacity)`` such that
    a choice fits iff its units sum to at most ``capacity``; ``None`` when a
    bit width is not a multiple of ``1 / MAX_DENOMINATOR``."""
    den = max(Fraction(float(x)).denominator for x in np.unique(p.b))
    if den > MAX_DENOMINATOR:
        return None
    g = reduce(math.gcd, (int(x) for x in p.e))
    units = (p.e // g)[:, None] * np.rint(p.b * den).astype(np.int64)
    capacity = math.floor(Fraction(p.budget) * (1 + Fraction(RTOL)) * den * p.total / g)
    return units, capacity


def solve_exact(scores, elements, bits, budget_bits) -> np.ndarray:
    """Optimal choice of one candidate per site under the bit budget.

    Minimizes ``sum_i scores[i, j_i]`` subject to the budget (module doc),
    never choosing a ``NaN`` score. Among assignments whose sums tie (within
    ``1e-12`` of the sum of the sites' largest ``|score|``) it returns the one
    with the fewest total bits; remaining ties are broken deterministically
    in favour of earlier candidates (exactly so by the dynamic program, as
    HiGHS returns them by the fallback).

    Method: when every bit width is a multiple of ``1/1024``, a dynamic
    program over the exact integer cost grid (bits times their common
    power-of-two denominator, element counts divided by their GCD, each site's
    cheapest allowed candidate taken as zero, units divided by their GCD),
    one NumPy pass per (site, candidate). When the grid would exceed
    ``MAX_GRID_CELLS`` or a width is not dyadic it falls back to an exact
    0-1 program, ``scipy.optimize.milp`` (HiGHS), minimizing the score and
    then, at that score, the bits; ``RuntimeError`` if SciPy is missing.
    Raises ``ValueError`` for an infeasible budget or malformed inputs.
    """
    p = _Problem(scores, elements, bits, budget_bits)
    ic = _integer_costs(p)
    if ic is not None:
        units, capacity = ic
        big = np.iinfo(np.int64).max
        lo = np.where(p.allowed, units, big).min(axis=1)
        slack = capacity - int(lo.sum())
        if slack < 0:
            raise p.infeasible()
        shift = np.where(p.allowed, units - lo[:, None], 0)
        step = reduce(math.gcd, (int(x) for x in np.unique(shift)), 0) or 1
        shift //= step
        slack = min(slack // step, int(shift.max(axis=1).sum()))
        if p.n * (slack + 1) <= MAX_GRID_CELLS:
            return _dp(p, shift, slack)
    elif p.min_bits * p.total > p.limit:
        raise p.infeasible()
    return _milp(p)


def _dp(p: _Problem, shift: np.ndarray, slack: int) -> np.ndarray:
    width = slack + 1
    dp = np.full(width, np.inf)
    dp[0] = 0.0  # dp[c]: least score sum of the sites so far with shifted cost exactly c
    pick = np.zeros((p.n, width), dtype=np.int8 if p.k < 128 else np.int32)
    for i in range(p.n):
        new = np.full(width, np.inf)
        for j in np.flatnonzero(p.allowed[i]):
            d = int(shift[i, j])
            if d >= width:
                continue
            val = np.full(width, np.inf)
            val[d:] = dp[: width - d] + p.s[i, j]
            better = val < new  # strict: the earlier candidate keeps a tie
            new[better] = val[better]
            pick[i, better] = j
        dp = new
    best = dp.min()
    c = int(np.flatnonzero(dp <= best + p.tie_tol())[0])  # fewest bits among ties
    choice = np.empty(p.n, dtype=np.int64)
    for i in range(p.n - 1, -1, -1):
        j = int(pick[i, c])
        choice[i] = j
        c -= int(shift[i, j])
    return choice


def _milp(p: _Problem) -> np.ndarray:
    try:
        from scipy.optimize import Bounds, LinearConstraint, milp
        from scipy.sparse import csr_array
    except ImportError:  # pragma: no cover - scipy is present in the test environment
        raise RuntimeError(
            "solve_exact needs SciPy (scipy.optimize.milp) when bit widths are not multiples of "
            f"1/{MAX_DENOMINATOR} or the cost grid exceeds {MAX_GRID_CELLS} cells; install scipy "
            "or use solve_greedy"
        ) from None
    rows, cols = np.nonzero(p.allowed)
    m = rows.size
    score = p.s[rows, cols]
    avg = p.cost[rows, cols] / p.total  # contribution to the average bits
    one = LinearConstraint(csr_array((np.ones(m), (rows, np.arange(m))), shape=(p.n, m)), 1, 1)
    opts = {"mip_rel_gap": 0.0}

    def run(c, cons):
        r = milp(c, constraints=cons, integrality=np.ones(m), bounds=Bounds(0, 1), options=opts)
        if r.x is None:
            return None
        choice = np.empty(p.n, dtype=np.int64)
        sel = r.x > 0.5
        choice[rows[sel]] = cols[sel]
        return choice

    def fits(choice):
        return float(p.cost[np.arange(p.n), choice].sum()) <= p.limit

    rhs = p.budget
    for _ in range(8):  # tighten when the solver's feasibility tolerance let the budget slip
        choice = run(score, [one, LinearConstraint(avg[None, :], -np.inf, rhs)])
        if choice is None:
            raise p.infeasible()
        if fits(choice):
            break
        rhs -= float(p.cost[np.arange(p.n), choice].sum()) / p.total - p.budget + 1e-12
    else:  # pragma: no cover
        raise RuntimeError("scipy.optimize.milp kept returning assignments over the budget")
    # second stage: fewest bits at (a tie of) the optimal score
    best = p.objective(choice)
    tie = LinearConstraint(score[None, :], -np.inf, best + p.tie_tol())
    fewer = run(avg, [one, tie, LinearConstraint(avg[None, :], -np.inf, rhs)])
    if fewer is not None and fits(fewer) and p.objective(fewer) <= best + p.tie_tol():
        choice = fewer
    return choice


def solve_greedy(scores, elements, bits, budget_bits) -> np.ndarray:
    """Greedy baseline for the same problem as :func:`solve_exact`.

    Starts at each site's cheapest allowed candidate (least score among the
    cheapest, then the earliest), then repeatedly applies the single change
    of one site's candidate that lowers the score sum and keeps the budget,
    taking the largest score reduction per
    extra bit (changes that add no bits first; ties: larger reduction, then
    earlier site, then earlier candidate), until no change helps. Always
    feasible, never better than :func:`solve_exact`. ``ValueError`` for an
    infeasible budget or malformed inputs.
    """
    p = _Problem(scores, elements, bits, budget_bits)
    limit = p.limit
    if p.min_bits * p.total > limit:
        raise p.infeasible()
    cost = np.where(p.allowed, p.cost, np.inf)
    ar = np.arange(p.n)
    # cheapest, then least score, then earliest candidate
    order = np.lexsort((np.broadcast_to(np.arange(p.k), (p.n, p.k)), p.s, cost), axis=1)
    choice = order[:, 0].astype(np.int64)
    total = float(p.cost[ar, choice].sum())
    while True:
        gain = p.s[ar, choice][:, None] - p.s
        extra = cost - cost[ar, choice][:, None]
        ok = p.allowed & (gain > 0) & (total + extra <= limit)
        if not ok.any():
            return choice
        ii, jj = np.nonzero(ok)
        g, x = gain[ii, jj], extra[ii, jj]
        ratio = np.where(x > 0, g / np.where(x > 0, x, 1.0), np.inf)
        best = np.lexsort((jj, ii, -g, -ratio))[0]
        i, j = int(ii[best]), int(jj[best])
        total += float(extra[i, j])
        choice[i] = j
