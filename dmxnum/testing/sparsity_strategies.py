"""Hypothesis strategies for sparseness values and the scores they rank.

* :func:`sparsities` draws sparseness values (``DENSE``, ``TOPK``, ``BTOPK``,
  ``BERN``);
* :func:`score_arrays` draws float arrays that favour hard orderings: many
  ties, ±0, NaN, ±Inf, subnormals;
* :func:`sparsity_cases` draws a sparseness together with a score array of a
  shape it accepts (N:M axis length a multiple of M; BERN scores in [0, 1]).

They compose with ``hypothesis.extra.numpy`` like any strategy.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from ..sparsity.values import Bernoulli, BlockTopK, Dense, Sparseness, TopK

KINDS = ("DENSE", "TOPK", "BTOPK", "BERN")

#: Score values that make orderings hard: ties, signed zeros, NaN, Inf, subnormals.
EDGE_SCORES = (0.0, -0.0, 1.0, -1.0, 0.5, 2.0, float("nan"), float("inf"), float("-inf"), 1e-40, -1e-40, 1.4e-45, 3.4028235e38)


def densities() -> st.SearchStrategy[float]:
    """TOPK densities: short decimals in [0, 1] (0, 1, halves, tenths, thousandths)."""
    return st.one_of(
        st.sampled_from([0.0, 1.0, 0.5, 0.25, 0.75, 0.1, 0.3, 0.35, 0.125]),
        st.integers(0, 1000).map(lambda n: n / 1000),
    )


@st.composite
def _btopk(draw: Any, max_m: int, axes: Sequence[int], grads: Sequence[str]) -> BlockTopK:
    m = draw(st.integers(1, max_m))
    k = draw(st.integers(0, m))
    return BlockTopK(k, m, draw(st.sampled_from(list(axes))), draw(st.sampled_from(list(grads))))


def sparsities(
    kinds: Sequence[str] = KINDS,
    *,
    max_m: int = 16,
    axes: Sequence[int] = (-1, 0, 1),
    grads: Sequence[str] = ("M", "U"),
) -> st.SearchStrategy[Sparseness]:
    """Sparseness values of the given ``kinds`` (a subset of ``DENSE, TOPK, BTOPK, BERN``).

    N:M values have ``1 <= M <= max_m``, ``0 <= K <= M`` and an axis from
    ``axes``; gradient modes come from ``grads``.
    """
    unknown = set(kinds) - set(KINDS)
    if unknown or not kinds:
        raise ValueError(f"kinds must be a non-empty subset of {KINDS}; got {tuple(kinds)}")
    options: list[st.SearchStrategy[Sparseness]] = []
    if "DENSE" in kinds:
        options.append(st.just(Dense()))
    if "TOPK" in kinds:
        options.append(st.builds(TopK, densities(), st.sampled_from(list(grads))))
    if "BTOPK" in kinds:
        options.append(_btopk(max_m, axes, grads))
    if "BERN" in kinds:
        options.append(st.just(Bernoulli()))
    return st.one_of(*options)


def score_arrays(shape: Any, dtype: Any = np.float32, *, tie_heavy: bool = True) -> st.SearchStrategy[np.ndarray]:
    """NumPy score arrays of ``shape`` (a tuple or a strategy) and ``dtype``.

    With ``tie_heavy`` half the draws pick from a handful of values so that
    ties, all-equal groups, NaN and signed zeros are common.
    """
    finite = st.floats(width=32, allow_nan=True, allow_infinity=True, allow_subnormal=True)
    pool = st.sampled_from(EDGE_SCORES)
    elements = st.one_of(pool, finite) if tie_heavy else finite
    return hnp.arrays(dtype, shape, elements=elements)


def probability_arrays(shape: Any, dtype: Any = np.float32) -> st.SearchStrategy[np.ndarray]:
    """Arrays of keep probabilities in [0, 1] (with 0, 1, tiny and subnormal values)."""
    edge = st.sampled_from([0.0, -0.0, 1.0, 0.5, 2.0**-24, 2.0**-25, 1e-40, 1.0 - 2.0**-24])
    return hnp.arrays(dtype, shape, elements=st.one_of(edge, st.floats(0.0, 1.0, width=32)))


@st.composite
def sparsity_cases(
    draw: Any,
    kinds: Sequence[str] = KINDS,
    *,
    max_m: int = 8,
    max_groups: int = 4,
    max_side: int = 6,
    shapes: Sequence[tuple[int, ...]] | None = None,
    dtype: Any = np.float32,
) -> tuple[Sparseness, np.ndarray]:
    """``(spec, scores)``: a sparseness and a score array it accepts.

    Without ``shapes`` the array is 1-3-d with sides up to ``max_side``, and
    for N:M its axis gets a length that is a multiple of M (at most
    ``max_groups`` groups). With ``shapes`` (a few fixed shape buckets, to
    bound JAX/XLA compilations) the shape is drawn from them and N:M draws
    M among the divisors of the chosen axis' length. BERN scores are
    probabilities in [0, 1].
    """
    unknown = set(kinds) - set(KINDS)
    if unknown or not kinds:
        raise ValueError(f"kinds must be a non-empty subset of {KINDS}; got {tuple(kinds)}")
    kind = draw(st.sampled_from(list(kinds)))
    if shapes:
        shape = list(draw(st.sampled_from(list(shapes))))
    else:
        shape = [draw(st.integers(1, max_side)) for _ in range(draw(st.integers(1, 3)))]
    ndim = len(shape)
    grad = draw(st.sampled_from(["M", "U"]))
    if kind == "DENSE":
        spec: Sparseness = Dense()
    elif kind == "TOPK":
        spec = TopK(draw(densities()), grad)
    elif kind == "BERN":
        return Bernoulli(), draw(probability_arrays(tuple(shape), dtype))
    else:
        axis = draw(st.sampled_from([a for a in (-1, 0, 1, 2, -2) if -ndim <= a < ndim]))
        if shapes:
            length = shape[axis % ndim]
            m = draw(st.sampled_from([d for d in range(1, min(max_m, length) + 1) if length % d == 0]))
        else:
            m = draw(st.integers(1, max_m))
            shape[axis % ndim] = m * draw(st.integers(1, max_groups))
        spec = BlockTopK(draw(st.integers(0, m)), m, axis, grad)
    return spec, draw(score_arrays(tuple(shape), dtype))


__all__ = ["sparsities", "densities", "score_arrays", "probability_arrays", "sparsity_cases", "EDGE_SCORES"]
