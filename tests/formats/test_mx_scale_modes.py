"""MX scale modes ``(C)`` CEIL, ``(E)`` EVEN, ``(R)`` RCEIL (and ``F`` FLOOR):
the shared exponent rule and every MXFP kernel path against the exact
reference, on NumPy, JAX (jit, vmap, grad) and PyTorch (eager, compiled),
with data aimed at each mode's edges; the worked examples of
``docs/formats.md``; encode/decode round trips."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

import dmxnum
from dmxnum import _backend as B
from dmxnum.formats.mx import ELEMENT_FORMATS, MXFloat
from dmxnum.kernels.rules import mx_shared_exponent
from dmxnum.reference import cast as reference_cast
from dmxnum.reference.float32 import decode_bits
from dmxnum.reference.mx import shared_exponent as reference_shared_exponent
from dmxnum.testing import arrays_for, formats
from dmxnum.testing.assertions import same_bits, to_numpy
from dmxnum.testing.backends import to_backend

MODES = ("F", "C", "E", "R")
ELEMENTS = sorted(ELEMENT_FORMATS)  # (e, m)
F32_MAX_BITS = 0x7F7FFFFF


def _bits(v: float) -> int:
    return int(np.float32(v).view(np.uint32))


def _f32(bits) -> np.ndarray:
    return np.asarray(bits, np.uint32).view(np.float32)


def edge_amax_bits(fmt: MXFloat) -> np.ndarray:
    """Magnitudes (uint32 bits) where ``fmt``'s scale mode changes its mind:
    powers of two and their neighbours (CEIL, RCEIL), EVEN's carry threshold
    ``2^(22-m)`` below the next binade (also into 0xFF), RCEIL's thresholds
    ``max_elem * 2^k`` and their neighbours (also where the quotient is
    subnormal), subnormals and the largest finite values."""
    el = fmt.element
    carry = 0x800000 - (1 << (22 - el.man_bits))  # mantissa bits from which EVEN carries
    top = _bits(el.max_value)
    out = {0x1, 0x2, 0x3FFFFF, 0x400000, 0x7FFFFF, 0x7FFFFF - (1 << (22 - el.man_bits)), F32_MAX_BITS,
           F32_MAX_BITS - 1, 0x7F000000}
    for field in (1, 2, 3, 64, 125, 126, 127, 128, 129, 130, 253, 254):
        base = field << 23
        out |= {base, base + 1, base - 1, base | carry, (base | carry) - 1, (base | carry) + 1, base | 0x7FFFFF}
    for k in (-127, -126, -125, -1, 0, 1, 112, 119, 123, 125):
        b = top + (k << 23)
        if 0 < b <= F32_MAX_BITS:
            out |= {b - 2, b - 1, b, b + 1, b + 2}
    return np.array(sorted(v for v in out if 0 < v <= F32_MAX_BITS), np.uint32)


# ----------------------------------------------------------------------------- the rule itself
@functools.lru_cache(maxsize=None)
def _expected_exponents(fmt: MXFloat) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(sum(map(ord, str(fmt))))
    amax = np.concatenate([edge_amax_bits(fmt), rng.integers(1, F32_MAX_BITS, 300, dtype=np.uint32)])
    expected = np.array([reference_shared_exponent(decode_bits(int(a)).magnitude, fmt) for a in amax], np.int32)
    return amax.view(np.int32), expected


@pytest.mark.parametrize("em", ELEMENTS)
@pytest.mark.parametrize("mode", MODES)
def test_shared_exponent_matches_reference_on_every_backend(em, mode) -> None:
    fmt = MXFloat(*em, 32, -1, mode)
    amax, expected = _expected_exponents(fmt)
    for backend in ("numpy", "torch", "jax"):
        a = to_backend(amax, backend)
        if backend == "jax":
            got = jax.jit(lambda v: mx_shared_exponent(B.namespace(v), v, fmt))(a)
        else:
            got = mx_shared_exponent(B.namespace(a), a, fmt)
        got = to_numpy(got)
        bad = np.flatnonzero(got != expected)
        assert bad.size == 0, [(hex(int(amax[i])), int(got[i]), int(expected[i])) for i in bad[:8]]
    # an all-zero block keeps shared exponent 0 (its codes: E8M0 127)
    zero = np.zeros(1, np.int32)
    assert int(mx_shared_exponent(B.namespace(zero), zero, fmt)[0]) == 0


def test_exponent_limits_of_each_mode() -> None:
    """E spans [-127, 127 - emax] for FLOOR and [-127, 128 - emax] for CEIL,
    EVEN (a carry into 0xFF reads as 128) and RCEIL."""
    for em in ELEMENTS:
        for mode in MODES:
            fmt = MXFloat(*em, 32, -1, mode)
            _, e = _expected_exponents(fmt)
            assert e.min() == -127
            assert e.max() == (127 if mode == "F" else 128) - fmt.element_emax, (fmt, e.max())


# ----------------------------------------------------------------------------- casts vs the reference
def _check(x: np.ndarray, fmt: MXFloat, backends=("numpy", "torch"), paths=None) -> None:
    """Every applicable path (or the given ones) on each backend equals the
    reference; JAX (a compile per format, path and shape) runs its default
    path unless ``paths`` says otherwise. Its guarded default path compiles
    both branches."""
    expected = reference_cast(x, fmt)
    for backend in backends:
        names = [r.name for r in dmxnum.kernel_paths(fmt, backend) if r.applies] if paths is None else paths
        if backend == "jax" and paths is None:
            names = names[:1]
        for name in names:
            got = to_numpy(dmxnum.cast(to_backend(x, backend), fmt, path=name))
            ok = same_bits(got, expected)
            if not ok.all():
                i = tuple(np.argwhere(~ok)[0])
                raise AssertionError(
                    f"{fmt} {backend} {name}: {int((~ok).sum())} differ; at {i}: x={x[i]!r} "
                    f"(0x{int(x.view(np.uint32)[i]):08x}) expected={expected[i]!r} got={got[i]!r}"
                )


RATIOS = np.array([1.0, 0.75, 0.5000001, 0.4999999, 0.3, 2.0**-3, 2.0**-9, 2.0**-10, 3 * 2.0**-11, 2.0**-17,
                   2.0**-18, 0.0], np.float32)


def targeted_blocks(fmt: MXFloat, seed: int, per_row: int = 3, partial: bool = True) -> np.ndarray:
    """Rows of blocks, each holding an edge magnitude of :func:`edge_amax_bits`
    (at a random place) with the rest of the block at fixed ratios below it
    (where the element grid of the chosen ``E`` decides: halves, element
    subnormals), random signs, and (``partial``) a partial last block."""
    rng = np.random.default_rng(seed)
    b = fmt.block_size
    amax = _f32(edge_amax_bits(fmt))
    rows = -(-len(amax) // per_row)
    amax = np.resize(amax, rows * per_row)
    width = per_row * b - (b // 2 if partial and b > 1 else 0)
    x = np.empty((rows, width), np.float32)
    for r in range(rows):
        blocks = [rng.permutation(np.concatenate([[a], (rng.choice(RATIOS, b - 1) * a).astype(np.float32)]))
                  for a in amax[r * per_row:(r + 1) * per_row]]
        x[r] = np.concatenate(blocks)[:width] * rng.choice(np.array([1.0, -1.0], np.float32), width)
    return x


@pytest.mark.parametrize("em", ELEMENTS)
@pytest.mark.parametrize("mode", ["C", "E", "R"])
@pytest.mark.parametrize("block", [1, 16])
def test_targeted_blocks_every_eager_path(em, mode, block) -> None:
    fmt = MXFloat(*em, block, -1, mode)
    x = targeted_blocks(fmt, seed=block)
    _check(x, fmt)


def _guard_passing_rows(x: np.ndarray, fmt: MXFloat) -> np.ndarray:
    """Rows of ``x`` whose every block passes JAX's guard (quantum at least
    ``2^-124``: the float branch of ``mxfp.quantum|integer``), tiled to ``x``'s shape."""
    el = fmt.element
    xb = x.reshape(x.shape[0], -1, fmt.block_size)
    amax = (np.abs(xb).max(axis=-1)).view(np.int32)
    ok = (mx_shared_exponent(B.namespace(amax), amax, fmt) + (el.emin - el.man_bits) >= -124).all(axis=-1)
    return np.resize(x[ok & np.isfinite(x).all(axis=-1)], x.shape)


