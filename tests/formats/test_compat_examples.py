"""The dmxnum outputs quoted in docs/compat.md (formats and sparsity rows)."""

from __future__ import annotations

import numpy as np

import dmxnum


def _f32(*v: float) -> np.ndarray:
    return np.array(v, dtype=np.float32)


def test_f1_fp16_is_ieee_and_seed_like_format_saturates() -> None:
    assert dmxnum.cast(_f32(100000.0, 2.0**-20), "FP16").tolist() == [np.inf, 2.0**-20]
    assert dmxnum.cast(_f32(100000.0, 2.0**-20), "FP[1|5|10,15](FN)").tolist() == [65504.0, 0.0]


def test_f2_nan_and_inf_blocks() -> None:
    assert np.isnan(dmxnum.cast(_f32(np.nan), "FP[1|4|3,7](_NE)")).all()
    assert np.isnan(dmxnum.cast(_f32(1, np.inf, 2, 3), "BFP[8|8]{4,-1}(SN)")).all()


def test_f3_exact_shared_exponent_below_a_power_of_two() -> None:
    assert dmxnum.cast(_f32(0.99999994, 0.0), "BFP[8|8]{2,-1}(SN)").tolist() == [0.9921875, 0.0]


def test_f4_ocp_element_emax() -> None:
    block = np.zeros(32, np.float32)
    block[0] = 480
    assert dmxnum.cast(block, "MXFP8[E4M3]{32,-1}")[0] == 448


def test_f5_single_rounding() -> None:
    assert dmxnum.cast(_f32(1.0625001), "FP[1|4|3,7](_NE)").tolist() == [1.125]


def test_f6_seeded_stochastic_rounding() -> None:
    x = np.full(64, 0.3, np.float32)
    a = dmxnum.cast(x, "XP[4,0](CSS)", key=0)
    assert np.array_equal(a, dmxnum.cast(x, "XP[4,0](CSS)", key=0))


def test_f7_magnitude_scores_by_default() -> None:
    assert dmxnum.sparsify(_f32(0.1, -3, 2, 0.5), "BTOPK{2:4,-1}(U)").tolist() == [0.0, -3.0, 2.0, 0.0]
