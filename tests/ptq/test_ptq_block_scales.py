"""Held block scales (dmxnum.ptq.block_scales): "scale of a block" then
"round under a scale" recomposes every block family's cast bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, strategies as st

import dmxnum
from dmxnum.ptq import block_rule, cast_by_held_scales
from dmxnum.testing import arrays_for, formats

BLOCK_FAMILIES = ["BFP", "MXINT", "MXFP", "NVFP4", "SBFP"]


@given(st.data())
def test_round_under_own_scale_is_the_cast(data):
    fmt = data.draw(formats(families=BLOCK_FAMILIES, roundings="NZUD"))
    x = data.draw(arrays_for(fmt, allow_nan=False, allow_inf=False, max_elements=128))
    got = cast_by_held_scales(x, fmt)
    want = dmxnum.cast(x, fmt)
    assert np.array_equal(got.view(np.uint32), want.view(np.uint32)), (str(fmt), x, got, want)


@given(st.data())
def test_values_beyond_the_held_maximum_saturate(data):
    # rounding under a scale held from a smaller block saturates/clamps at the
    # element range (asymmetric ranges reach one step further on the negative side)
    fmt = data.draw(formats(families=BLOCK_FAMILIES, roundings="N", axes=(-1,), max_block_size=8))
    rule = block_rule(fmt)
    amax = np.array([np.float32(1.0).view(np.int32)])
    held = rule.scale(amax, np.float32(2.0**-8) if getattr(fmt, "tensor_scale", False) else None)
    big = rule.round(np.array([1e30, -1e30], np.float32), held)
    top = rule.round(np.array([3e38], np.float32), held)
    assert np.all(np.isfinite(big)) and big[0] == top[0] >= 0
    assert -2 * big[0] <= big[1] <= -big[0]


def test_unblocked_and_stochastic_formats_are_rejected():
    with pytest.raises(TypeError, match="not a block format"):
        block_rule(dmxnum.parse("INT8"))
    with pytest.raises(ValueError, match="stochastic"):
        block_rule(dmxnum.parse("BFP[8|8]{16,-1}(SS)"))