@pytest.mark.parametrize(("em", "mode"), [((2, 1), "R"), ((2, 1), "E"), ((4, 3), "C")])
def test_targeted_blocks_jax(em, mode) -> None:
    """JAX's guarded path on data that takes its integer branch (subnormal
    blocks) and on data that takes its float branch; the integer path forced."""
    fmt = MXFloat(*em, 16, -1, mode)
    x = targeted_blocks(fmt, seed=7, partial=False)
    safe = _guard_passing_rows(x, fmt)
    assert np.abs(safe).max() > 3e38  # the blocks whose E is one above FLOOR's largest
    _check(x, fmt, backends=("jax",), paths=["mxfp.quantum|integer"])
    _check(safe, fmt, backends=("jax",), paths=["mxfp.quantum|integer"])
    if em == (2, 1) and mode == "R":
        _check(x, fmt, backends=("jax",), paths=["mxfp.integer"])


@st.composite
def _mode_arrays(draw: st.DrawFn) -> tuple[MXFloat, np.ndarray]:
    """An MXFP format of any scale mode and block size (1, 16, 32 favoured),
    and an array for it with some elements replaced by the mode's edge magnitudes."""
    fmt = draw(formats(families="MXFP", max_block_size=32, axes=(-1, 0)), label="fmt")
    if draw(st.booleans()):
        fmt = MXFloat(fmt.exp_bits, fmt.man_bits, draw(st.sampled_from((1, 16, 32))), fmt.axis, fmt.scale_mode)
    x = draw(arrays_for(fmt, max_elements=64, max_blocks=2), label="x").copy()
    edges = _f32(edge_amax_bits(fmt))
    flat = x.reshape(-1)
    n = draw(st.integers(0, min(8, flat.size)))
    for _ in range(n):
        i = draw(st.integers(0, flat.size - 1))
        v = edges[draw(st.integers(0, len(edges) - 1))]
        flat[i] = -v if draw(st.booleans()) else v
    return fmt, x


