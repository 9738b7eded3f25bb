"""MXFP against torchao 0.18's emulated ``MXTensor.to_mx(...).dequantize()``:
FLOOR, CEIL and EVEN equal it bit for bit wherever every block's shared
exponent is above -127 (torchao raises a ``2^-127`` scale to ``2^-126``);
RCEIL is defined exactly by dmxnum, and torchao's CPU fallback (a float
``log2``) differs from it just above powers of two (``docs/compat.md``)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import dmxnum
from dmxnum import _backend as B
from dmxnum.formats.mx import MXFloat
from dmxnum.kernels.rules import mx_shared_exponent
from dmxnum.reference import cast as reference_cast
from dmxnum.testing import float32_arrays
from dmxnum.testing.assertions import same_bits
from test_mx_scale_modes import targeted_blocks

# torchao is a declared test dependency (the test extra): a missing one fails loudly
import torch  # noqa: E402
from torchao.prototype.mx_formats.config import ScaleCalculationMode  # noqa: E402
from torchao.prototype.mx_formats.constants import DTYPE_FP6_E2M3, DTYPE_FP6_E3M2  # noqa: E402
from torchao.prototype.mx_formats.mx_tensor import MXTensor  # noqa: E402

#: (e, m) -> torchao's element dtype
ELEMENT_DTYPES = {
    (4, 3): torch.float8_e4m3fn, (5, 2): torch.float8_e5m2, (2, 3): DTYPE_FP6_E2M3, (3, 2): DTYPE_FP6_E3M2,
    (2, 1): torch.float4_e2m1fn_x2,
}
SCALE_MODES = {"F": ScaleCalculationMode.FLOOR, "C": ScaleCalculationMode.CEIL, "E": ScaleCalculationMode.EVEN,
               "R": ScaleCalculationMode.RCEIL}


def torchao_cast(x: np.ndarray, fmt: MXFloat) -> np.ndarray:
    """torchao's emulated MX quantize-dequantize of ``x`` (blocks along the last axis)."""
    t = MXTensor.to_mx(torch.from_numpy(x), ELEMENT_DTYPES[(fmt.exp_bits, fmt.man_bits)], fmt.block_size,
                       scaling_mode=SCALE_MODES[fmt.scale_mode])
    return t.dequantize(torch.float32).numpy()


def lift_low_blocks(x: np.ndarray, fmt: MXFloat) -> np.ndarray:
    """``x`` with a block-opening element ``±2^(emax - 124)`` in every block whose
    shared exponent is -127 or that is all zero, so that every block has ``E > -127``."""
    x = x.copy()
    xb = x.reshape(x.shape[0], -1, fmt.block_size)
    amax = np.abs(xb).max(axis=-1).view(np.int32)
    low = (mx_shared_exponent(B.namespace(amax), amax, fmt) <= -127) | (amax == 0)
    xb[..., 0] = np.where(low, np.float32(2.0 ** (fmt.element_emax - 124)), xb[..., 0])
    return x


def _assert_equal(x: np.ndarray, fmt: MXFloat) -> None:
    ours = dmxnum.cast(x, fmt)
    theirs = torchao_cast(x, fmt)
    ok = same_bits(ours, theirs)
    if not ok.all():
        i = tuple(np.argwhere(~ok)[0])
        raise AssertionError(f"{fmt}: {int((~ok).sum())} differ from torchao; at {i}: x={x[i]!r} "
                             f"dmxnum={ours[i]!r} torchao={theirs[i]!r}")


@pytest.mark.parametrize("mode", ["F", "C", "E"])
@pytest.mark.parametrize("block", [16, 32])
@pytest.mark.parametrize("em", sorted(ELEMENT_DTYPES))
@settings(max_examples=12)
@given(data=st.data())
def test_floor_ceil_even_equal_torchao(em, block, mode, data) -> None:
    fmt = MXFloat(*em, block, -1, mode)
    rows = data.draw(st.integers(1, 4), label="rows")
    blocks = data.draw(st.integers(1, 3), label="blocks")
    x = data.draw(float32_arrays((rows, blocks * block), allow_nan=False, allow_inf=False, fmt=fmt), label="x")
    if data.draw(st.booleans(), label="gaussian"):  # real-tensor-like blocks at a random scale
        rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
        x = (rng.standard_normal(x.shape) * 2.0 ** rng.integers(-120, 120, (rows, 1))).astype(np.float32)
    _assert_equal(lift_low_blocks(x, fmt), fmt)


@pytest.mark.parametrize("em", sorted(ELEMENT_DTYPES))
def test_edge_blocks_equal_torchao(em) -> None:
    """Blocks led by each mode's edge magnitudes (powers of two, EVEN's carry
    thresholds up to 0xFF, float32 max: E = 128 - emax and Inf results)."""
    for mode in "FCE":
        for block in (16, 32):
            fmt = MXFloat(*em, block, -1, mode)
            _assert_equal(lift_low_blocks(targeted_blocks(fmt, seed=block, partial=False), fmt), fmt)


def test_overflow_to_inf_equals_torchao() -> None:
    x = np.zeros((1, 32), np.float32)
    x[0, :2] = [3.4e38, -1e38]
    for mode in "CE":
        fmt = MXFloat(2, 1, 32, -1, mode)
        assert torchao_cast(x, fmt)[0, 0] == np.inf
        _assert_equal(x, fmt)


def test_rceil_torchao_cpu_fallback_differs_just_above_a_power_of_two() -> None:
    """docs/compat.md: ``6144.0005`` (one ulp above ``6 * 2^10``) gives the quotient
    ``fl32(amax / 6) = 2^10 (1 + 2^-23)``; its exact RCEIL exponent is 11, but
    torchao's ``ceil(float log2)`` reads ``log2`` as exactly 10."""
    fmt = dmxnum.parse("MXFP4[E2M1]{32,-1}(R)")
    x = np.zeros((1, 32), np.float32)
    x[0, :3] = [np.nextafter(np.float32(6144.0), np.float32(np.inf)), 512.0, 1536.0]
    ours = dmxnum.cast(x, fmt)
    assert ours[0, :3].tolist() == [6144.0, 0.0, 2048.0]  # E = 11: 512 is a tie to 0, 1536 = 0.75 * 2^11 -> 1 * 2^11
    assert same_bits(ours, reference_cast(x, fmt)).all()
    assert torchao_cast(x, fmt)[0, :3].tolist() == [6144.0, 512.0, 1536.0]  # torchao: E = 10
