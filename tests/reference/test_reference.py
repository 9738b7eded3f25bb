"""The reference on the SPEC's worked examples and on hand-computed cases.

Every expected value here was computed by hand from SPEC section 3 (the
derivation is in the comment next to it), not by running the reference.
"""

from __future__ import annotations

from fractions import Fraction

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, strategies as st

from dmxnum.errors import MissingRandomnessError, UnsupportedDtypeError
from dmxnum.formats import (
    BlockFloatingPoint as BFP,
    FixedPoint as XP,
    FloatingPoint as FP,
    MXFloat,
    MXInt,
    Same,
    ScaledBFP,
)
from dmxnum.reference import cast, round_to_float32
from dmxnum.reference.float32 import floor_log2
from reference_samples import assert_same_bits, edge_values

NAN, INF = np.nan, np.inf
FP16_I = FP(True, 5, 10, 15, False, "N", "I")


def f32(values) -> np.ndarray:
    return np.array(values, dtype=np.float32)


def check(fmt, x, expected, random_bits=None):
    x = f32(x)
    assert_same_bits(cast(x, fmt, random_bits=random_bits), f32(expected), x)


# ----------------------------------------------------------------------------- SPEC worked examples
WORKED = [
    ("FP[1|4|3,7](_NE)", [448, 464, 465, -1e9, INF], [448, 448, 448, -448, 448]),
    ("FP[1|2|1,1](_NA)", [0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5], [0, 1, 1, 2, 2, 4, 4]),
    ("FP[1|5|10,15](_NI)", [65519.99, 65520, 2.0**-25, 1.5 * 2.0**-24], [65504, INF, 0, 2.0**-23]),
    ("FP[1|5|10,15](_N)", [65520], [65504]),
    ("FP[1|5|10,15](FN)", [2.0**-15], [0]),
    ("MXFP4[E2M1]{32,-1}", [6, 5, 2.5, 0.25, 0.75, 1.25, -5, -0.25] + [0] * 24,
     [6, 4, 2, 0, 1, 1, -4, -0.0] + [0] * 24),
    ("MXFP8[E4M3]{32,-1}", [485, 475, 400, -485, -475, -450, 2.0**-6, -(2.0**-6)] + [0] * 24,
     [448, 448, 384, -448, -448, -448, 2.0**-6, -(2.0**-6)] + [0] * 24),
    ("BFP[4|8]{4,-1}(SN)", [1.0, 0.3, -0.26, 0.1, 3.0, -0.7, 0.0, -0.0, 0.001],
     [1.0, 0.25, -0.25, 0, 3.0, -0.5, 0, -0.0, 0.0009765625]),
    ("XP[4,1](CSN)", [0.25, 0.75, -5, INF], [0, 1, -3.5, 3.5]),
    ("XP[4,1](C_N)", [-5], [-4]),
]


@pytest.mark.parametrize("shorthand,x,expected", WORKED, ids=[w[0] for w in WORKED])
def test_spec_worked_examples(shorthand, x, expected):
    check(shorthand, x, expected)


@pytest.mark.parametrize("shorthand", ["MXFP8[E4M3]{32,-1}", "MXFP4[E2M1]{32,-1}"])
@pytest.mark.parametrize("bad", [INF, -INF, NAN])
def test_spec_any_nonfinite_makes_the_mx_block_nan(shorthand, bad):
    x = f32([1.0, 2.0, bad] + [0.5] * 29 + [1.0, 2.0])  # second block is partial and finite
    out = cast(x, shorthand)
    assert np.isnan(out[:32]).all()
    assert_same_bits(out[32:], f32([1.0, 2.0]))


# ----------------------------------------------------------------------------- directed roundings on negatives
@pytest.mark.parametrize(
    "rounding,expected",
    [
        # t = x / 0.25 = -1.2, -0.4, -1.5, -2.5, 2.5
        ("N", [-0.25, -0.0, -0.5, -0.5, 0.5]),
        ("U", [-0.25, -0.0, -0.25, -0.5, 0.75]),
        ("D", [-0.5, -0.25, -0.5, -0.75, 0.5]),
        ("Z", [-0.25, -0.0, -0.25, -0.5, 0.5]),
    ],
)
def test_fixed_point_directed_roundings(rounding, expected):
    check(XP(8, 2, True, True, rounding), [-0.3, -0.1, -0.375, -0.625, 0.625], expected)


