"""Kernels equal the exact reference bit for bit, eager, on every backend (Hypothesis)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, strategies as st
from hypothesis.extra import numpy as hnp

import dmxnum
from dmxnum.testing import arrays_for, assert_bit_exact, formats
from dmxnum.testing.backends import BACKENDS, to_backend

FAMILIES = ("XP", "FP", "BFP", "MXINT", "MXFP", "SBFP")
WORDS = st.one_of(st.just(0), st.just(2**32 - 1), st.just(0x80000000), st.integers(0, 2**32 - 1))


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("backend", BACKENDS)
@given(data=st.data())
def test_cast_matches_reference(backend: str, family: str, data: st.DataObject) -> None:
    fmt = data.draw(formats(families=family), label="fmt")
    x = data.draw(arrays_for(fmt), label="x")
    words = data.draw(hnp.arrays(np.uint32, x.shape, elements=WORDS), label="words") if fmt.stochastic else None
    y = dmxnum.cast(to_backend(x, backend), fmt, random_bits=to_backend(words, backend))
    assert type(y) is type(to_backend(x, backend))
    assert_bit_exact(y, fmt, x, random_bits=words)


@pytest.mark.parametrize("backend", BACKENDS)
@given(data=st.data())
def test_shorthand_string_equals_value(backend: str, data: st.DataObject) -> None:
    fmt = data.draw(formats(roundings="NUDZ"), label="fmt")
    x = data.draw(arrays_for(fmt, max_elements=64), label="x")
    xb = to_backend(x, backend)
    a = np.asarray(dmxnum.cast(xb, fmt))
    b = np.asarray(dmxnum.cast(xb, str(fmt)))
    assert np.array_equal(a.view(np.uint32), b.view(np.uint32))
