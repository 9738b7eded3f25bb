"""The reference against independent implementations: ml_dtypes, gfloat and NumPy's IEEE float32."""

from __future__ import annotations

from fractions import Fraction

import ml_dtypes
import numpy as np
import pytest
from gfloat import Domain, FormatInfo, RoundMode, round_ndarray
from gfloat import formats as gf
from gfloat import quantize_block, compute_scale_amax
from hypothesis import given, strategies as st

from dmxnum.formats import FixedPoint, FloatingPoint, MXFloat, ScaledBFP
from dmxnum.reference import cast, round_to_float32
from dmxnum.reference.float32 import decode_bits, encode_bits
from reference_samples import assert_same_bits, sample

FP = FloatingPoint


def _limits(fmt: FloatingPoint) -> tuple[int, int]:
    return 1 - fmt.bias, fmt.emax


# ----------------------------------------------------------------------------- ml_dtypes
IEEE_CASES = [
    (FP(True, 5, 10, 15, False, "N", "I"), np.float16),
    (FP(True, 8, 7, 127, False, "N", "I"), ml_dtypes.bfloat16),
    (FP(True, 5, 2, 15, False, "N", "I"), ml_dtypes.float8_e5m2),
    (FP(True, 4, 3, 7, False, "N", "I"), ml_dtypes.float8_e4m3),
]


@pytest.mark.parametrize("fmt,dtype", IEEE_CASES, ids=lambda v: str(v))
def test_ieee_formats_equal_ml_dtypes_on_every_input(fmt, dtype):
    x = sample(np.random.default_rng(1), *_limits(fmt), fmt.man_bits, n=1500)
    with np.errstate(over="ignore", invalid="ignore"):
        expected = x.astype(dtype).astype(np.float32)
    assert_same_bits(cast(x, fmt), expected, x)


@given(st.lists(st.floats(width=32), min_size=1, max_size=16))
def test_float16_and_bfloat16_equal_ml_dtypes_on_hypothesis_floats(values):
    x = np.array(values, dtype=np.float32)
    for fmt, dtype in IEEE_CASES[:2]:
        with np.errstate(over="ignore"):
            expected = x.astype(dtype).astype(np.float32)
        assert_same_bits(cast(x, fmt), expected, x)


def test_e4m3_scheme_e_equals_float8_e4m3fn_where_it_does_not_saturate():
    fmt = FP(True, 4, 3, 7, False, "N", "E")
    x = sample(np.random.default_rng(2), *_limits(fmt), fmt.man_bits)
    with np.errstate(invalid="ignore"):
        expected = x.astype(ml_dtypes.float8_e4m3fn).astype(np.float32)
    got = cast(x, fmt)
    overflowed = np.isnan(expected) & ~np.isnan(x)  # ml_dtypes: NaN, the SPEC: saturate
    assert overflowed.sum() > 100
    assert_same_bits(got[~overflowed], expected[~overflowed], x[~overflowed])
    np.testing.assert_array_equal(np.abs(got[overflowed]), 448.0)
    np.testing.assert_array_equal(np.signbit(got[overflowed]), np.signbit(x[overflowed]))


@pytest.mark.parametrize(
    "fmt,dtype",
    [
        (FP(True, 3, 2, 3, False, "N", "A"), ml_dtypes.float6_e3m2fn),
        (FP(True, 2, 3, 1, False, "N", "A"), ml_dtypes.float6_e2m3fn),
        (FP(True, 2, 1, 1, False, "N", "A"), ml_dtypes.float4_e2m1fn),
    ],
    ids=lambda v: str(v),
)
def test_ocp_fp6_fp4_equal_ml_dtypes_inside_range(fmt, dtype):
    x = sample(np.random.default_rng(3), *_limits(fmt), fmt.man_bits)
    x = x[np.isfinite(x) & (np.abs(x) <= fmt.max_value)]
    expected = x.astype(dtype).astype(np.float32)
    assert_same_bits(cast(x, fmt), expected, x)


