"""The Hypothesis strategies of dmxnum.testing (SPEC section 9)."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import dmxnum.testing as dt
from dmxnum.errors import FormatParameterError
from dmxnum.formats import (
    NVFP4, BlockFloatingPoint, FixedPoint, FloatingPoint, MXFloat, MXInt, Same, ScaledBFP,
)
from dmxnum.formats.floating import SCHEMES
from dmxnum.formats.grammar import parse
from dmxnum.testing.strategies import edge_magnitudes, fp_bias_range

FAMILY_TYPES = {
    "SAME": Same, "XP": FixedPoint, "FP": FloatingPoint, "BFP": BlockFloatingPoint,
    "MXINT": MXInt, "MXFP": MXFloat, "SBFP": ScaledBFP, "NVFP4": NVFP4,
}


def _collect(strategy, n=200):
    """Draw ``n`` examples deterministically (reproducible statistics)."""
    out = []

    @settings(max_examples=n, database=None, derandomize=True)
    @given(strategy)
    def run(value):
        out.append(value)

    run()
    return out


# ------------------------------------------------------------------ formats


def _roundings(fmt):
    if isinstance(fmt, ScaledBFP):
        return {fmt.block.rounding}
    return {getattr(fmt, "rounding", "N")}


@pytest.mark.parametrize("family", dt.FAMILIES)
@given(data=st.data())
def test_formats_of_one_family(family, data):
    fmt = data.draw(dt.formats(family))
    assert type(fmt) is FAMILY_TYPES[family]
    assert parse(str(fmt)) == fmt
    if fmt.blocked:
        assert 1 <= fmt.block_size <= 40
        assert fmt.axis in (-2, -1, 0, 1)


def test_default_families_and_coverage():
    fmts = _collect(dt.formats(), 300)
    kinds = {type(f) for f in fmts}
    assert kinds == set(FAMILY_TYPES.values()) - {Same}
    fps = [f for f in fmts if isinstance(f, FloatingPoint)]
    assert {f.scheme for f in fps} == set(SCHEMES)
    assert any(not f.signed for f in fps) and any(f.flush for f in fps) and any(f.man_bits == 0 for f in fps)
    xps = [f for f in fmts if isinstance(f, FixedPoint)]
    assert any(not f.clamp for f in xps) and any(not f.symmetric for f in xps)


def test_new_formats_cover_scale_modes_levels_and_block_sizes():
    mx = _collect(dt.formats("MXFP"), 200)
    assert {f.scale_mode for f in mx} == {"F", "C", "E", "R"}
    nv = _collect(dt.formats("NVFP4"), 200)
    assert {f.tensor_scale for f in nv} == {False, True}
    assert {1, 16} <= {f.block_size for f in nv} and len({f.block_size for f in nv}) > 4


@given(dt.formats(roundings="NZ", blocked=True, max_block_size=4, axes=(0,)))
def test_formats_filters(fmt):
    assert fmt.blocked
    assert fmt.block_size <= 4 and fmt.axis == 0
    assert _roundings(fmt) <= {"N", "Z"}


@given(dt.formats(families=["sbfp"], roundings=["S"]))
def test_sbfp_scaler_never_stochastic(fmt):
    assert fmt.block.rounding == "S"
    assert fmt.scaler.rounding == "N" and fmt.scaler.scheme in ("S", "E", "A")


def test_formats_rejects_bad_selections():
    with pytest.raises(ValueError, match="families must be"):
        dt.formats(families=["XQ"])
    with pytest.raises(ValueError, match="roundings must be"):
        dt.formats(roundings="NQ")
    with pytest.raises(ValueError, match="no format family is left"):
        dt.formats(families=["MXFP"], roundings="S")
    with pytest.raises(ValueError, match="no format family is left"):
        dt.formats(families="XP", blocked=True)
    with pytest.raises(ValueError, match="max_block_size"):
        dt.formats(max_block_size=0)


def test_fp_bias_range_matches_the_constructor():
    for e in range(1, 9):
        for m in range(24):
            for scheme in SCHEMES:
                if (e == 1 and scheme != "A") or (scheme == "E" and m == 0):
                    continue
                low, high = fp_bias_range(e, m, scheme)
                for bias in (low - 1, low, high, high + 1):
                    ok = low <= bias <= high
                    try:
                        FloatingPoint(True, e, m, bias, False, "N", scheme)
                    except FormatParameterError:
                        assert not ok, (e, m, scheme, bias)
                    else:
                        assert ok, (e, m, scheme, bias)


# ------------------------------------------------------------------ float32 data


def _classes(x: np.ndarray) -> dict[str, np.ndarray]:
    bits = x.view(np.uint32).ravel().astype(np.int64)
    exp, man = (bits >> 23) & 0xFF, bits & 0x7FFFFF
    significand = np.where((exp > 0) & (exp < 255), man | (1 << 23), 0)
    lowest = significand & -significand  # lowest set bit
    return {
        "zero": (exp == 0) & (man == 0),
        "negzero": bits == 0x80000000,
        "subnormal": (exp == 0) & (man != 0),
        "nan": (exp == 255) & (man != 0),
        "inf": (exp == 255) & (man == 0),
        "power2": (significand == 1 << 23),
        # halfway between neighbours of a grid with 1..11 fraction bits (FP16 and narrower)
        "tie": (lowest >= 1 << 12) & (lowest <= 1 << 22),
        "large": (exp >= 254),
    }


def test_arrays_favour_edge_values():
    arrays = _collect(dt.float32_arrays(), 300)
    assert all(a.dtype == np.float32 and 1 <= a.ndim <= 3 and a.flags.c_contiguous for a in arrays)
    stats = {k: [] for k in _classes(arrays[0])}
    for a in arrays:
        for k, v in _classes(a).items():
            stats[k].append(v.any())
    share = {k: float(np.mean(v)) for k, v in stats.items()}
    # share of arrays containing at least one value of each class
    for kind, least in [("zero", 0.4), ("negzero", 0.2), ("subnormal", 0.4), ("nan", 0.12), ("inf", 0.12),
                        ("power2", 0.4), ("tie", 0.4), ("large", 0.2)]:
        assert share[kind] >= least, (kind, share)
    # and some arrays are entirely finite (blocks not all poisoned by NaN)
    finite = np.mean([np.isfinite(a).all() for a in arrays])
    assert finite >= 0.3, finite


def test_array_options_exclude_values():
    for a in _collect(dt.float32_arrays(allow_nan=False, allow_inf=False, allow_subnormal=False), 150):
        c = _classes(a)
        assert not (c["nan"].any() or c["inf"].any() or c["subnormal"].any())


@given(dt.float32_arrays(shape=st.just((2, 3)), elements=st.floats(-1, 1, width=32)))
def test_arrays_with_given_shape_and_elements(x):
    assert x.shape == (2, 3) and x.dtype == np.float32
    assert np.all(np.abs(x) <= 1)


@given(dt.float32_arrays(5, min_side=0))
def test_arrays_int_shape(x):
    assert x.shape == (5,)


def test_values_are_float32_scalars_of_every_kind():
    values = _collect(dt.float32_values(), 400)
    assert all(type(v) is np.float32 for v in values)
    c = _classes(np.array(values, dtype=np.float32))
    for kind in ("zero", "subnormal", "nan", "inf", "power2", "tie"):
        assert c[kind].any(), kind


def test_edge_catalogue_holds_format_limits():
    edges = {float(np.uint32(b).view(np.float32)) for b in edge_magnitudes()}
    for value in (65504.0, 65520.0, 448.0, 464.0, 240.0, 57344.0, 61440.0, 6.0, 7.0, 7.5, 28.0, 30.0, 127.0,
                  float(np.finfo(np.float32).max), 2.0**-149, 2.0**-126, 2.0**-126 - 2.0**-149, 2.0**-24, 2.0**-25,
                  float(np.nextafter(np.float32(65504), np.float32(np.inf)))):
        assert value in edges, value
    assert all(0 < b <= 0x7F7FFFFF for b in edge_magnitudes())


# ------------------------------------------------------------------ shapes for blocked formats


@given(st.data())
def test_arrays_for_blocked_formats(data):
    fmt = data.draw(dt.formats(blocked=True))
    x = data.draw(dt.arrays_for(fmt))
    assert x.dtype == np.float32
    assert -x.ndim <= fmt.axis < x.ndim
    assert x.size <= 512 and x.size >= 1


def test_shapes_for_gives_partial_blocks():
    fmt = BlockFloatingPoint(8, 5, 1)
    shapes = _collect(dt.shapes_for(fmt), 150)
    assert all(len(s) >= 2 and 1 <= s[1] <= 15 for s in shapes)
    assert np.mean([s[1] % 5 != 0 for s in shapes]) >= 0.5
    assert any(s[1] % 5 == 0 for s in shapes)  # whole blocks too
    deep = _collect(dt.shapes_for("MXINT8{4,-3}"), 50)
    assert all(len(s) >= 3 for s in deep)
    flat = _collect(dt.shapes_for("FP16"), 50)
    assert all(1 <= len(s) <= 3 for s in flat)


# ------------------------------------------------------------------ exports


def test_exports():
    for name in ("formats", "float32_arrays", "float32_values", "shapes_for", "arrays_for"):
        assert callable(getattr(dt, name)) and name in dt.__all__
    assert "sparsities" in dt.__all__ and "assert_bit_exact" in dt.__all__
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        dt.nope  # noqa: B018


@pytest.mark.parametrize("name, module", [("sparsities", "dmxnum.testing.sparsity_strategies"),
                                          ("assert_bit_exact", "dmxnum.testing.assertions")])
def test_lazy_exports_resolve_when_present(name, module):
    if importlib.util.find_spec(module) is None:
        with pytest.raises(ModuleNotFoundError):
            getattr(dt, name)
    else:
        assert callable(getattr(dt, name))


@settings(max_examples=20)
@given(dt.float32_arrays(shape=(64, 40)))
def test_large_fixed_shape(x):
    # beyond 256 elements the rest comes from a drawn seed: same distribution, still varied
    assert x.shape == (64, 40) and x.dtype == np.float32
    assert len(np.unique(x.view(np.uint32)[40:])) > 100


def test_nan_payloads_and_signs_are_kept():
    words = np.concatenate([a.view(np.uint32).ravel() for a in _collect(dt.float32_arrays(), 300)])
    nans = words[(words & 0x7F800000) == 0x7F800000]
    nans = nans[(nans & 0x7FFFFF) != 0]
    assert np.any(nans & 0x400000 == 0)  # signalling payloads
    assert np.any(nans >> 31 == 1) and np.any(nans >> 31 == 0)


# ------------------------------------------------------------------ extremes


def test_fp_formats_favour_extreme_parameters():
    fps = [f for f in _collect(dt.formats(families="FP"), 300) if isinstance(f, FloatingPoint)]
    share = lambda pred: np.mean([pred(f) for f in fps])  # noqa: E731
    assert share(lambda f: f.exp_bits == 8) >= 0.1
    assert share(lambda f: f.man_bits == 0) >= 0.1
    assert share(lambda f: f.emax == 127) >= 0.1  # largest value in float32's top binade
    assert share(lambda f: f.emin - f.man_bits == -149) >= 0.02  # smallest value 2^-149
    assert share(lambda f: not f.signed) >= 0.2
    assert any(f.exp_bits == 8 and f.man_bits == 0 and f.emax == 127 and not f.signed for f in fps)


def test_xp_and_sbfp_formats_favour_extreme_parameters():
    xps = _collect(dt.formats(families="XP"), 300)
    assert np.mean([f.frac == f.bits - 128 for f in xps]) >= 0.02  # largest value in the top binade
    assert np.mean([f.frac == 149 for f in xps]) >= 0.02
    assert any(f.frac in (-127, -126, 126, 127) for f in xps)
    sbfps = _collect(dt.formats(families="SBFP"), 300)
    assert np.mean([f.scaler.emax == 127 for f in sbfps]) >= 0.04
    assert np.mean([f.block.bits in (2, 25) for f in sbfps]) >= 0.05


@pytest.mark.parametrize("fmt", ["FP[1|8|0,127](_Z)", "FP[0|8|0,127](_N)", "FP[1|5|0,-97](_N)", "FP8_E4M3FN",
                                 "XP[8,3](CSN)", "XP[25,-103](CSN)", "BFP[8|8]{16,-1}(SN)", "MXFP4_E2M1",
                                 "SBFP<XP[2,0](C_N)><FP[0|8|0,127](_N)>{2,-1}"])
def test_arrays_for_reach_the_format_max_and_beyond(fmt):
    f = parse(fmt)
    arrays = _collect(dt.arrays_for(f), 200)
    with np.errstate(over="ignore"):
        top = np.float32(f.max_value) if np.isfinite(np.float32(f.max_value)) else None
        wanted = {"f32max": np.finfo(np.float32).max, "2^127": np.float32(2.0**127), "inf": np.float32(np.inf)}
        if top is not None:
            wanted |= {"max": top, "next": np.nextafter(top, np.float32(np.inf))}
            if np.isfinite(np.float32(2 * float(top))):
                wanted["twice"] = np.float32(2 * float(top))
    seen = np.abs(np.concatenate([a.ravel() for a in arrays]))
    for name, value in wanted.items():
        assert np.any(seen == value), (fmt, name, value)
    if top is not None:  # values at or above max turn up in a good share of the arrays
        assert np.mean([np.any(np.abs(a) >= top) for a in arrays]) >= 0.3


def test_float32_arrays_take_a_format():
    arrays = _collect(dt.float32_arrays(fmt="FP[1|5|0,-97](_N)", allow_inf=False), 200)
    seen = np.abs(np.concatenate([a.ravel() for a in arrays]))
    assert np.any(seen == np.float32(2.0**127)) and np.any(seen == np.nextafter(np.float32(2.0**127), np.inf))
    assert not np.isinf(seen).any()


def test_arrays_for_limits_respect_the_options():
    for a in _collect(dt.arrays_for("XP[8,149](CSN)", allow_nan=False, allow_inf=False, allow_subnormal=False), 100):
        c = _classes(a)
        assert not (c["nan"].any() or c["inf"].any() or c["subnormal"].any())