@settings(max_examples=80)
@given(case=_mode_arrays())
def test_hypothesis_every_eager_path_matches_reference(case) -> None:
    fmt, x = case
    _check(x, fmt)


# ----------------------------------------------------------------------------- explicit edge cases
def _all_backends_all_paths(x: np.ndarray, fmt: MXFloat | str, backends=("numpy", "torch", "jax")) -> np.ndarray:
    """Check ``x`` on the backends (every eager path; JAX's default) and return the reference result."""
    fmt = dmxnum.parse(fmt) if isinstance(fmt, str) else fmt
    _check(x, fmt, backends=backends)
    return reference_cast(x, fmt)


def test_ceil_and_rceil_on_exact_powers_of_two() -> None:
    # amax = 4 = 2^emax (E2M1): CEIL E = 0 (not 1); RCEIL 4/6 -> E = 0
    x = np.array([[4.0, 0.25, -0.75, 0.125]], np.float32)
    for mode in "FCR":
        y = _all_backends_all_paths(x, f"MXFP4[E2M1]{{4,-1}}({mode})" if mode != "F" else "MXFP4[E2M1]{4,-1}")
        assert y.tolist() == [[4.0, 0.0, -1.0, 0.0]]
    # one ulp above 4: CEIL E = 1, the element quantum doubles
    x[0, 0] = np.nextafter(np.float32(4.0), np.float32(8.0))
    assert _all_backends_all_paths(x, "MXFP4[E2M1]{4,-1}(C)").tolist() == [[4.0, 0.0, -1.0, 0.0]]
    x[0, 2] = -1.5
    assert _all_backends_all_paths(x, "MXFP4[E2M1]{4,-1}(C)").tolist() == [[4.0, 0.0, -2.0, 0.0]]
    assert _all_backends_all_paths(x, "MXFP4[E2M1]{4,-1}").tolist() == [[4.0, 0.0, -1.5, 0.0]]


def test_rceil_just_above_and_below_max_elem_times_power_of_two() -> None:
    six = np.float32(6.0 * 2.0**10)
    below, above = np.nextafter(six, np.float32(0)), np.nextafter(six, np.float32(np.inf))
    x = np.array([[below, 512.0], [six, 512.0], [above, 512.0]], np.float32)
    y = _all_backends_all_paths(x, "MXFP4[E2M1]{2,-1}(R)")
    # E = 10, 10, 11: 512 = 0.5 * 2^10 is the smallest element at E = 10, a tie to 0 at E = 11
    assert y.tolist() == [[6144.0, 512.0], [6144.0, 512.0], [6144.0, 0.0]]


