"""Oracle tests: FP formats against ml_dtypes, exhaustively over float16 bit
patterns and over 2^20 float32 bit patterns covering every exponent."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

import dmxnum
from dmxnum.testing.backends import BACKENDS, to_backend


def _float32_patterns() -> np.ndarray:
    """2^20 float32 bit patterns: every exponent x every sign x 2^11 mantissas, plus all float16 values."""
    rng = np.random.default_rng(20261125)
    exps = np.arange(256, dtype=np.uint32)
    signs = np.array([0, 1], dtype=np.uint32)
    mant = rng.integers(0, 2**23, size=(256, 2, 2048), dtype=np.uint32)
    mant[:, :, 0] = 0
    mant[:, :, 1] = 1
    mant[:, :, 2] = 2**23 - 1
    mant[:, :, 3] = 2**22  # exact ties for many formats
    mant[:, :, 4:64] = (rng.integers(0, 2**10, size=(256, 2, 60), dtype=np.uint32) << 13) | (1 << 12)
    bits = (signs[None, :, None] << 31) | (exps[:, None, None] << 23) | mant
    f16 = np.arange(2**16, dtype=np.uint16).view(np.float16).astype(np.float32)
    return np.concatenate([bits.reshape(-1).view(np.float32), f16])


X32 = _float32_patterns()
ALL_F16 = np.arange(2**16, dtype=np.uint16).view(np.float16).astype(np.float32)

IEEE = [
    ("FP[1|5|10,15](_NI)", np.float16),
    ("FP[1|8|7,127](_NI)", ml_dtypes.bfloat16),
    ("FP[1|5|2,15](_NI)", ml_dtypes.float8_e5m2),
    ("FP[1|4|3,7](_NI)", ml_dtypes.float8_e4m3),
]
IN_RANGE = [
    ("FP[1|4|3,7](_NE)", ml_dtypes.float8_e4m3fn),
    ("FP[1|3|2,3](_NA)", ml_dtypes.float6_e3m2fn),
    ("FP[1|2|3,1](_NA)", ml_dtypes.float6_e2m3fn),
    ("FP[1|2|1,1](_NA)", ml_dtypes.float4_e2m1fn),
]


def _oracle(x: np.ndarray, dtype) -> np.ndarray:
    with np.errstate(all="ignore"):
        return x.astype(dtype).astype(np.float32)


def _check(shorthand: str, dtype, x: np.ndarray, backend: str, mask=None) -> None:
    got = np.asarray(dmxnum.cast(to_backend(x, backend), shorthand))
    want = _oracle(x, dtype)
    same = (got.view(np.uint32) == want.view(np.uint32)) | (np.isnan(got) & np.isnan(want))
    if mask is not None:
        same |= ~mask
    bad = np.flatnonzero(~same)
    assert bad.size == 0, f"{bad.size} mismatches, e.g. x={x[bad[:4]]} got={got[bad[:4]]} want={want[bad[:4]]}"


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shorthand,dtype", IEEE, ids=[s for s, _ in IEEE])
@pytest.mark.parametrize("inputs", ["float16-exhaustive", "float32-2^20"])
def test_ieee_formats_equal_ml_dtypes(backend: str, shorthand: str, dtype, inputs: str) -> None:
    x = ALL_F16 if inputs == "float16-exhaustive" else X32
    _check(shorthand, dtype, x, backend)


def _saturated(x: np.ndarray, fmt) -> np.ndarray:
    """Inputs the format saturates (rounded magnitude above max or ±Inf)."""
    return ~np.isfinite(x) | (np.abs(x) > fmt.max_value + 2.0 ** (fmt.emax - fmt.man_bits - 1))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shorthand,dtype", IN_RANGE, ids=[s for s, _ in IN_RANGE])
@pytest.mark.parametrize("inputs", ["float16-exhaustive", "float32-2^20"])
def test_ocp_formats_equal_ml_dtypes_in_range(backend: str, shorthand: str, dtype, inputs: str) -> None:
    x = ALL_F16 if inputs == "float16-exhaustive" else X32
    fmt = dmxnum.parse(shorthand)
    # ml_dtypes turns out-of-range values to NaN (e4m3fn) or saturates differently, and NaN to -0 for FP6/FP4
    mask = ~_saturated(x, fmt) & ~np.isnan(x)
    _check(shorthand, dtype, x, backend, mask)


def test_patterns_cover_every_exponent() -> None:
    exps = np.unique((X32.view(np.uint32) >> 23) & 0xFF)
    assert exps.size == 256 and X32.size >= 2**20