@pytest.mark.parametrize(
    "rounding,expected",
    [
        # FP16 (q = 2^-10 near 1, 2^-24 below 2^-14): t = -1024.25, -1024.75, -0.25, 1024.25
        ("N", [-1.0, -(1 + 2.0**-10), -0.0, 1.0]),
        ("U", [-1.0, -1.0, -0.0, 1 + 2.0**-10]),
        ("D", [-(1 + 2.0**-10), -(1 + 2.0**-10), -(2.0**-24), 1.0]),
        ("Z", [-1.0, -1.0, -0.0, 1.0]),
    ],
)
def test_floating_point_directed_roundings(rounding, expected):
    x = [-(1 + 2.0**-12), -(1 + 3 * 2.0**-12), -(2.0**-26), 1 + 2.0**-12]
    check(FP(True, 5, 10, 15, False, rounding, "S"), x, expected)


@pytest.mark.parametrize(
    "rounding,expected",
    [("U", [1.0, -0.25, -0.25, 0.25]), ("D", [1.0, -0.5, -0.5, 0.0]), ("Z", [1.0, -0.25, -0.25, 0.0])],
)
def test_bfp_directed_roundings(rounding, expected):
    # amax 1 -> E = 0, q = 2^(0 - 2) = 0.25; t = 4, -1.2, -1.04, 0.4
    check(BFP(4, 4, -1, True, rounding), [1.0, -0.3, -0.26, 0.1], expected)


# ----------------------------------------------------------------------------- FP overflow columns
OVERFLOW_X = [1e9, -1e9, 70000, -70000, INF, -INF, 65519.99, -65519.99]
M = 65504.0


@pytest.mark.parametrize(
    "rounding,expected",
    [
        ("N", [INF, -INF, INF, -INF, INF, -INF, M, -M]),
        ("Z", [M, -M, M, -M, INF, -INF, M, -M]),
        # 65519.99 / 32 = 2047.4999: U -> 2048 (overflow), D -> 2047
        ("U", [INF, -M, INF, -M, INF, -INF, INF, -M]),
        ("D", [M, -INF, M, -INF, INF, -INF, M, -INF]),
    ],
)
def test_ieee_scheme_overflow_depends_on_direction(rounding, expected):
    check(FP(True, 5, 10, 15, False, rounding, "I"), OVERFLOW_X, expected)


def test_ieee_scheme_stochastic_overflow_goes_to_infinity():
    fmt = FP(True, 5, 10, 15, False, "S", "I")
    # words 0: k = ceil(t); words 0xFFFFFFFF: k = floor(t) (phi <= 1 - 2^-23 here)
    check(fmt, OVERFLOW_X, [INF, -INF, INF, -INF, INF, -INF, INF, -M], np.zeros(8, np.uint32))
    check(fmt, OVERFLOW_X, [INF, -INF, INF, -INF, INF, -INF, M, -INF], np.full(8, 0xFFFFFFFF, np.uint32))


@pytest.mark.parametrize("scheme", ["S", "E", "A"])
@pytest.mark.parametrize("rounding", ["N", "U", "D", "Z"])
def test_saturating_schemes_saturate_overflow_and_inf(scheme, rounding):
    fmt = FP(True, 4, 3, 7, False, rounding, scheme)
    m = {"S": 240.0, "E": 448.0, "A": 480.0}[scheme]  # 1.875*2^7, 1.75*2^8, 1.875*2^8
    check(fmt, [1e9, -1e9, INF, -INF, NAN], [m, -m, m, -m, NAN])


# ----------------------------------------------------------------------------- m = 0: ties to the even exponent code
def test_m0_ties_go_to_the_even_exponent_code():
    # FP[1|3|0,3](_NI): values 2^-2 (code 1) .. 2^3 (code 6); a tie 1.5 * 2^e sits between
    # codes e+3 and e+4 and goes to the even one; below 2^-2 the tie 2^-3 is between 0 (code 0) and 2^-2.
    x = [0.125, 0.375, 0.75, 1.5, 3, 6, 12, -0.125, -1.5, 11.9, 12.1, 16, INF]
    expected = [0, 0.5, 0.5, 2, 2, 8, 8, -0.0, -2, 8, INF, INF, INF]
    check(FP(True, 3, 0, 3, False, "N", "I"), x, expected)
    # decision: the tie 12 = 1.5 * 2^emax rounds to max (code 6 is even), as gfloat does,
    # although IEEE 754's overflow threshold clause would give Inf
    check(FP(True, 3, 0, 3, False, "N", "S"), [12, 12.1, 16, INF], [8, 8, 8, 8])


