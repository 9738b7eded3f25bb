"""Sub-byte packing: ``pack_codes``/``unpack_codes`` against a Python bit
stream on every backend (JAX under jit, torch.compile), and
``encode(..., packed=True)`` for every family."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import array_shapes

import dmxnum
from dmxnum.encoding import code_width
from dmxnum.formats import FixedPoint
from dmxnum.kernels.packing import pack_codes, unpack_codes
from dmxnum.testing import arrays_for, formats
from dmxnum.testing.assertions import same_bits, to_numpy
from dmxnum.testing.backends import to_backend

INTEGER_CODES = ("FixedPoint", "BlockFloatingPoint", "MXInt", "ScaledBFP")


def python_pack(codes: np.ndarray, width: int) -> np.ndarray:
    """The SPEC's layout, written out: per row one little-endian integer holding
    code i at bits [i*w, (i+1)*w), as ceil(n*w/8) bytes."""
    n = codes.shape[-1]
    nbytes = -(-n * width // 8)
    rows = codes.reshape(int(np.prod(codes.shape[:-1], dtype=np.int64)), n)
    out = np.zeros((rows.shape[0], nbytes), np.uint8)
    for r, row in enumerate(rows):
        stream = sum(int(c) << (i * width) for i, c in enumerate(row))
        out[r] = np.frombuffer(stream.to_bytes(nbytes, "little"), np.uint8)
    return out.reshape(codes.shape[:-1] + (nbytes,))


@st.composite
def code_arrays(draw: st.DrawFn) -> tuple[np.ndarray, int]:
    width = draw(st.integers(1, 7))
    shape = draw(array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=9))
    n = int(np.prod(shape))
    values = draw(st.lists(st.integers(0, 2**width - 1), min_size=n, max_size=n))
    return np.array(values, np.uint8).reshape(shape), width


@settings(max_examples=60)
@given(case=code_arrays())
def test_pack_matches_bit_stream(case: tuple[np.ndarray, int]) -> None:
    codes, width = case
    want = python_pack(codes, width)
    for backend in ("numpy", "torch"):
        packed = pack_codes(to_backend(codes, backend), width)
        assert to_numpy(packed).dtype == np.uint8
        assert np.array_equal(to_numpy(packed), want), backend
        assert np.array_equal(to_numpy(unpack_codes(packed, width, codes.shape[-1])), codes), backend


def test_pack_jit() -> None:
    import jax
    import jax.numpy as jnp

    rng = np.random.default_rng(0)
    for width in (2, 4, 6):
        pack = jax.jit(lambda c, w=width: pack_codes(c, w))
        unpack = jax.jit(lambda p, w=width: unpack_codes(p, w, 13))
        for _ in range(3):
            codes = rng.integers(0, 2**width, (3, 13), dtype=np.uint8)
            packed = pack(jnp.asarray(codes))
            assert np.array_equal(np.asarray(packed), python_pack(codes, width))
            assert np.array_equal(np.asarray(unpack(packed)), codes)


def test_known_layouts() -> None:
    # two 4-bit codes per byte, low nibble first; an odd count pads the high nibble
    assert pack_codes(np.array([1, 2, 3], np.uint8), 4).tolist() == [0x21, 0x03]
    # four 6-bit codes in 3 bytes: 0b000001 | 0b000010 << 6 | 0b000011 << 12 | 0b111111 << 18
    stream = 1 | 2 << 6 | 3 << 12 | 63 << 18
    assert pack_codes(np.array([1, 2, 3, 63], np.uint8), 6).tolist() == list(stream.to_bytes(3, "little"))
    # 3-bit codes cross byte boundaries
    assert pack_codes(np.array([[7, 0, 5]], np.uint8), 3).tolist() == [[0b01000111, 0b1]]
    assert unpack_codes(np.array([0x21, 0x03], np.uint8), 4, 3).tolist() == [1, 2, 3]
    assert pack_codes(np.zeros((2, 0), np.uint8), 4).shape == (2, 0)


@pytest.mark.parametrize("backend", ["numpy", "torch"])  # JAX: test_encode_packed_jax_jit
def test_encode_packed_known_codes(backend: str) -> None:
    x = to_backend(np.array([[6.0, -0.5, 1.0, 0.0, 3.0]], np.float32), backend)
    enc = dmxnum.encode(x, "MXFP4[E2M1]{8,-1}", packed=True)
    assert enc.packed and enc.length == 5
    # E2M1 codes 0x7, 0x9, 0x2, 0x0, 0x5 -> bytes 0x97, 0x02, 0x05
    assert to_numpy(enc.codes).tolist() == [[0x97, 0x02, 0x05]]
    assert to_numpy(enc.scales).tolist() == [[127]]  # scales are not packed
    assert to_numpy(dmxnum.decode(enc)).tolist() == [[6.0, -0.5, 1.0, 0.0, 3.0]]
    nv = dmxnum.encode(to_backend(np.array([[6.0, -0.5, 1.0, 0.0]], np.float32), backend), "NVFP4{4,-1}", packed=True)
    assert to_numpy(nv.codes).tolist() == [[0x97, 0x02]] and nv.length == 4
    assert to_numpy(dmxnum.decode(nv)).tolist() == [[6.0, -0.5, 1.0, 0.0]]
    int8 = dmxnum.encode(x, "INT8", packed=True)  # 8-bit codes stay as they are
    assert not int8.packed and int8.length is None and to_numpy(int8.codes).shape == (1, 5)


@settings(max_examples=60)
@given(data=st.data())
def test_decode_packed_equals_cast(data: st.DataObject) -> None:
    fmt = data.draw(formats(roundings="NUDZ", max_block_size=8), label="fmt")
    if isinstance(fmt, FixedPoint) and not fmt.clamp:
        fmt = FixedPoint(fmt.bits, fmt.frac, True, fmt.symmetric, fmt.rounding)
    x = data.draw(arrays_for(fmt, allow_nan=False, allow_inf=False, max_elements=64), label="x")
    if x.ndim == 0:
        x = x.reshape(1)
    backend = data.draw(st.sampled_from(("numpy", "torch")), label="backend")
    xb = to_backend(x, backend)
    plain = dmxnum.encode(xb, fmt)
    enc = dmxnum.encode(xb, fmt, packed=True)
    width = code_width(fmt)
    assert enc.packed == (width < 8)
    if enc.packed:
        assert enc.length == x.shape[-1]
        assert to_numpy(enc.codes).shape == x.shape[:-1] + (-(-x.shape[-1] * width // 8),)
        assert np.array_equal(to_numpy(enc.codes), python_pack(to_numpy(plain.codes), width))
    got = to_numpy(dmxnum.decode(enc))
    want = to_numpy(dmxnum.cast(xb, fmt))
    ok = same_bits(got, want)
    if type(fmt).__name__ in INTEGER_CODES:
        ok |= (got == 0) & (want == 0)  # integer codes have no -0
    assert ok.all(), (str(fmt), got[~ok][:4], want[~ok][:4])


def test_encode_packed_jax_jit() -> None:
    import jax
    import jax.numpy as jnp

    x = np.linspace(-6, 6, 3 * 11, dtype=np.float32).reshape(3, 11)
    fmt = dmxnum.parse("XP[3,1](CSN)")  # 3-bit codes: 11 per row cross byte boundaries
    codes = jax.jit(lambda v: dmxnum.encode(v, fmt, packed=True).codes)(jnp.asarray(x))
    enc = dmxnum.encode(x, fmt, packed=True)
    assert codes.shape == (3, 5) and np.array_equal(np.asarray(codes), enc.codes)
    assert same_bits(dmxnum.decode(enc), dmxnum.cast(x, fmt)).all()


def test_packing_errors() -> None:
    with pytest.raises(ValueError, match="ndim >= 1"):
        dmxnum.encode(np.float32(1.0), "FP4_E2M1", packed=True)
    with pytest.raises(ValueError, match="1..7 bits"):
        pack_codes(np.zeros(4, np.uint8), 8)
    with pytest.raises(ValueError, match="ndim >= 1"):
        pack_codes(np.uint8(3), 4)
    with pytest.raises(TypeError, match="integer array"):
        pack_codes(np.zeros(4, np.float32), 4)
    with pytest.raises(ValueError, match="need 2 bytes per row; the last axis has 1"):
        unpack_codes(np.zeros(1, np.uint8), 4, 3)
    with pytest.raises(ValueError, match="non-negative"):
        unpack_codes(np.zeros(1, np.uint8), 4, -1)
