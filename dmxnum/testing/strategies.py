"""Hypothesis strategies for formats and float32 test data.

Composable in the style of ``hypothesis.extra.numpy``::

    from hypothesis import given, strategies as st
    from dmxnum.testing import formats, float32_arrays, arrays_for

    @given(formats(roundings="N"), float32_arrays())
    def test_unblocked(fmt, x): ...

    @given(st.data())
    def test_any(data):
        fmt = data.draw(formats())
        x = data.draw(arrays_for(fmt))        # block axis valid, partial blocks

The float32 data favour the values where numerics break: ±0, subnormals
(smallest, largest, random), powers of two, exact ties of common grids
(odd multiples of a power of two with few significant bits) and their
neighbours, the largest finite values of common formats, the overflow
thresholds just above them and twice them, 2^127 and float32 max, ±Inf, NaN
(several payloads), values clustered around one exponent per array (so
blocks have interesting spreads), and random finite bit patterns over all
exponents. Given a format (:func:`arrays_for`, or ``fmt=`` of
:func:`float32_arrays`), the arrays also favour values at and above that
format's largest value (the value, its float32 neighbours, the overflow tie,
twice it, 2^127, float32 max, ±Inf).

:func:`formats` draws extreme parameters now and then (about one draw in
five of each family): FP with ``e = 8``, the fewest mantissa bits (``m = 0``)
and a bias at either end of the valid range (the lowest puts the largest
value in float32's top binade ``[2^127, 2^128)``, the highest the smallest
value at ``2^-149``), signed or unsigned; XP with a fraction at the ends of
its range or at the power-of-two boundaries (``|f|`` near 126); SBFP with
such scalers and the narrowest or widest block integers.
"""

from __future__ import annotations

import functools
from typing import Iterable, Sequence, Union

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from ..formats.aliases import ALIASES
from ..formats.base import ROUNDINGS, Format
from ..formats.block import BlockFloatingPoint, MXInt
from ..formats.fixed import FixedPoint
from ..formats.floating import bias_range as fp_bias_range, SCHEMES, FloatingPoint
from ..formats.mx import ELEMENT_FORMATS, SCALE_MODES, MXFloat
from ..formats.nvfp4 import NVFP4
from ..formats.same import Same
from ..formats.scaled import ScaledBFP
from ..formats.families import LABELS

__all__ = [
    "FAMILIES", "formats", "float32_values", "float32_arrays", "shapes_for", "arrays_for",
    "fp_bias_range", "edge_magnitudes",
]

#: Format family names accepted by :func:`formats` (``families=``).
#: ``SAME`` plus the family labels of the family table (:mod:`dmxnum.formats.families`)
FAMILIES = ("SAME", *LABELS)
_BLOCKED = frozenset({"BFP", "MXINT", "MXFP", "SBFP", "NVFP4"})
_FIXED_ROUNDING = frozenset({"MXINT", "MXFP", "NVFP4"})  # always round to nearest-even

_SIGN = 0x8000_0000
_EXP = 0x7F80_0000
_MAN = 0x007F_FFFF
_INF = 0x7F80_0000
_MAX_FINITE = 0x7F7F_FFFF


# ---------------------------------------------------------------- formats


def _choice(values: Iterable[str] | str | None, allowed: Sequence[str], what: str) -> tuple[str, ...]:
    if values is None:
        return tuple(allowed)
    if isinstance(values, str):  # one name ("XP"), or letters ("NS")
        values = [values] if values.upper() in allowed else list(values)
    chosen = tuple(str(v).upper() for v in values)
    bad = [v for v in chosen if v not in allowed]
    if bad or not chosen:
        raise ValueError(f"{what} must be a non-empty selection of {', '.join(allowed)}, got {values!r}")
    return tuple(dict.fromkeys(chosen))


def _extreme(draw: st.DrawFn, one_in: int) -> bool:
    """Whether this draw takes extreme parameters (about ``1 / one_in`` of the
    draws; shrinks to the ordinary ones)."""
    return draw(st.integers(0, one_in - 1)) == one_in - 1