# ----------------------------------------------------------------------------- gfloat
GF_MODES = {"N": RoundMode.TiesToEven, "U": RoundMode.TowardPositive,
            "D": RoundMode.TowardNegative, "Z": RoundMode.TowardZero}


def gfloat_info(fmt: FloatingPoint) -> tuple[FormatInfo, bool]:
    """The gfloat format matching a signed, non-flushing ``fmt``, and gfloat's ``sat`` flag."""
    m = fmt.man_bits
    if fmt.scheme in ("S", "I"):  # IEEE layout: top exponent code is Inf/NaN
        domain, high_nans = Domain.Extended, 2**m - 1
    elif fmt.scheme == "E":
        domain, high_nans = Domain.Finite, 1
    else:
        domain, high_nans = Domain.Finite, 0
    info = FormatInfo(
        str(fmt), 1 + fmt.exp_bits + m, m + 1, bias=fmt.bias, is_signed=True, domain=domain,
        has_nz=True, num_high_nans=high_nans, has_subnormals=True, is_twos_complement=False,
    )
    return info, fmt.scheme != "I"


def _gfloat_round(fmt: FloatingPoint, x: np.ndarray) -> np.ndarray:
    info, sat = gfloat_info(fmt)
    assert info.max == fmt.max_value
    with np.errstate(over="ignore", invalid="ignore"):
        return round_ndarray(info, x.astype(np.float64), GF_MODES[fmt.rounding], sat).astype(np.float32)


NAMED = [
    (5, 10, 15, "I"), (8, 7, 127, "I"), (5, 2, 15, "I"), (4, 3, 7, "I"),
    (4, 3, 7, "E"), (5, 2, 15, "S"), (3, 2, 3, "A"), (2, 3, 1, "A"), (2, 1, 1, "A"),
    # m = 0 (ties to the even exponent code) and e = 1
    (3, 0, 3, "I"), (4, 0, 7, "S"), (2, 0, 1, "A"), (8, 0, 127, "S"), (1, 2, 0, "A"), (1, 0, 0, "A"),
]


@pytest.mark.parametrize("rounding", ["N", "U", "D", "Z"])
@pytest.mark.parametrize("e,m,b,scheme", NAMED, ids=str)
def test_named_formats_equal_gfloat_for_every_rounding(e, m, b, scheme, rounding):
    fmt = FP(True, e, m, b, False, rounding, scheme)
    x = sample(np.random.default_rng(4), *_limits(fmt), m, n=300)
    if scheme == "A":
        x = x[~np.isnan(x)]  # no NaN code: gfloat raises
    assert_same_bits(cast(x, fmt), _gfloat_round(fmt, x), x)


def _random_formats(seed: int, count: int) -> list[FloatingPoint]:
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < count:
        scheme = str(rng.choice(["S", "I", "E", "A"]))
        e = int(rng.integers(1, 9))
        m = int(rng.integers(0, 11))
        if (e == 1 and scheme != "A") or (scheme == "E" and m == 0):
            continue
        top = 2**e - (2 if scheme in ("S", "I") else 1)
        b = int(rng.integers(top - 127, 150 - m + 1))
        out.append(FP(True, e, m, b, False, str(rng.choice(list(GF_MODES))), scheme))
    return out


@pytest.mark.parametrize("fmt", _random_formats(5, 24), ids=str)
def test_random_formats_equal_gfloat(fmt):
    """Random widths, biases (incl. extreme ones), schemes, m = 0 and e = 1 included."""
    x = sample(np.random.default_rng(6), *_limits(fmt), fmt.man_bits, n=150)
    if fmt.scheme == "A":
        x = x[~np.isnan(x)]
    assert_same_bits(cast(x, fmt), _gfloat_round(fmt, x), x)


