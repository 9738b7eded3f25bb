"""The eager per-element-quantum FP path (``fp.quantum``,
``dmxnum/kernels/fp_quantum.py``) equals the reference on NumPy and PyTorch,
alone and as the MXFP element cast (``mxfp.quantum|element``,
``dmxnum/kernels/mxfp.py``)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, strategies as st

import dmxnum
from dmxnum import _backend as B
from dmxnum.kernels import fp_quantum, mxfp
from dmxnum.kernels.float_ops import block_maxima
from dmxnum.kernels.paths import Ctx
from dmxnum.kernels.rules import mx_shared_exponent
from dmxnum.testing import arrays_for, assert_bit_exact, formats
from dmxnum.testing.backends import to_backend
from tests_data import edge_heavy

# saturating, signed, no flush, N or Z; none is a native PyTorch dtype
FORMATS = ["FP4_E2M1", "FP6_E3M2", "FP6_E2M3", "FP[1|4|3,7](_ZE)", "FP[1|5|2,15](_N)", "FP[1|3|0,3](_ZA)",
           "FP[1|7|1,60](_Z)", "FP[1|2|23,-100](_N)", "FP[1|6|10,40](_N)"]


def _applies(fmt, backend: str, name: str = "fp.quantum") -> bool:
    """Whether the path ``name`` applies to ``fmt`` in an eager cast on ``backend`` (public listing)."""
    return any(p.name == name and p.applies for p in dmxnum.kernel_paths(fmt, backend))


def test_formats_take_the_path() -> None:
    for fmt in FORMATS:
        assert fp_quantum.why_not(dmxnum.parse(fmt)) is None, fmt
        assert _applies(fmt, "numpy") and _applies(fmt, "torch"), fmt
    for fmt in ["FP[1|5|2,15](_NI)", "FP[0|5|2,15](_N)", "FP[1|5|2,15](FN)", "FP[1|5|2,15](_U)", "FP[1|5|2,15](_S)",
                "FP[1|3|0,3](_NA)", "FP[1|8|0,127](_Z)", "FP[1|5|0,-97](_Z)"]:  # last two: 2^(m - emax) = 2^-127
        assert fp_quantum.why_not(dmxnum.parse(fmt)) is not None, fmt
        assert not _applies(fmt, "numpy") and not _applies(fmt, "torch"), fmt


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_direct_call_matches_reference_on_edge_values(backend: str, fmt: str) -> None:
    f = dmxnum.parse(fmt)
    for seed in range(3):
        x = edge_heavy((40, 66), seed)
        xb = to_backend(x, backend)
        with np.errstate(all="ignore"):
            y = fp_quantum.cast_fp_quantum(B.namespace(xb), xb, f)
        assert_bit_exact(y, f, x)
        assert_bit_exact(dmxnum.cast(xb, f, path="fp.quantum"), f, x)
        assert_bit_exact(dmxnum.cast(xb, f), f, x)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@given(data=st.data())
def test_generated_formats_match_reference(backend: str, data: st.DataObject) -> None:
    fmt = data.draw(formats(families="FP", roundings="NZ").filter(lambda f: _applies(f, backend)), label="fmt")
    x = data.draw(arrays_for(fmt), label="x")
    assert_bit_exact(dmxnum.cast(to_backend(x, backend), fmt, path="fp.quantum"), fmt, x)
    assert_bit_exact(dmxnum.cast(to_backend(x, backend), fmt), fmt, x)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("fmt", ["MXFP4[E2M1]{32,-1}", "MXFP6[E3M2]{8,0}", "MXFP6[E2M3]{5,1}", "MXFP8[E4M3]{7,-1}"])
def test_mxfp_element_cast_matches_reference(backend: str, fmt: str) -> None:
    assert _applies(fmt, backend, "mxfp.quantum|element")
    for seed in range(3):
        x = edge_heavy((40, 66), seed)
        assert_bit_exact(dmxnum.cast(to_backend(x, backend), fmt, path="mxfp.quantum|element"), fmt, x)
        assert_bit_exact(dmxnum.cast(to_backend(x, backend), fmt), fmt, x)


def _quanta_normal(xb, fmt) -> bool:
    """Whether every block's quantum ``2^(E + emin - m)`` is at least ``2^-126``
    (what ``mxfp.quantum|element`` checks before the one-pass form)."""
    xp = B.namespace(xb)
    el = fmt.element
    _, amax = block_maxima(xp, xb, fmt, Ctx.of(xb))
    return bool(xp.all(mx_shared_exponent(xp, amax, fmt) + (el.emin - el.man_bits) >= -126))


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("fmt", ["MXFP4[E2M1]{32,-1}", "MXFP6[E3M2]{8,0}", "MXFP8[E5M2]{5,1}", "MXFP8[E4M3]{7,-1}"])
def test_mxfp_one_pass_form_directly(backend: str, fmt: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """``mxfp.cast_quantum`` itself (NumPy and MXFP8 otherwise take native
    dtypes) is exact where every block's quantum is normal; the guarded path
    ``mxfp.quantum|element`` declines it when a block's quantum is subnormal
    (running the element cast instead) and takes it elsewhere."""
    calls: list[str] = []
    for name in ("cast_quantum", "cast_element"):
        original = getattr(mxfp, name)
        monkeypatch.setattr(mxfp, name, lambda *a, _f=original, _n=name, **k: calls.append(_n) or _f(*a, **k))

    f = dmxnum.parse(fmt)
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((30, 40)) * 2.0 ** rng.integers(-90, 90, (30, 1))).astype(np.float32)
    x[0, :7] = [0.0, -0.0, np.inf, 1e-40, -3e38, 0.75, np.nan]
    x[1] = 0.0
    x[8:16, :35] = np.float32(2.0**-140)  # whole blocks (any of the axes) with subnormal quanta
    xb = to_backend(x, backend)
    assert not _quanta_normal(xb, f)
    assert_bit_exact(dmxnum.cast(xb, f, path="mxfp.quantum|element"), f, x)
    assert calls == ["cast_element"], "a block with a subnormal quantum must not take the one-pass form"
    kept = np.delete(x, np.s_[8:16], axis=0)
    clean = to_backend(kept, backend)
    assert _quanta_normal(clean, f)
    calls.clear()
    assert_bit_exact(dmxnum.cast(clean, f, path="mxfp.quantum|element"), f, kept)
    assert calls == ["cast_quantum"]
    with np.errstate(all="ignore"):
        y = mxfp.cast_quantum(B.namespace(clean), clean, f, Ctx.of(clean))
    assert_bit_exact(y, f, kept)