#: XP fractions worth hitting: powers 2^±f at the edge of the normal range
#: (the float paths use 2^f and 2^-f as constants; JAX needs quanta >= 2^-124)
_XP_FRAC_EDGES = (-127, -126, -125, -1, 0, 1, 23, 24, 123, 124, 125, 126, 127, 148, 149)


@st.composite
def _fixed_points(draw: st.DrawFn, roundings: tuple[str, ...], block_part: bool = False,
                  one_in: int = 3) -> FixedPoint:
    extreme = _extreme(draw, one_in)
    widths = st.integers(2, 25)
    bits = draw(st.one_of(st.sampled_from((2, 3, 24, 25)), widths) if extreme else widths)
    if block_part:  # SBFP block: clamped XP[n,0]
        return FixedPoint(bits, 0, True, draw(st.booleans()), draw(st.sampled_from(roundings)))
    if extreme:
        # the ends of the valid range bits-128 .. 149 (largest value in
        # float32's top binade; quantum 2^-149) and the power-of-two edges
        edges = sorted({bits - 127, 148, *(f for f in _XP_FRAC_EDGES if f >= bits - 128)})
        frac = draw(st.one_of(st.sampled_from((bits - 128, 149)), st.sampled_from(edges)))
    else:
        # the valid fraction range is bits-128 .. 149; favour the useful middle
        frac = draw(st.one_of(st.integers(-4, 24), st.integers(bits - 128, 149)))
    return FixedPoint(bits, frac, draw(st.booleans()), draw(st.booleans()), draw(st.sampled_from(roundings)))


@st.composite
def _floating_points(draw: st.DrawFn, roundings: tuple[str, ...], schemes: tuple[str, ...] = SCHEMES,
                     one_in: int = 3) -> FloatingPoint:
    scheme = draw(st.sampled_from(schemes))
    extreme = _extreme(draw, one_in)
    fewest_e = 1 if scheme == "A" else 2
    fewest_m = 1 if scheme == "E" else 0
    if extreme:
        # e = 8 (float32's exponent range) or any, the fewest mantissa bits
        # (m = 0, or 1 for scheme E) or any, and the ends of the bias range:
        # the lowest puts the largest value in float32's top binade
        # [2^127, 2^128), the highest the smallest value at 2^-149
        exp_bits = draw(st.one_of(st.just(8), st.integers(fewest_e, 8)))
        top_low, _ = fp_bias_range(exp_bits, 0, scheme)
        man_bits = draw(st.one_of(st.just(fewest_m), st.integers(fewest_m, min(23, 150 - top_low))))
        low, high = fp_bias_range(exp_bits, man_bits, scheme)
        bias = draw(st.sampled_from((low, low, min(low + 1, high), high)))
    else:
        exp_bits = draw(st.integers(fewest_e, 8))
        top_low, _ = fp_bias_range(exp_bits, 0, scheme)
        # mantissa bits for which some bias is valid: 150 - m >= top - 127
        man_bits = draw(st.integers(fewest_m, min(23, 150 - top_low)))
        low, high = fp_bias_range(exp_bits, man_bits, scheme)
        standard = (1 << (exp_bits - 1)) - 1
        biases = [st.integers(low, high)]
        if low <= standard <= high:
            biases.insert(0, st.just(standard))
        bias = draw(st.one_of(biases))
    return FloatingPoint(draw(st.booleans()), exp_bits, man_bits, bias, draw(st.booleans()),
                         draw(st.sampled_from(roundings)), scheme)