def test_rceil_subnormal_quotient_rounds_down_to_two_to_minus_127() -> None:
    # amax one ulp above 6 * 2^-127: amax / 6 = 2^-127 + (2/3) 2^-150 rounds (float32,
    # subnormal) to 2^-127, so E = -127 and 2^-128 is the element 0.5 * 2^-127
    a = _f32(_bits(6 * 2.0**-127) + 1)
    x = np.array([a, 2.0**-128], np.float32)
    assert _all_backends_all_paths(x, "MXFP4[E2M1]{2,-1}(R)").tolist() == [6 * 2.0**-127, 2.0**-128]
    # CEIL (ceil(log2 amax) - 2 = -126) loses it: 2^-128 / 2^-126 = 0.25 is a tie to 0
    assert _all_backends_all_paths(x, "MXFP4[E2M1]{2,-1}(C)").tolist() == [6 * 2.0**-127, 0.0]
    # two ulps above: the quotient rounds above 2^-127, E = -126 for RCEIL too
    x[0] = _f32(_bits(6 * 2.0**-127) + 2)
    assert _all_backends_all_paths(x, "MXFP4[E2M1]{2,-1}(R)")[1] == 0.0


def test_even_carry_and_no_carry() -> None:
    # E2M1 (m = 1): 7 = 1.75 * 4 rounds to 8 (E = 1); 6.5 = 1.625 * 4 stays (E = 0)
    x = np.array([[7.0, 0.25], [6.5, 0.25]], np.float32)
    y = _all_backends_all_paths(x, "MXFP4[E2M1]{2,-1}(E)")
    assert y.tolist() == [[8.0, 0.0], [6.0, 0.0]]
    # the carry threshold exactly: mantissa 0x600000 carries, 0x5FFFFF does not
    x = np.array([[_f32((129 << 23) | 0x600000), 0.5], [_f32((129 << 23) | 0x5FFFFF), 0.5]], np.float32)
    y = _all_backends_all_paths(x, "MXFP4[E2M1]{2,-1}(E)")
    assert y.tolist() == [[8.0, 0.0], [6.0, 0.5]]


def test_overflow_to_infinity_at_two_to_128() -> None:
    """CEIL, EVEN (a carry into 0xFF) and RCEIL pick E = 128 - emax for amax
    just below 2^128; an element rounding to 2^emax is 2^128: float32 gives ±Inf."""
    x = np.array([[3.4e38, -1e38], [-3.4e38, 3.0e38]], np.float32)
    assert _all_backends_all_paths(x, "MXFP4[E2M1]{2,-1}").tolist() == [
        [2.5521177519070385e38, -8.507059173023462e37], [-2.5521177519070385e38, 2.5521177519070385e38]]
    for mode in "CER":
        y = _all_backends_all_paths(x, f"MXFP4[E2M1]{{2,-1}}({mode})")
        assert y.tolist() == [[np.inf, -8.507059173023462e37], [-np.inf, np.inf]], mode
    # float32 max with every element: 2^emax * 2^(128 - emax) overflows, max_elem * 2^E does not occur
    for em in ELEMENTS:
        for mode in "CER":
            fmt = MXFloat(*em, 2, -1, mode)
            y = _all_backends_all_paths(np.array([3.4028235e38, -3.4028235e38], np.float32), fmt, ("numpy", "torch"))
            assert y.tolist() == [np.inf, -np.inf], fmt


def test_subnormal_and_zero_and_nan_blocks() -> None:
    x = np.array([[1e-40, -3e-45, 0.0, 2e-39], [0.0, -0.0, 0.0, -0.0], [1.0, np.nan, 0.5, 2.0]], np.float32)
    for mode in MODES:
        fmt = MXFloat(2, 1, 4, -1, mode)
        y = _all_backends_all_paths(x, fmt, ("numpy", "torch", "jax") if mode == "R" else ("numpy", "torch"))
        # a subnormal amax gives E = -127 in every mode: quantum 2^-128 for E2M1
        assert y[0].tolist() == [0.0, -0.0, 0.0, 2.0**-128]
        assert (y[1].view(np.uint32) == x[1].view(np.uint32)).all()  # signed zeros
        assert np.isnan(y[2]).all()