def test_m0_scheme_a_tie_above_max_saturates():
    # FP[1|2|0,1](_NA): values 1 (code 1), 2 (code 2), 4 (code 3); 6 = 1.5 * 4 -> code 4 (even) = 8 -> max
    check(FP(True, 2, 0, 1, False, "N", "A"), [0.5, 1.5, 3, 6, 7, -3], [0, 2, 2, 4, 4, -2])


# ----------------------------------------------------------------------------- unsigned, flush
def test_unsigned_fp_sends_every_input_at_or_below_zero_to_plus_zero():
    # FP[0|4|3,7](_N): max = 1.875 * 2^7 = 240; 3.3 / 0.25 = 13.2 -> 13
    x = [-1, -0.0, -INF, NAN, 0, INF, 3.3, 1000, -(2.0**-149)]
    check(FP(False, 4, 3, 7, False, "N", "S"), x, [0, 0, 0, NAN, 0, 240, 3.25, 240, 0])
    check(FP(False, 5, 2, 15, False, "N", "I"), [1e9, INF, -INF, -5], [INF, INF, 0, 0])


def test_flush_is_decided_on_the_input():
    below = 2.0**-14 - 2.0**-24  # rounds up to 2^-14 in FP16, but |x| < 2^-14: flushed
    check(FP(True, 5, 10, 15, True, "N", "S"), [below, -(2.0**-15), 2.0**-14, -(2.0**-14)],
          [0, -0.0, 2.0**-14, -(2.0**-14)])
    check(FP(True, 5, 10, 15, False, "N", "S"), [below], [below])
    check(FP(True, 5, 10, 15, True, "U", "S"), [2.0**-20, -(2.0**-20)], [0, -0.0])


# ----------------------------------------------------------------------------- fixed point ranges
def test_unclamped_fixed_point_overflows_to_infinity():
    # XP[2,-126](__N): q = 2^126; t = 3.5 -> 4 -> 2^128 = Inf; t = 3 stays (unclamped); ties to even
    fmt = XP(2, -126, False, False, "N")
    x = [3.5 * 2.0**126, -3.5 * 2.0**126, 3 * 2.0**126, 2.5 * 2.0**126, -2.5 * 2.0**126, INF, -INF,
         2.0**125, 1.5 * 2.0**126, -(2.0**100)]
    expected = [INF, -INF, 3 * 2.0**126, 2.0**127, -(2.0**127), INF, -INF, 0, 2.0**127, -0.0]
    check(fmt, x, expected)
    check(XP(2, -126, False, False, "U"), [3.25 * 2.0**126], [INF])
    check(XP(2, -126, False, False, "D"), [3.25 * 2.0**126], [3 * 2.0**126])
    check(XP(8, 0, False, True, "N"), [1000.4, -1000000.5, NAN], [1000, -1000000, NAN])


def test_asymmetric_and_symmetric_ranges():
    x = [-8.4, -9, 7.6, -INF, INF, -7.5, NAN]
    check(XP(4, 0, True, False, "N"), x, [-8, -8, 7, -8, 7, -8, NAN])
    check(XP(4, 0, True, True, "N"), x, [-7, -7, 7, -7, 7, -7, NAN])
    # BFP[4|8]{2}: block amax 1.9 -> E = 0, q = 0.25, t = -7.6 -> -8 (asymmetric) / -7 (symmetric)
    check(BFP(4, 2, -1, False, "N"), [-1.9, 1.0, -1.0, 0.1], [-2.0, 1.0, -1.0, 0])
    check(BFP(4, 2, -1, True, "N"), [-1.9, 1.0, -1.0, 0.1], [-1.75, 1.0, -1.0, 0])