@pytest.mark.parametrize("e,m", [(4, 3), (5, 2), (3, 2), (2, 3), (2, 1)])
def test_mxfp_blocks_equal_gfloat_quantize_block(e, m):
    """Finite blocks with amax well inside float32 (gfloat scales in float64)."""
    fmt = MXFloat(e, m, 32, -1)
    gf_info = {(4, 3): gf.format_info_mxfp8_e4m3, (5, 2): gf.format_info_mxfp8_e5m2,
               (3, 2): gf.format_info_mxfp6_e3m2, (2, 3): gf.format_info_mxfp6_e2m3,
               (2, 1): gf.format_info_mxfp4_e2m1}[(e, m)]
    rng = np.random.default_rng(7)
    blocks = []
    for _ in range(40):
        top = rng.integers(-60, 60)
        mags = np.ldexp(rng.random(32), rng.integers(top - 20, top + 1, 32))
        vals = (mags * rng.choice([-1.0, 1.0], 32)).astype(np.float32)
        vals[rng.random(32) < 0.1] = 0.0
        blocks.append(vals)
    x = np.stack(blocks)
    expected = np.stack([
        quantize_block(gf_info, b.astype(np.float64), compute_scale_amax).astype(np.float32) for b in blocks
    ])
    assert_same_bits(cast(x, fmt), expected, x)


# ----------------------------------------------------------------------------- NumPy IEEE float32
@given(st.floats(allow_nan=False, allow_infinity=False, width=64))
def test_round_to_float32_equals_numpy_conversion_from_float64(v):
    got = round_to_float32(Fraction(v), negative_zero=np.signbit(v))
    with np.errstate(over="ignore"):
        want = np.float32(v)
    assert np.array(got).view(np.uint32) == np.array(want).view(np.uint32)


@given(st.integers(0, 2**32 - 1))
def test_decode_encode_round_trip_every_bit_pattern(bits):
    x = decode_bits(bits)
    back = encode_bits(x)
    if x.is_nan:
        assert np.isnan(np.array(bits, np.uint32).view(np.float32))
    else:
        assert back == bits
        assert float(np.array(bits, np.uint32).view(np.float32)) == (
            float(x.value) if x.is_finite else (-np.inf if x.negative else np.inf)
        )


def _numpy_sbfp(x: np.ndarray, n: int, rounding_fn) -> np.ndarray:
    """SBFP with a float32-identity scaler, computed with NumPy float32 scalar IEEE operations."""
    k_max = np.float32(2 ** (n - 1) - 1)
    amax = np.max(np.abs(x))
    s = amax / k_max  # one IEEE float32 division
    if s == 0:
        return np.where(np.signbit(x), np.float32(-0.0), np.float32(0.0))
    out = []
    for v in x:
        with np.errstate(over="ignore"):
            t = v / s
        k = np.clip(rounding_fn(t), -k_max, k_max)
        r = np.float32(k) * s
        out.append(np.copysign(r, v) if r == 0 else r)
    return np.array(out, dtype=np.float32)


@pytest.mark.parametrize("n", [2, 4, 8, 16, 25])
@pytest.mark.parametrize("rounding,fn", [("N", np.rint), ("D", np.floor), ("U", np.ceil), ("Z", np.trunc)])
def test_sbfp_with_float32_scaler_equals_numpy_float32_ops(n, rounding, fn):
    """Scaler FP[1|8|23,127](_N) is the float32 identity on finite values, so every fl32 is NumPy's."""
    fmt = ScaledBFP(FixedPoint(n, 0, True, True, rounding), FP(True, 8, 23, 127, False, "N", "S"), 8, -1)
    rng = np.random.default_rng(8)
    blocks = []
    for _ in range(30):
        top = int(rng.integers(-140, 125))
        mags = np.ldexp(rng.random(8), rng.integers(max(top - 30, -149), top + 1, 8))
        blocks.append((mags * rng.choice([-1.0, 1.0], 8)).astype(np.float32))
    blocks.append(np.array([3.4e38, -3.4e38, 1, -1, 0, -0.0, 1e38, 2e-45], np.float32))
    x = np.stack(blocks)
    expected = np.stack([_numpy_sbfp(b, n, fn) for b in blocks])
    assert_same_bits(cast(x, fmt), expected, x)