def formats(
    families: Iterable[str] | str | None = None,
    roundings: Iterable[str] | str | None = None,
    blocked: bool | None = None,
    *,
    max_block_size: int = 40,
    axes: Sequence[int] = (-2, -1, 0, 1),
) -> st.SearchStrategy[Format]:
    """A strategy for valid format values of the chosen families.

    Args:
        families: family names from :data:`FAMILIES` (``"XP"``, ``"FP"``,
            ``"BFP"``, ``"MXINT"``, ``"MXFP"``, ``"SBFP"``, ``"NVFP4"``, ``"SAME"``; one
            name or an iterable; case-insensitive). Default: every family
            but ``SAME``.
        roundings: the rounding letters the formats may use (``"N"``,
            ``"NZ"``, ``["N", "S"]``, ...). Default all of N, S, U, D, Z.
            The SBFP scaler never rounds stochastically (it uses the given
            letters other than ``S``, or ``N``). MXINT, MXFP and NVFP4 always
            round to nearest-even, so they are generated only when ``"N"``
            is allowed.
        blocked: ``True`` only blocked formats, ``False`` only unblocked,
            ``None`` both.
        max_block_size: block sizes are drawn from ``1..max_block_size``.
        axes: block axes to draw from.

    Every valid format can be generated: XP with any width 2..25 and any
    float32-exact fraction (clamped or not, symmetric or not), FP with every
    scheme, flush, signedness, ``m = 0`` and biases over the whole valid
    range (the standard bias ``2^(e-1)-1`` favoured), BFP, MXINT, all five MX
    elements with every scale mode (FLOOR, CEIL, EVEN, RCEIL), SBFP with any
    clamped block and S/E/A scaler, and NVFP4 single and two level (block
    sizes 16 and 1 favoured). The named
    formats of the alias table (FP16, BF16, INT8, BFP16_32_LD, ...) that fit
    the selection are drawn more often. About one draw in five of the XP, FP
    and SBFP families takes extreme parameters: FP with ``e = 8``, ``m = 0``
    and the lowest bias (largest value in float32's top binade) or the
    highest (smallest value ``2^-149``); XP with a fraction at the ends of its
    range or at the edges of the normal powers of two; SBFP with such a
    scaler or a 2-, 3-, 24- or 25-bit block.

    Raises:
        ValueError: unknown family or rounding, or a selection that leaves
            no family.
    """
    fams = _choice(families, FAMILIES, "families") if families is not None else FAMILIES[1:]
    rounds = _choice(roundings, ROUNDINGS, "roundings")
    if not isinstance(max_block_size, int) or max_block_size < 1:
        raise ValueError(f"max_block_size must be a positive integer, got {max_block_size!r}")
    axes = tuple(axes)
    if not axes or not all(isinstance(a, int) and not isinstance(a, bool) for a in axes):
        raise ValueError(f"axes must be a non-empty sequence of integers, got {axes!r}")
    chosen = [f for f in fams
              if (blocked is None or (f in _BLOCKED) == blocked) and (f not in _FIXED_ROUNDING or "N" in rounds)]
    if not chosen:
        raise ValueError(
            f"no format family is left for families={families!r}, roundings={roundings!r}, blocked={blocked!r}"
        )
    sizes = st.integers(1, max_block_size)
    axis = st.sampled_from(axes)
    scaler_rounds = tuple(r for r in rounds if r != "S") or ("N",)
    strategies = {
        "SAME": st.just(Same()),
        "XP": _fixed_points(rounds),
        "FP": _floating_points(rounds),
        "BFP": st.builds(BlockFloatingPoint, st.integers(2, 24), sizes, axis, st.booleans(), st.sampled_from(rounds)),
        "MXINT": st.builds(MXInt, st.one_of(st.just(8), st.integers(2, 24)), sizes, axis),
        "MXFP": st.sampled_from(sorted(ELEMENT_FORMATS)).flatmap(
            lambda em: st.builds(MXFloat, st.just(em[0]), st.just(em[1]), sizes, axis,
                                 st.sampled_from(tuple(SCALE_MODES)))),
        "NVFP4": st.builds(NVFP4, st.one_of(st.sampled_from([s for s in (16, 1) if s <= max_block_size]), sizes),
                           axis, st.booleans()),
        "SBFP": st.builds(ScaledBFP, _fixed_points(rounds, block_part=True, one_in=8),
                          _floating_points(scaler_rounds, ("S", "E", "A"), one_in=6), sizes, axis),
    }
    # the named formats of the alias table that fit the selection, drawn now and then
    for family, cls in (("XP", FixedPoint), ("FP", FloatingPoint), ("BFP", BlockFloatingPoint), ("MXINT", MXInt),
                        ("MXFP", MXFloat), ("NVFP4", NVFP4)):
        known = sorted((f for f in set(ALIASES.values()) if type(f) is cls and _fits(f, rounds, max_block_size, axes)),
                       key=str)
        if known:
            strategies[family] = st.one_of(strategies[family], st.sampled_from(known))
    # pick the family first, so every family is drawn about equally often
    return st.sampled_from(chosen).flatmap(strategies.__getitem__)