# ----------------------------------------------------------------------------- blocks along axes
BLOCK_X = f32([
    [1.0, -0.26, NAN],
    [0.3, 0.1, 1.0],
    [3.0, 0.0, 2.0],
    [-0.7, -0.0, 2.0],
    [0.001, 5.0, 7.0],
])
# blocks of 2 down each column: rows (0,1), (2,3), (4)
BLOCK_EXPECTED = f32([
    [1.0, -0.25, NAN],          # col 0: E=0, q=1/4; col 1: amax .26 -> E=-2, q=2^-4: -4.16 -> -4
    [0.25, 0.125, NAN],         # 0.1 / 2^-4 = 1.6 -> 2; col 2 block holds NaN
    [3.0, 0.0, 2.0],            # col 0: E=1, q=1/2; col 1: all-zero block keeps signs
    [-0.5, -0.0, 2.0],          # -0.7 / 0.5 = -1.4 -> -1
    [0.0009765625, 5.0, 7.0],   # partial blocks: 0.001 -> E=-10, q=2^-12, 4.096 -> 4
])


@pytest.mark.parametrize("axis", [0, -2])
def test_bfp_partial_blocks_along_axis_0(axis):
    assert_same_bits(cast(BLOCK_X, BFP(4, 2, axis, True, "N")), BLOCK_EXPECTED, BLOCK_X)


@pytest.mark.parametrize("axis", [1, -1])
def test_bfp_partial_blocks_along_axis_1(axis):
    x = np.ascontiguousarray(BLOCK_X.T)
    assert_same_bits(cast(x, BFP(4, 2, axis, True, "N")), BLOCK_EXPECTED.T, x)


def test_blocks_along_the_middle_axis_of_a_3d_array():
    x = np.stack([BLOCK_X, -BLOCK_X])  # (2, 5, 3), blocks along axis 1
    expected = np.stack([BLOCK_EXPECTED, -BLOCK_EXPECTED])
    assert_same_bits(cast(x, BFP(4, 2, 1, True, "N")), expected, x)
    assert_same_bits(cast(x, MXInt(4, 2, -2)), expected, x)


def test_bfp_shared_exponent_is_clamped():
    fmt = BFP(8, 2, -1, True, "N")
    # E = max(floor(log2 amax), -127): q = 2^(-127-6); 2^-140 -> t = 2^-7 -> 0; -2^-149 -> -0
    check(fmt, [2.0**-140, 0, 2.0**-130, -(2.0**-149)], [0, 0, 2.0**-130, -0.0])
    # just below a power of two: amax = 2 - 2^-23 -> E = 0, q = 2^-6: t = 128 - 2^-17 -> 128 -> clamp 127
    check(fmt, [2 - 2.0**-23, -1.0], [127 / 64, -1.0])
    # 3e38 -> E = 127, q = 2^121: t = 112.84 -> 113
    check(fmt, [3e38, 1.0], [113 * 2.0**121, 0])
    # asymmetric at E = 127: k = -2^(n-1) gives -2^(n-1) * 2^(127-(n-2)) = -2^128, which is -Inf in float32
    check(BFP(4, 2, -1, False, "N"), [-3.4e38, 1.0, 3.4e38, -1.0], [-INF, 0, 1.75 * 2.0**127, -0.0])
    # q = 2^125: t = -7.04 -> D -8 -> -Inf; t = -6.8 -> D -7
    check(BFP(4, 2, -1, False, "D"), [-1.76 * 2.0**127, -1.7 * 2.0**127], [-INF, -1.75 * 2.0**127])
    check(BFP(4, 2, -1, True, "D"), [-1.8 * 2.0**127], [-1.75 * 2.0**127])


def test_mx_scale_exponent_lower_clamp_and_zero_blocks():
    fmt = MXFloat(2, 1, 2, -1)
    # E = max(floor(log2 amax) - 2, -127) = -127: 2^-130 * 2^127 = 1/8 -> 0; 2^-128 -> 1/2 (subnormal)
    check(fmt, [2.0**-130, 0, 2.0**-128, -(2.0**-130), 0.0, -0.0], [0, 0, 2.0**-128, -0.0, 0, -0.0])


def test_mxint_casts_as_bfp_sn():
    rng = np.random.default_rng(11)
    x = (rng.standard_normal((3, 70)) * np.exp(rng.standard_normal((3, 70)) * 4)).astype(np.float32)
    assert_same_bits(cast(x, MXInt(6, 32, -1)), cast(x, BFP(6, 32, -1, True, "N")), x)


