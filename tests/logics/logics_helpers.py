"""Shared strategies and comparisons for the logics tests."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from dmxnum.logics.grammar import all_specs


SPECS = all_specs()


def specs_of(op: str) -> list[str]:
    return [s for s in SPECS if s.startswith(op + "(")]


def mismatch(actual, expected) -> np.ndarray:
    """Bool mask of elements whose float32 bits differ (NaN == NaN)."""
    a = np.asarray(actual, np.float32)
    e = np.asarray(expected, np.float32)
    assert a.shape == e.shape, (a.shape, e.shape)
    same = (a.view(np.uint32) == e.view(np.uint32)) | (np.isnan(a) & np.isnan(e))
    return ~same


def assert_bits(actual, expected, x=None, label: str = "") -> None:
    m = mismatch(actual, expected)
    if m.any():
        a = np.asarray(actual, np.float32)
        e = np.asarray(expected, np.float32)
        where = np.argwhere(m)[:5]
        detail = [(tuple(i), None if x is None else float(np.asarray(x)[tuple(i)]), float(a[tuple(i)]), float(e[tuple(i)])) for i in where]
        raise AssertionError(f"{label}: {int(m.sum())} element(s) differ (index, x, got, reference): {detail}")


#: row lengths drawn by the strategies: none a power of two but 1, plus one power of two
COLS = (1, 3, 8, 13)

EDGE = [
    0.0, -0.0, 1.0, -1.0, 0.5, -16384.0, -16385.0, 16384.0, 16385.0, -1e30, 1e30, 1e-40, -1e-40,
    2.0**-126, 3e-39, 65504.0, 70000.0, -70000.0, 11.1, 11.0, -17.3, 88.0, -104.0, float("-inf"),
    2.0**-24, 6e-8, 1e-5, 3.5, -3.5, 1.769, -1.769, 2.5,
]


def elements(allow_nan: bool = False, allow_posinf: bool = False, scale: float = 30.0):
    base = [
        st.floats(-scale, scale, width=32),
        st.floats(-3.0, 3.0, width=32),
        st.sampled_from(EDGE),
        st.floats(width=32, allow_nan=False, allow_infinity=False),
    ]
    if allow_nan:
        base.append(st.just(float("nan")))
    if allow_posinf:
        base.append(st.just(float("inf")))
    return st.one_of(*base)


@st.composite
def row_arrays(draw, max_rows: int = 2, max_cols: int = 13, allow_nan: bool = True, masked_rows: bool = True):
    """2-D float32 arrays of edge-heavy values; optionally a row that is entirely -inf."""
    # a few shape buckets (JAX eager compiles every primitive once per shape)
    rows = draw(st.integers(1, max_rows))
    cols = draw(st.sampled_from([c for c in COLS if c <= max_cols]))
    x = draw(hnp.arrays(np.float32, (rows, cols), elements=elements(allow_nan=allow_nan, allow_posinf=allow_nan)))
    if masked_rows and draw(st.booleans()):
        x[draw(st.integers(0, rows - 1))] = -np.inf
    return x


@st.composite
def positive_arrays(draw, max_len: int = 24):
    n = draw(st.sampled_from([c for c in COLS if c <= max_len]))
    el = st.one_of(
        st.floats(2.0**-30, 1e6, width=32),
        st.floats(0.0625, 100.0, width=32),
        st.sampled_from([0.0, -0.0, 1.0, 2.0**-24, 6e-8, 65504.0, 1e-40, 2.0**-126, float("inf"), -2.0, 1e-10, 3e38]),
    )
    return draw(hnp.arrays(np.float32, (n,), elements=el))
