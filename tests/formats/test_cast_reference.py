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


# Formats whose eager NumPy/PyTorch casts go through a native dtype round trip
# (paths fp.native and mxfp.native): every scheme variant, on edge-heavy data.
NATIVE = [
    "FP[1|5|10,15](_NI)", "FP[1|5|10,15](_N)", "FP[1|8|7,127](_NI)", "FP[1|8|7,127](_N)",
    "FP[1|4|3,7](_NE)", "FP[1|4|3,7](_N)", "FP[1|4|3,7](_NI)", "FP[1|5|2,15](_NI)", "FP[1|5|2,15](_N)",
    "FP[1|3|2,3](_NA)", "FP[1|2|3,1](_NA)", "FP[1|2|1,1](_NA)",
    "MXFP8[E4M3]{32,-1}", "MXFP8[E5M2]{7,0}", "MXFP6[E3M2]{32,-1}", "MXFP6[E2M3]{5,1}", "MXFP4[E2M1]{32,-1}",
]


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("fmt", NATIVE)
def test_native_dtype_paths_match_reference(backend: str, fmt: str) -> None:
    from tests_data import edge_heavy

    for seed in range(3):
        x = edge_heavy((40, 66), seed)
        assert_bit_exact(dmxnum.cast(to_backend(x, backend), fmt), fmt, x)


@pytest.mark.parametrize("backend", BACKENDS)
@given(data=st.data())
def test_native_dtype_paths_hypothesis(backend: str, data: st.DataObject) -> None:
    fmt = dmxnum.parse(data.draw(st.sampled_from(NATIVE), label="fmt"))
    x = data.draw(arrays_for(fmt), label="x")
    assert_bit_exact(dmxnum.cast(to_backend(x, backend), fmt), fmt, x)