# ----------------------------------------------------------------------------- SBFP by hand
def test_sbfp_hand_examples():
    e8m0_up = FP(False, 8, 0, 127, False, "U", "S")
    # amax 1: 1/7 -> up to 0.25; x/s = 4, 1.2, -1.04, 0.4
    check(ScaledBFP(XP(4, 0, True, True, "N"), e8m0_up, 4, -1), [1.0, 0.3, -0.26, 0.1], [1.0, 0.25, -0.25, 0])
    # amax 10: 10/7 -> E4M3 1.375; 10/1.375 = 7.27 -> 7; -3/1.375 = -2.18 -> -2
    e4m3 = FP(True, 4, 3, 7, False, "N", "E")
    check(ScaledBFP(XP(4, 0, True, True, "N"), e4m3, 2, -1), [10, -3], [9.625, -2.75])
    # scale rounded down: 1/7 -> 0.125; -1/0.125 = -8 (asymmetric keeps it, symmetric clamps to -7)
    e8m0_down = FP(False, 8, 0, 127, False, "D", "S")
    check(ScaledBFP(XP(4, 0, True, False, "N"), e8m0_down, 2, -1), [-1.0, 0.3], [-1.0, 0.25])
    check(ScaledBFP(XP(4, 0, True, True, "N"), e8m0_down, 2, -1), [-1.0, 0.3], [-0.875, 0.25])


def test_sbfp_zero_scale_nan_block_and_zero_block():
    # amax / 127 = 7.9e-9 < 2^-14: the flushing FP16 scaler gives s = 0 -> signed zeros;
    # last block: 1/127 -> FP16 1032 * 2^-17; 1 / s = 127.006 -> 127; 127 * 1032 * 2^-17 = 131064 / 2^17
    fmt = ScaledBFP(XP(8, 0, True, True, "N"), FP(True, 5, 10, 15, True, "N", "S"), 2, -1)
    check(fmt, [1e-6, -1e-7, 0.0, -0.0, NAN, 1.0, 1.0], [0, -0.0, 0, -0.0, NAN, NAN, 131064 / 2**17])


# ----------------------------------------------------------------------------- stochastic rounding
def _words(value: int, n: int) -> np.ndarray:
    return np.full(n, value, dtype=np.uint32)


STOCHASTIC_PAIRS = [
    (XP(8, 2, True, True, "S"), XP(8, 2, True, True, "U"), XP(8, 2, True, True, "D")),
    (XP(6, -3, False, False, "S"), XP(6, -3, False, False, "U"), XP(6, -3, False, False, "D")),
    (FP(True, 5, 10, 15, False, "S", "S"), FP(True, 5, 10, 15, False, "U", "S"), FP(True, 5, 10, 15, False, "D", "S")),
    (FP(True, 4, 3, 7, False, "S", "E"), FP(True, 4, 3, 7, False, "U", "E"), FP(True, 4, 3, 7, False, "D", "E")),
    (BFP(5, 8, -1, True, "S"), BFP(5, 8, -1, True, "U"), BFP(5, 8, -1, True, "D")),
    tuple(ScaledBFP(XP(6, 0, True, True, r), FP(True, 5, 2, 15, False, "N", "S"), 8, -1) for r in "SUD"),
]


def _stochastic_inputs(positive_only: bool) -> np.ndarray:
    rng = np.random.default_rng(12)
    x = (rng.standard_normal(256) * np.exp(rng.standard_normal(256) * 3)).astype(np.float32)
    x = np.concatenate([x, edge_values()[:15] if positive_only else edge_values()])
    x = x[~np.isnan(x)]
    return np.abs(x) if positive_only else x


@pytest.mark.parametrize("s_fmt,u_fmt,d_fmt", STOCHASTIC_PAIRS, ids=lambda f: str(f))
def test_stochastic_with_zero_words_rounds_up_whenever_phi_is_positive(s_fmt, u_fmt, d_fmt):
    x = _stochastic_inputs(positive_only=False)
    assert_same_bits(cast(x, s_fmt, _words(0, x.size)), cast(x, u_fmt), x)


@pytest.mark.parametrize("s_fmt,u_fmt,d_fmt", STOCHASTIC_PAIRS, ids=lambda f: str(f))
def test_stochastic_with_all_ones_words_is_floor_on_positive_inputs(s_fmt, u_fmt, d_fmt):
    # for t >= 0 from a float32 x and a power-of-two quantum, phi <= 1 - 2^-24: never above the threshold
    x = _stochastic_inputs(positive_only=True)
    assert_same_bits(cast(x, s_fmt, _words(0xFFFFFFFF, x.size)), cast(x, d_fmt), x)