def _fits(fmt: Format, roundings: tuple[str, ...], max_block_size: int, axes: tuple[int, ...]) -> bool:
    """Whether a named format respects the rounding and block selection of :func:`formats`."""
    if fmt.rounding not in roundings:
        return False
    return not fmt.blocked or (fmt.block_size <= max_block_size and fmt.axis in axes)  # type: ignore[attr-defined]


# ---------------------------------------------------------------- float32 values


def _bits_of(value: float) -> int | None:
    """The float32 bit pattern of ``value`` if it is an exact finite float32, else None."""
    with np.errstate(over="ignore"):
        f = np.float32(value)
    if not np.isfinite(f) or float(f) != value:
        return None
    return int(f.view(np.uint32))


def edge_magnitudes() -> tuple[int, ...]:
    """Bit patterns (positive) of the limit values of common formats, sorted.

    For every FP and XP alias and every MX element format: the largest
    finite value, the overflow threshold half a quantum above it (a tie),
    twice the largest value, the smallest normal and smallest positive values
    and half of the latter (a tie with zero); each with its float32
    neighbours. Plus float32's own limits (max, smallest normal, largest and
    smallest subnormal), 2^127 and 1.
    """
    values: set[float] = {1.0, float(np.finfo(np.float32).max), 2.0**127, 2.0**-126, 2.0**-149,
                          2.0**-126 - 2.0**-149}
    fmts = {f for f in [*ALIASES.values(), *ELEMENT_FORMATS.values()] if isinstance(f, (FloatingPoint, FixedPoint))}
    for fmt in fmts:
        if isinstance(fmt, FloatingPoint):
            values |= {fmt.max_value, fmt.max_value + 2.0 ** (fmt.emax - fmt.man_bits - 1), 2 * fmt.max_value,
                       fmt.min_normal, fmt.min_positive, fmt.min_positive / 2}
        else:
            values |= {fmt.max_value, fmt.max_value + fmt.min_positive / 2, 2 * fmt.max_value,
                       fmt.min_positive / 2, -fmt.k_min * fmt.min_positive}
    bits: set[int] = set()
    for value in values:
        b = _bits_of(value)
        if b is None:
            continue
        bits.update(n for n in (b - 1, b, b + 1) if 0 < n <= _MAX_FINITE)
    return tuple(sorted(bits))


_EDGES = np.array(edge_magnitudes(), dtype=np.int64)
_EDGES_NORMAL = _EDGES[_EDGES >= 0x0080_0000]
#: mantissas of a few NaN payloads: quiet, signalling (smallest), all ones, another signalling
_NAN_MANTISSAS = np.array([0x40_0000, 0x00_0001, 0x7F_FFFF, 0x20_0000], dtype=np.int64)
_SUBNORMALS = np.array([1, _MAN, 0x40_0000, 2, 0x7F_FFFE], dtype=np.int64)

# Each element is decoded from 6 drawn bytes: the first picks a category
# through a 256-entry table built from these weights, the other 40 bits are
# its payload. All-zero bytes decode to +0, so shrinking leads to zeros.
# "limit" (only given a format): values at and above the format's largest.
_CATEGORIES = ("zero", "power2", "tie", "edge", "ordinary", "anything", "subnormal", "center", "inf", "nan",
               "limit")
_WEIGHTS = {"zero": 16, "power2": 20, "tie": 40, "edge": 24, "ordinary": 28, "anything": 28,
            "subnormal": 24, "center": 52, "inf": 12, "nan": 12, "limit": 40}
_BYTES = 6
_CHUNK = 16  # elements per drawn chunk of bytes
_MAX_DRAWN_ELEMENTS = 256  # beyond this, the rest come from a drawn seed (keeps examples small)


