"""The eager per-element-quantum FP path (``dmxnum/kernels/fp_quantum.py``)
equals the reference on NumPy and PyTorch, alone and as the MXFP element cast."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, strategies as st

import dmxnum
from dmxnum.kernels import fp_quantum
from dmxnum.testing import arrays_for, assert_bit_exact, formats
from dmxnum.testing.backends import to_backend
from tests_data import edge_heavy

# saturating, signed, no flush, N or Z; none is a native PyTorch dtype
FORMATS = ["FP4_E2M1", "FP6_E3M2", "FP6_E2M3", "FP[1|4|3,7](_ZE)", "FP[1|5|2,15](_N)", "FP[1|3|0,3](_ZA)",
           "FP[1|7|1,60](_Z)", "FP[1|2|23,-100](_N)", "FP[1|6|10,40](_N)"]


def test_formats_take_the_path() -> None:
    for fmt in FORMATS:
        assert fp_quantum.applies(dmxnum.parse(fmt)), fmt
    for fmt in ["FP[1|5|2,15](_NI)", "FP[0|5|2,15](_N)", "FP[1|5|2,15](FN)", "FP[1|5|2,15](_U)", "FP[1|5|2,15](_S)",
                "FP[1|3|0,3](_NA)", "FP[1|8|0,127](_Z)", "FP[1|5|0,-97](_Z)"]:  # last two: 2^(m - emax) = 2^-127
        assert not fp_quantum.applies(dmxnum.parse(fmt)), fmt


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_direct_call_matches_reference_on_edge_values(backend: str, fmt: str) -> None:
    f = dmxnum.parse(fmt)
    for seed in range(3):
        x = edge_heavy((40, 66), seed)
        xb = to_backend(x, backend)
        from dmxnum import _backend as B

        with np.errstate(all="ignore"):
            y = fp_quantum.cast_fp_quantum(B.namespace(xb), xb, f)
        assert_bit_exact(y, f, x)
        assert_bit_exact(dmxnum.cast(xb, f), f, x)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@given(data=st.data())
def test_generated_formats_match_reference(backend: str, data: st.DataObject) -> None:
    fmt = data.draw(formats(families="FP", roundings="NZ").filter(fp_quantum.applies), label="fmt")
    x = data.draw(arrays_for(fmt), label="x")
    assert_bit_exact(dmxnum.cast(to_backend(x, backend), fmt), fmt, x)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("fmt", ["MXFP4[E2M1]{32,-1}", "MXFP6[E3M2]{8,0}", "MXFP6[E2M3]{5,1}", "MXFP8[E4M3]{7,-1}"])
def test_mxfp_element_cast_matches_reference(backend: str, fmt: str) -> None:
    for seed in range(3):
        x = edge_heavy((40, 66), seed)
        assert_bit_exact(dmxnum.cast(to_backend(x, backend), fmt), fmt, x)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("fmt", ["MXFP4[E2M1]{32,-1}", "MXFP6[E3M2]{8,0}", "MXFP8[E5M2]{5,1}", "MXFP8[E4M3]{7,-1}"])
def test_mxfp_one_pass_form_directly(backend: str, fmt: str) -> None:
    """``_mxfp_quantum`` itself (NumPy and MXFP8 otherwise take native dtypes):
    it declines blocks whose quantum is subnormal and is exact elsewhere."""
    from dmxnum import _backend as B
    from dmxnum.kernels import fastpath

    f = dmxnum.parse(fmt)
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((30, 40)) * 2.0 ** rng.integers(-90, 90, (30, 1))).astype(np.float32)
    x[0, :7] = [0.0, -0.0, np.inf, 1e-40, -3e38, 0.75, np.nan]
    x[1] = 0.0
    x[8:16, :35] = np.float32(2.0**-140)  # whole blocks (any of the axes) with subnormal quanta
    xb = to_backend(x, backend)
    with np.errstate(all="ignore"):
        assert fastpath._mxfp_quantum(B.namespace(xb), xb, f, lowest_quantum=-126) is None
        kept = np.delete(x, np.s_[8:16], axis=0)
        clean = to_backend(kept, backend)
        y = fastpath._mxfp_quantum(B.namespace(clean), clean, f, lowest_quantum=-126)
    assert y is not None
    assert_bit_exact(y, f, kept)