def test_stochastic_all_ones_words_round_up_only_when_phi_exceeds_one_minus_2_pow_24():
    fmt = XP(8, 0, True, True, "S")
    # t = -2^-25: floor -1, phi = 1 - 2^-25 > 1 - 2^-24 -> 0 (-0); t = -2^-24: phi = 1 - 2^-24 -> -1
    x = [-(2.0**-25), -(2.0**-24), -(2.0**-30), 2 - 2.0**-23]
    check(fmt, x, [-0.0, -1, -0.0, 1], _words(0xFFFFFFFF, 4))
    # FP16 subnormals: t = -2^-100 / 2^-24 -> phi = 1 - 2^-76 -> -0 (D would give -2^-24)
    check(FP(True, 5, 10, 15, False, "S", "I"), [-(2.0**-100)], [-0.0], _words(0xFFFFFFFF, 1))


def test_stochastic_threshold_uses_the_top_24_bits_of_the_word():
    fmt = XP(8, 0, True, True, "S")
    x = [1 + 2.0**-20] * 3  # phi = 16 * 2^-24
    words = np.array([16 << 8, (16 << 8) | 0xFF, (15 << 8) | 0xFF], dtype=np.uint32)
    check(fmt, x, [1, 1, 2], words)  # phi > threshold is strict; the low 8 bits are ignored
    # int32 words holding the same bits give the same result
    check(fmt, x, [1, 1, 2], words.view(np.int32))


def test_stochastic_rounding_is_unbiased_on_average():
    rng = np.random.default_rng(13)
    n = 4000
    words = rng.integers(0, 2**32, n, dtype=np.uint32)
    out = cast(np.full(n, 0.3, np.float32), XP(8, 2, True, True, "S"), words)  # t = 1.2: {0.25, 0.5}
    assert set(np.unique(out)) == {0.25, 0.5}
    assert abs(out.astype(np.float64).mean() - 0.3) < 0.008  # 5 sigma: 0.1 / sqrt(4000) * 5
    third = np.float32(1 / 3)
    out = cast(np.full(n, -third, np.float32), FP(True, 5, 10, 15, False, "S", "S"), words)
    assert set(np.unique(out)).issubset({np.float32(-1366 / 4096), np.float32(-1365 / 4096)})
    assert abs(out.astype(np.float64).mean() + float(third)) < 5 * 2.0**-13 / np.sqrt(n)


def test_stochastic_block_words_follow_the_elements_along_any_axis():
    # BFP(SS) with words 0 at one element only: that element rounds up, the others down
    x = f32([[0.3, 0.3], [0.3, 0.3], [1.0, 1.0]])
    words = np.full((3, 2), 0xFFFFFFFF, np.uint32)
    words[1, 0] = 0
    # blocks down axis 0: amax 1 -> q = 2^-2 (n = 4); t = 1.2 -> 1, the word-0 element -> 2
    check(BFP(4, 3, 0, True, "S"), x, [[0.25, 0.25], [0.5, 0.25], [1.0, 1.0]], words)


# ----------------------------------------------------------------------------- input handling and errors
def test_stochastic_formats_need_random_bits():
    x = f32([0.3, 0.7])
    for fmt in [XP(8, 2, True, True, "S"), FP(True, 5, 10, 15, False, "S", "S"), BFP(4, 2, -1, True, "S"),
                ScaledBFP(XP(4, 0, True, True, "S"), FP(True, 4, 3, 7, False, "N", "E"), 2, -1), "XP[8,0](CSS)"]:
        with pytest.raises(MissingRandomnessError, match="random_bits"):
            cast(x, fmt)
    with pytest.raises(ValueError, match="shape"):
        cast(x, XP(8, 2, True, True, "S"), np.zeros(3, np.uint32))
    with pytest.raises(ValueError, match="2\\^32"):
        cast(x, XP(8, 2, True, True, "S"), np.array([0, 2**32]))
    with pytest.raises(TypeError, match="float64"):
        cast(x, XP(8, 2, True, True, "S"), np.zeros(2))
    # a plain integer list works too: word 0 -> up, 2^32 - 1 -> down (t = 1.2, 2.8)
    assert_same_bits(cast(x, XP(8, 2, True, True, "S"), [0, 2**32 - 1]), f32([0.5, 0.5]))
    # deterministic formats ignore words
    assert_same_bits(cast(x, FP16_I, np.zeros(2, np.uint32)), cast(x, FP16_I))