@functools.lru_cache(maxsize=None)
def _category_table(allow_nan: bool, allow_inf: bool, allow_subnormal: bool, center: bool,
                    limit: bool = False) -> np.ndarray:
    """Category index for each value of the selector byte."""
    off = {"nan": not allow_nan, "inf": not allow_inf, "subnormal": not allow_subnormal, "center": not center,
           "limit": not limit}
    ids = [i for i, name in enumerate(_CATEGORIES) if not off.get(name, False)]
    cumulative = np.cumsum([_WEIGHTS[_CATEGORIES[i]] for i in ids], dtype=np.float64)
    cumulative *= 256 / cumulative[-1]
    slots = np.searchsorted(cumulative, np.arange(256) + 0.5)
    return np.array(ids, dtype=np.int64)[slots]


def _decode(raw: bytes, allow_nan: bool, allow_inf: bool, allow_subnormal: bool,
            center: int | None, limits: np.ndarray | None = None) -> np.ndarray:
    """Decode ``len(raw) // 6`` float32 bit patterns (uint32) from drawn bytes.

    ``limits``: magnitude bit patterns of the "limit" category (none: off).
    """
    b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, _BYTES).astype(np.int64)
    has_limits = limits is not None and len(limits) > 0
    table = _category_table(allow_nan, allow_inf, allow_subnormal, center is not None, has_limits)
    cat = table[b[:, 0]]
    u = np.zeros(len(b), dtype=np.int64)  # 40 payload bits
    for i in range(1, _BYTES):
        u = (u << 8) | b[:, i]
    sign = (u >> 39) << 31
    exponent = 1 + (u % 254)
    mantissa = (u >> 8) & _MAN
    # ties: odd * 2^j with 1..24 significant bits (mostly <= 12), optionally nudged by one ulp
    width = np.where((u & 0xFF) < 192, 1 + (u & 0xFF) % 12, 1 + (u & 0xFF) % 24)
    middle = (u >> 8) & ((1 << 22) - 1)
    odd = np.where(width == 1, 1,
                   (1 << (width - 1)) | ((middle % (1 << np.maximum(width - 2, 0))) << 1) | 1)
    # the tie's exponent: half the time near the array's exponent (ties inside blocks), else anywhere
    t = (u >> 30) & 0xFF
    tie_exponent = np.where(t < 128, np.clip((center if center is not None else 129) - 3 + t % 7, 1, 254),
                            1 + t % 254)
    tie = (tie_exponent << 23) | ((odd << (24 - width)) & _MAN)
    delta = np.where((u >> 38) & (u >> 29) & 1, np.where((u >> 28) & 1, 1, -1), 0)  # a quarter nudged
    nudged = tie + delta
    tie = np.where((nudged >= 0x0080_0000) & (nudged <= _MAX_FINITE), nudged, tie)
    edges = _EDGES if allow_subnormal else _EDGES_NORMAL
    anything = u % (_MAX_FINITE + 1)
    if not allow_subnormal:
        anything = np.where((anything > 0) & (anything < 0x0080_0000), anything | 0x0080_0000, anything)
    subnormal = np.where(u & 7 < 3, _SUBNORMALS[(u >> 3) % len(_SUBNORMALS)], 1 + (u >> 3) % _MAN)
    near = np.clip((center if center is not None else 129) - 3 + u % 7, 1, 254)
    nan = _INF | np.where(u & 1, _NAN_MANTISSAS[(u >> 1) % len(_NAN_MANTISSAS)], 1 + (u >> 1) % _MAN)
    magnitude = np.choose(cat, [
        np.zeros_like(u),                      # zero
        exponent << 23,                        # power2
        tie,                                   # tie
        edges[u % len(edges)],                 # edge
        ((126 + u % 7) << 23) | mantissa,      # ordinary: about 0.5 .. 64
        anything,                              # anything finite
        subnormal,                             # subnormal
        (near << 23) | mantissa,               # center: within ±3 binades of the array's exponent
        np.full_like(u, _INF),                 # inf
        nan,                                   # nan
        limits[u % len(limits)] if has_limits else np.zeros_like(u),  # limit: at and above a format's max
    ])
    return (sign | magnitude).astype(np.uint32)