# ----------------------------------------------------------------------------- worked examples (docs/formats.md)
def test_docs_worked_examples() -> None:
    import numpy as np
    import dmxnum

    x = np.array([[5.0, 0.3], [6.5, 0.3], [7.0, 0.3]], np.float32)  # three blocks of two
    # FLOOR: E = floor(log2 amax) - 2 = 0, 0, 0
    assert dmxnum.cast(x, "MXFP4[E2M1]{2,-1}").tolist() == [[4.0, 0.5], [6.0, 0.5], [6.0, 0.5]]
    # CEIL: E = ceil(log2 amax) - 2 = 1, 1, 1
    assert dmxnum.cast(x, "MXFP4[E2M1]{2,-1}(C)").tolist() == [[4.0, 0.0], [6.0, 0.0], [8.0, 0.0]]
    # EVEN: amax rounded to 1 mantissa bit: 4, 6, 8 -> E = 0, 0, 1
    assert dmxnum.cast(x, "MXFP4[E2M1]{2,-1}(E)").tolist() == [[4.0, 0.5], [6.0, 0.5], [8.0, 0.0]]
    # RCEIL: amax / 6 = 0.83, 1.08, 1.17 -> E = 0, 1, 1
    assert dmxnum.cast(x, "MXFP4[E2M1]{2,-1}(R)").tolist() == [[4.0, 0.5], [6.0, 0.0], [8.0, 0.0]]
    # CEIL, EVEN, RCEIL can pick E = 128 - emax: an element 2^emax there is 2^128 -> Inf
    big = np.array([3.4e38, -1e38], np.float32)
    assert dmxnum.cast(big, "MXFP4[E2M1]{2,-1}(C)").tolist() == [float("inf"), -8.507059173023462e37]


def test_docs_worked_examples_match_reference_everywhere() -> None:
    x = np.array([[5.0, 0.3], [6.5, 0.3], [7.0, 0.3]], np.float32)
    for mode in MODES:
        backends = ("numpy", "torch") if mode == "F" else ("numpy", "torch", "jax")  # FLOOR: tested elsewhere
        _all_backends_all_paths(x, MXFloat(2, 1, 2, -1, mode), backends)


# ----------------------------------------------------------------------------- JAX transforms, torch.compile
def test_jax_vmap_and_grad() -> None:
    fmt = "MXFP6[E3M2]{16,-1}(R)"
    x = targeted_blocks(dmxnum.parse(fmt), seed=3)[:2]
    xj = jnp.asarray(x)
    whole = np.asarray(dmxnum.cast(xj, fmt))
    mapped = np.asarray(jax.vmap(lambda row: dmxnum.cast(row, fmt))(xj))
    assert same_bits(mapped, whole).all()
    assert same_bits(whole, reference_cast(x, fmt)).all()
    finite = jnp.asarray(np.where(np.isfinite(whole), x, 0.0))
    g = jax.grad(lambda v: jnp.sum(dmxnum.cast(v, "MXFP4[E2M1]{16,-1}(E)")))(finite)
    assert np.array_equal(np.asarray(g), np.ones_like(x))  # straight-through


def test_torch_compile_matches_reference() -> None:
    """The default compiled path (``mxfp.element``) with RCEIL, whose shared
    exponent has the most integer logic; one inductor compile (they are slow),
    fed several arrays of one shape. The other paths and modes share the
    rule (:func:`test_shared_exponent_matches_reference_on_every_backend`)."""
    fmt = dmxnum.parse("MXFP4[E2M1]{16,-1}(R)")
    assert next(r.name for r in dmxnum.kernel_paths(fmt, "torch", compiled=True) if r.applies) == "mxfp.element"
    compiled = torch.compile(lambda v: dmxnum.cast(v, fmt), dynamic=False)
    for seed in (0, 1):
        x = np.resize(targeted_blocks(fmt, seed, 4, False), (96, 64))
        ok = same_bits(to_numpy(compiled(torch.from_numpy(x))), reference_cast(x, fmt))
        assert ok.all(), int((~ok).sum())


# ----------------------------------------------------------------------------- encode / decode
@pytest.mark.parametrize("mode", MODES)
def test_encode_decode_round_trip(mode) -> None:
    for em in ELEMENTS:
        fmt = MXFloat(*em, 16, -1, mode)
        x = targeted_blocks(fmt, seed=5, per_row=2)
        for backend in ("numpy", "torch"):  # (JAX's eager encode compiles op by op: seconds)
            xb = to_backend(x, backend)
            enc = dmxnum.encode(xb, fmt)
            assert same_bits(to_numpy(dmxnum.decode(enc)), to_numpy(dmxnum.cast(xb, fmt))).all(), (fmt, backend)
        # the scale codes are E + 127 of the reference's shared exponent (0xFF: a NaN block)
        scales = np.asarray(dmxnum.encode(x, fmt).scales)
        for r in range(x.shape[0]):
            for j, start in enumerate(range(0, x.shape[1], 16)):
                block = x[r, start:start + 16]
                if not np.isfinite(block).all():
                    assert scales[r, j] == 0xFF
                elif (block == 0).all():
                    assert scales[r, j] == 127
                else:
                    amax = decode_bits(int(np.abs(block).max().view(np.uint32))).magnitude
                    assert scales[r, j] == reference_shared_exponent(amax, fmt) + 127, (fmt, r, j)