def test_blocked_formats_need_an_axis_that_exists():
    with pytest.raises(ValueError, match="ndim"):
        cast(np.float32(1.0), BFP(4, 2, -1, True, "N"))
    with pytest.raises(ValueError, match="axis 2"):
        cast(np.ones((2, 2), np.float32), MXFloat(4, 3, 2, 2))
    with pytest.raises(ValueError, match="axis -3"):
        cast(np.ones((2, 2), np.float32), MXInt(8, 2, -3))


def test_empty_and_zero_dimensional_inputs():
    for shape in [(0,), (3, 0), (0, 4)]:
        for fmt in [FP16_I, BFP(4, 2, -1, True, "N"), MXFloat(2, 1, 4, 0)]:
            out = cast(np.zeros(shape, np.float32), fmt)
            assert out.shape == shape and out.dtype == np.float32
    out = cast(np.float32(65520.0), FP16_I)
    assert out.shape == () and out == np.inf


def test_input_dtypes():
    with pytest.raises(UnsupportedDtypeError, match="int32"):
        cast(np.array([1, 2], np.int32), FP16_I)
    with pytest.raises(TypeError, match="bool"):
        cast(np.array([True]), FP16_I)
    x64 = np.array([0.1, 1e300, -1e-300, 1.5 * 2.0**-150, np.nan, -np.inf], np.float64)
    with np.errstate(over="ignore"):
        assert_same_bits(cast(x64, Same()), x64.astype(np.float32))
    for dtype in [np.float16, ml_dtypes.bfloat16]:
        x = np.array([0.1, -3.5, 65504, -0.0, np.inf], dtype)
        assert_same_bits(cast(x, Same()), x.astype(np.float32))
    nan_payload = np.array([0x7FC01234], np.uint32).view(np.float32)
    assert cast(nan_payload, Same()).view(np.uint32)[0] == 0x7FC01234  # SAME: untouched


# ----------------------------------------------------------------------------- exact helpers
def test_round_to_float32_ties_subnormals_and_overflow():
    one, ulp = Fraction(1), Fraction(1, 2**23)
    max32 = (2**24 - 1) * Fraction(2) ** 104
    cases = [
        (one + ulp / 2, 1.0),                       # tie -> even
        (one + 3 * ulp / 2, 1 + 2.0**-22),          # tie -> even (up)
        (Fraction(1, 2**150), 0.0),                 # half the smallest subnormal: tie -> 0
        (Fraction(3, 2**150), 2.0**-148),           # 1.5 subnormal ulps -> 2
        (-Fraction(1, 2**151), -0.0),               # underflow keeps the sign
        (max32 + Fraction(2) ** 103, np.inf),       # max + half ulp: tie -> 2^128 -> Inf
        (max32 + Fraction(2) ** 103 - 1, float(np.finfo(np.float32).max)),
        (Fraction(1, 3), float(np.float32(1 / 3))),
    ]
    for value, want in cases:
        got = round_to_float32(value)
        assert np.array(got).view(np.uint32) == np.array(np.float32(want)).view(np.uint32), value
    assert np.signbit(round_to_float32(0, negative_zero=True))


@given(st.floats(min_value=1e-300, max_value=1e300))
def test_floor_log2_is_exact(v):
    mantissa, exponent = np.frexp(v)  # v = mantissa * 2^exponent, 0.5 <= mantissa < 1
    assert floor_log2(Fraction(v)) == exponent - 1


FORMAT_REFERENCE_MODULES = ["rounding", "float32", "fixed", "floating", "block", "mx", "scaled", "nvfp4", "cast"]


@pytest.mark.parametrize("name", FORMAT_REFERENCE_MODULES)
def test_the_format_reference_imports_no_kernel_code(name):
    """Only the format values (data), the errors and the standard library / NumPy are imported."""
    import ast
    import importlib

    module = importlib.import_module(f"dmxnum.reference.{name}")
    tree = ast.parse(open(module.__file__).read())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            imported.add("." * node.level + (node.module or ""))
    allowed = {"__future__", "fractions", "functools", "math", "typing", "numpy", "dmxnum",
               "..errors", "..formats", "..formats.families"} | {f".{m}" for m in FORMAT_REFERENCE_MODULES}
    assert imported <= allowed, imported - allowed