def _words(draw: st.DrawFn, count: int, allow_nan: bool, allow_inf: bool, allow_subnormal: bool,
           center: int | None, limits: np.ndarray | None = None) -> np.ndarray:
    """``count`` float32 bit patterns (uint32) drawn for one array."""
    drawn = min(count, _MAX_DRAWN_ELEMENTS)
    # fixed-size chunks: a single draw whose size follows the shape is often
    # replayed by Hypothesis as all zeros when the shape changes
    chunk = st.binary(min_size=_CHUNK * _BYTES, max_size=_CHUNK * _BYTES)
    raw = b"".join(draw(chunk) for _ in range(-(-drawn // _CHUNK)))[:drawn * _BYTES]
    if count > drawn:  # large arrays: the rest from a seeded generator, same distribution
        seed = draw(st.integers(0, 2**64 - 1))
        raw += np.random.default_rng(seed).bytes((count - drawn) * _BYTES)
    return _decode(raw, allow_nan, allow_inf, allow_subnormal, center, limits)


@st.composite
def _scalars(draw: st.DrawFn, allow_nan: bool, allow_inf: bool, allow_subnormal: bool) -> np.float32:
    raw = draw(st.binary(min_size=_BYTES, max_size=_BYTES))
    return _decode(raw, allow_nan, allow_inf, allow_subnormal, None).view(np.float32)[0]


def float32_values(
    *, allow_nan: bool = True, allow_inf: bool = True, allow_subnormal: bool = True
) -> st.SearchStrategy[np.float32]:
    """A strategy for ``numpy.float32`` scalars favouring edge values.

    Draws ±0, subnormals (smallest, largest, random), powers of two, exact
    ties of grids with 1..24 significant bits (mostly 1..12; some nudged by
    one ulp), the limits of common formats (65504, 448, 57344, 240, 6, 7.5,
    28, float32 max, 2^127, the overflow thresholds above them, twice them, ... see
    :func:`edge_magnitudes`), ordinary values of magnitude about 0.5..64,
    random finite bit patterns over every exponent, ±Inf and NaN (quiet and
    signalling payloads, both signs). Shrinks towards +0.
    """
    return _scalars(allow_nan, allow_inf, allow_subnormal)


ShapeArg = Union[int, Sequence[int], st.SearchStrategy, None]


def _shape_strategy(shape: ShapeArg, min_dims: int, max_dims: int, min_side: int,
                    max_side: int) -> st.SearchStrategy[tuple[int, ...]]:
    if shape is None:
        return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side, max_side=max_side)
    if isinstance(shape, st.SearchStrategy):
        return shape
    if isinstance(shape, int):
        return st.just((shape,))
    return st.just(tuple(shape))


def _limit_values(fmt: Format) -> list[float]:
    """Values at and above ``fmt``'s largest value (for SBFP also the block
    maxima that give its scaler's largest scales; for MXFP the element's
    limits in the top binades of the shared scale), where saturation and
    overflow handling break. Without float32's own limits."""
    values: list[float] = []
    top = getattr(fmt, "max_value", None)
    if isinstance(top, float) and np.isfinite(top) and top > 0:
        values += [top, 2 * top]
        if isinstance(fmt, FloatingPoint):
            values.append(top + 2.0 ** (fmt.emax - fmt.man_bits - 1))  # the overflow tie
        elif isinstance(fmt, FixedPoint):
            values.append(top + fmt.min_positive / 2)
        elif isinstance(fmt, (BlockFloatingPoint, MXInt)):
            bfp = fmt.as_bfp if isinstance(fmt, MXInt) else fmt
            values.append(top + 2.0 ** (127 - (bfp.man_bits - 2) - 1))
    if isinstance(fmt, ScaledBFP):
        scaler = _limit_values(fmt.scaler)
        values += scaler + [v * fmt.block.k_max for v in scaler]
    if isinstance(fmt, MXFloat):
        values += [v * 2.0**e for v in _limit_values(fmt.element) for e in (127 - fmt.element_emax, 120)]
        # the scale modes' edges: powers of two (CEIL, RCEIL), the element's
        # largest value times powers of two (RCEIL) and the mantissa-rounding
        # carry of EVEN, low and high in the range
        m = fmt.element.man_bits
        for e in (-126, -100, -3, 0, 5, 120, 126, 127):
            values += [2.0**e, fmt.element.max_value * 2.0**e, (2 - 2.0**-m) * 2.0**e,
                       (2 - 2.0 ** -(m + 1)) * 2.0**e]
    if isinstance(fmt, NVFP4):
        # the block-scale clamps: amax / 6 at 2^-6 (below it, the scale is
        # clamped up) and at 448 (above, clamped down), exact e4m3 scales
        values += [6 * 2.0**-6, 6 * 2.0**-7, 2688.0, 2 * 2688.0, 6 * 0.875 * 2.0**-6, 6 * 1.125, 6 * 2.0**-9]
    return values


def _limit_magnitudes(fmt: Format) -> tuple[int, ...]:
    """Bit patterns (positive, finite) at and above ``fmt``'s largest value:
    the largest value and its float32 neighbours, the overflow tie above it
    (FP, XP, BFP), twice it, float32's top binade (2^127) and float32 max;
    those that are float32 values."""
    bits: set[int] = set()
    for value in [float(np.finfo(np.float32).max), 2.0**127, *_limit_values(fmt)]:
        b = _bits_of(value)
        if b is not None:
            bits.update(n for n in (b - 1, b, b + 1) if 0 < n <= _MAX_FINITE)
    return tuple(sorted(bits))


@st.composite
def _arrays(draw: st.DrawFn, shapes: st.SearchStrategy[tuple[int, ...]],
            elements: st.SearchStrategy | None, allow_nan: bool, allow_inf: bool,
            allow_subnormal: bool, fmt: Format | None = None) -> np.ndarray:
    shape = tuple(draw(shapes))
    if elements is not None:
        return draw(hnp.arrays(np.float32, shape, elements=elements))
    limits = np.array(_limit_magnitudes(fmt) if fmt is not None else (), dtype=np.int64)
    # one exponent per array around which many elements cluster (given a
    # format, sometimes the exponent field of its largest value)
    centers = [st.integers(117, 137), st.integers(1, 254)]
    top = _bits_of(fmt.max_value) if fmt is not None and isinstance(getattr(fmt, "max_value", None), float) else None
    if top is not None and top >= 0x0080_0000:
        centers.append(st.just(top >> 23))
    center = draw(st.one_of(centers))
    # about half the arrays hold no NaN/Inf at all (one NaN or Inf poisons a whole block)
    specials = (allow_nan or allow_inf) and draw(st.booleans())
    count = int(np.prod(shape, dtype=np.int64))
    if not allow_subnormal:
        limits = limits[limits >= 0x0080_0000]
    if fmt is not None and allow_inf and specials:  # ±Inf among the values above max too
        limits = np.append(limits, _INF)
    words = _words(draw, count, allow_nan and specials, allow_inf and specials, allow_subnormal, center,
                   limits if len(limits) else None)
    return words.view(np.float32).reshape(shape)



def float32_arrays(
    shape: ShapeArg = None,
    *,
    min_dims: int = 1,
    max_dims: int = 3,
    min_side: int = 1,
    max_side: int = 8,
    elements: st.SearchStrategy | None = None,
    allow_nan: bool = True,
    allow_inf: bool = True,
    allow_subnormal: bool = True,
    fmt: Format | str | None = None,
) -> st.SearchStrategy[np.ndarray]:
    """A strategy for C-contiguous ``numpy.float32`` arrays favouring edge values.

    Args:
        shape: an int, a tuple, or a strategy of shapes (e.g.
            :func:`shapes_for`); default ``array_shapes(min_dims, max_dims,
            min_side, max_side)`` (``min_side=0`` adds empty arrays).
        elements: a strategy of float32-representable values to use instead
            of the edge-favouring default (then ``allow_*`` are ignored).
        allow_nan, allow_inf, allow_subnormal: include NaN, ±Inf and
            subnormals in the default elements.
        fmt: a format (value or shorthand) whose largest value the default
            elements also favour: the value itself, its float32 neighbours,
            the overflow tie above it, twice it, 2^127, float32 max (and
            ±Inf when allowed); some arrays then cluster around the binade
            of that value. :func:`arrays_for` passes its format.

    Every element is drawn independently (no background fill) from the
    distribution of :func:`float32_values`, plus, per array, values
    clustered within ±3 binades of one randomly chosen exponent, so that
    blocks mix magnitudes the way real tensors do. About half the arrays
    contain no NaN or Inf (even when allowed), so that blocked formats see
    finite blocks. NaN payloads and the sign
    of zero are preserved (the array is built from uint32 bit patterns).
    """
    if fmt is not None:
        from ..formats.grammar import parse

        fmt = parse(fmt)
    return _arrays(_shape_strategy(shape, min_dims, max_dims, min_side, max_side), elements,
                   allow_nan, allow_inf, allow_subnormal, fmt)


@st.composite
def _block_shapes(draw: st.DrawFn, block_size: int, axis: int, min_dims: int, max_dims: int,
                  max_side: int, max_blocks: int, max_elements: int) -> tuple[int, ...]:
    need = axis + 1 if axis >= 0 else -axis
    ndim = draw(st.integers(max(min_dims, need, 1), max(max_dims, need, 1)))
    # the block axis: up to max_blocks blocks, usually with a partial last one
    length = draw(st.integers(1, max(1, min(max_blocks * block_size, max_elements))))
    budget = max(1, max_elements // length)
    sides = []
    for _ in range(ndim - 1):
        side = draw(st.integers(1, max(1, min(max_side, budget))))
        budget = max(1, budget // side)
        sides.append(side)
    sides.insert(axis if axis >= 0 else ndim + axis, length)
    return tuple(sides)


def shapes_for(
    fmt: Format | str,
    *,
    min_dims: int = 1,
    max_dims: int = 3,
    max_side: int = 6,
    max_blocks: int = 3,
    max_elements: int = 512,
) -> st.SearchStrategy[tuple[int, ...]]:
    """A strategy for array shapes that ``fmt`` accepts.

    For a blocked format with block size ``b`` and axis ``d`` the shapes have
    enough dimensions for ``d`` (``ndim >= d+1`` for ``d >= 0``, ``>= -d``
    otherwise), a block-axis length in ``1..max_blocks*b`` (so mostly a
    partial last block; shrinks to a single one-element block) and at most
    ``max_elements`` elements. Other formats get ``array_shapes(min_dims,
    max_dims, 1, max_side)``. ``fmt`` may be a shorthand string.
    """
    from ..formats.grammar import parse

    fmt = parse(fmt)
    if not fmt.blocked:
        return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=1, max_side=max_side)
    return _block_shapes(fmt.block_size, fmt.axis, min_dims, max_dims, max_side, max_blocks,  # type: ignore[attr-defined]
                         max_elements)


def arrays_for(
    fmt: Format | str,
    *,
    max_dims: int = 3,
    max_side: int = 6,
    max_blocks: int = 3,
    max_elements: int = 512,
    elements: st.SearchStrategy | None = None,
    allow_nan: bool = True,
    allow_inf: bool = True,
    allow_subnormal: bool = True,
) -> st.SearchStrategy[np.ndarray]:
    """:func:`float32_arrays` with shapes from :func:`shapes_for` ``(fmt)``.

    The default elements also favour values at and above ``fmt``'s largest
    value (``float32_arrays(fmt=fmt)``): the value itself, its float32
    neighbours, the overflow tie, twice it, 2^127, float32 max, and ±Inf when
    allowed, where saturation and overflow handling break; some arrays
    cluster around the binade of that largest value.
    """
    shapes = shapes_for(fmt, max_dims=max_dims, max_side=max_side, max_blocks=max_blocks, max_elements=max_elements)
    return float32_arrays(shapes, elements=elements, allow_nan=allow_nan, allow_inf=allow_inf,
                          allow_subnormal=allow_subnormal, fmt=fmt)
