"""Named kernel paths: the family table, which path is chosen, forcing a path,
and every path equal to the reference (Hypothesis on the eager paths, a fixed
matrix for ``jax.jit`` and ``torch.compile``)."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

import dmxnum
from dmxnum import encoding
from dmxnum.formats import Format, Same
from dmxnum.formats.families import FAMILIES, LABELS, family_label
from dmxnum.kernels import families as kfam
from dmxnum.kernels.paths import Ctx
import importlib

reference_cast = importlib.import_module("dmxnum.reference.cast")
from dmxnum.testing import arrays_for, assert_bit_exact, formats
from dmxnum.testing.backends import to_backend
from tests_data import edge_heavy

WORDS = st.one_of(st.just(0), st.just(2**32 - 1), st.integers(0, 2**32 - 1))


def _all_subclasses(cls: type) -> set[type]:
    out = set()
    for sub in cls.__subclasses__():
        out |= {sub} | _all_subclasses(sub)
    return out


# ----------------------------------------------------------------------------- the table
def test_family_table_covers_every_format_class() -> None:
    classes = {c for c in _all_subclasses(Format) if c.__module__.startswith("dmxnum.formats")} - {Same}
    assert classes == set(FAMILIES), classes ^ set(FAMILIES)


def test_every_consumer_covers_every_family() -> None:
    assert set(encoding._ENCODERS) == set(encoding._DECODERS) == set(LABELS)
    assert set(reference_cast._FAMILY_CASTS) == set(LABELS)
    from dmxnum.testing.strategies import FAMILIES as STRATEGY_FAMILIES

    assert set(STRATEGY_FAMILIES) == {"SAME", *LABELS}


@pytest.mark.parametrize("label", LABELS)
@settings(max_examples=20)
@given(data=st.data())
def test_each_family_strategy_draws_its_family(label: str, data: st.DataObject) -> None:
    assert family_label(data.draw(formats(families=label))) == label


SAMPLES = {"XP": "XP[8,3](CSN)", "FP": "FP16", "BFP": "BFP16_64_LD", "MXINT": "MXINT8{32,-1}",
           "MXFP": "MXFP4[E2M1]{32,-1}", "SBFP": "SBFP<XP[8,0](CSN)><FP[1|8|3,127](_N)>{16,-1}",
           "NVFP4": "NVFP4(T)"}


@pytest.mark.parametrize("label", LABELS)
def test_each_family_declares_named_paths_ending_with_the_integer_path(label: str) -> None:
    fmt = dmxnum.parse(SAMPLES[label])
    module = kfam.family_module(fmt)
    names = [p.name for p in module.PATHS]
    assert len(set(names)) == len(names)
    assert all(n.startswith(label.lower() + ".") for n in names), names
    last = module.PATHS[-1]
    assert last.name == f"{label.lower()}.integer"
    for b, c in (("numpy", False), ("torch", False), ("torch", True), ("jax", True)):
        assert last.applies(fmt, Ctx(b, c)) is None


# ----------------------------------------------------------------------------- which path runs
CHOICES = [
    ("FP16", "numpy", False, "fp.native"),
    ("FP16", "torch", False, "fp.native"),
    ("FP16", "torch", True, "fp.pattern"),
    ("FP16", "jax", False, "fp.pattern"),
    ("FP4_E2M1", "numpy", False, "fp.native"),
    ("FP4_E2M1", "torch", False, "fp.quantum"),
    ("FP[1|5|2,15](_NA)", "numpy", False, "fp.quantum"),
    ("FP[1|5|2,15](_S)", "numpy", False, "fp.pattern"),
    ("FP[1|8|0,127](_Z)", "torch", False, "fp.pattern"),
    ("FP[1|8|1,149](_D)", "jax", False, "fp.integer"),
    ("XP[8,3](CSN)", "numpy", False, "xp.float"),
    ("XP[8,3](CSU)", "torch", False, "xp.integer"),
    ("XP[25,125](__N)", "jax", False, "xp.integer"),
    ("XP[25,125](__N)", "torch", True, "xp.float"),
    ("BFP[8|8]{64,-1}(SN)", "numpy", False, "bfp.float"),
    ("BFP[8|8]{64,-1}(SS)", "jax", False, "bfp.float|integer"),
    ("BFP[4|8]{5,0}(_D)", "torch", True, "bfp.integer"),
    ("MXINT8{32,-1}", "torch", True, "mxint.float"),
    ("MXINT8{32,-1}", "jax", False, "mxint.float|integer"),
    ("MXFP8[E4M3]{32,-1}", "torch", False, "mxfp.native"),
    ("MXFP4[E2M1]{32,-1}", "numpy", False, "mxfp.native"),
    ("MXFP4[E2M1]{32,-1}", "torch", False, "mxfp.quantum|element"),
    ("MXFP4[E2M1]{32,-1}", "torch", True, "mxfp.element"),
    ("MXFP4[E2M1]{32,-1}", "jax", False, "mxfp.quantum|integer"),
    ("SBFP<XP[8,0](CSN)><FP[1|8|3,127](_N)>{16,-1}", "numpy", False, "sbfp.float"),
    ("SBFP<XP[8,0](CSS)><FP[1|8|3,127](_N)>{16,-1}", "jax", False, "sbfp.float|integer"),
    ("NVFP4", "numpy", False, "nvfp4.float"),
    ("NVFP4", "jax", False, "nvfp4.float"),
    ("NVFP4(T)", "torch", True, "nvfp4.float"),
    ("NVFP4(T)", "jax", False, "nvfp4.float|integer"),
    ("MXFP4[E2M1]{16,-1}(R)", "jax", False, "mxfp.quantum|integer"),
]


@pytest.mark.parametrize(("fmt", "backend", "compiled", "expected"), CHOICES)
def test_which_path_is_chosen(fmt: str, backend: str, compiled: bool, expected: str) -> None:
    rows = dmxnum.kernel_paths(fmt, backend, compiled=compiled)
    chosen = next(r.name for r in rows if r.applies)
    assert chosen == expected, rows
    assert all(isinstance(r.reason, str) and r.reason for r in rows)


@pytest.mark.parametrize("backend", ["numpy", "torch", "jax"])
def test_kernel_paths_names_the_path_cast_runs(backend: str, monkeypatch) -> None:
    ran = []
    original = kfam.choose_path

    def spy(fmt, ctx, name=None):
        path = original(fmt, ctx, name)
        ran.append(path.name)
        return path

    monkeypatch.setattr(kfam, "choose_path", spy)
    x = to_backend(edge_heavy((6, 40), 3), backend)
    for fmt in ["FP8_E4M3FN", "XP[8,3](CSN)", "BFP[8|8]{16,-1}(SZ)", "MXFP6[E2M3]{8,-1}",
                "SBFP<XP[8,0](CSN)><FP[1|8|3,127](_N)>{16,-1}"]:
        ran.clear()
        dmxnum.cast(x, fmt)
        expected = next(r.name for r in dmxnum.kernel_paths(fmt, backend) if r.applies)
        assert ran == [expected], (fmt, ran)


def test_compiled_flag_is_ignored_for_jax_and_numpy() -> None:
    for fmt in ["FP16", "MXFP4[E2M1]{32,-1}"]:
        assert dmxnum.kernel_paths(fmt, "jax", compiled=False) == dmxnum.kernel_paths(fmt, "jax", compiled=True)
        assert dmxnum.kernel_paths(fmt, "numpy", compiled=True) == dmxnum.kernel_paths(fmt, "numpy")


# ----------------------------------------------------------------------------- forcing
def test_forcing_a_path_that_does_not_apply_names_the_applicable_ones() -> None:
    x = np.ones((4, 32), np.float32)
    with pytest.raises(ValueError, match=r"mxfp.quantum\|integer.*does not apply.*applicable: mxfp.native, "
                                          r"mxfp.quantum\|element, mxfp.element, mxfp.integer"):
        dmxnum.cast(x, "MXFP4[E2M1]{32,-1}", path="mxfp.quantum|integer")
    with pytest.raises(ValueError, match=r"has no kernel path 'bfp.fast'.*bfp.float, bfp.float\|integer"):
        dmxnum.cast(x, "BFP16_64_LD", path="bfp.fast")
    with pytest.raises(ValueError, match=r"has no kernel path 'fp.integer'.*xp.float, xp.integer"):
        dmxnum.cast(x, "XP[8,3](CSN)", path="fp.integer")
    with pytest.raises(ValueError, match="rounding U"):
        dmxnum.cast(x, "XP[8,3](CSU)", path="xp.float")


def test_kernel_paths_errors() -> None:
    with pytest.raises(ValueError, match="backend must be one of 'numpy', 'jax', 'torch', got 'cupy'"):
        dmxnum.kernel_paths("FP16", "cupy")
    with pytest.raises(TypeError, match="not a cast format"):
        dmxnum.kernel_paths("SAME", "numpy")


def test_path_is_part_of_the_jax_cache_key() -> None:
    fmt = "BFP[8|8]{16,-1}(SN)"
    x = jnp.asarray(edge_heavy((4, 48), 5))
    a = dmxnum.cast(x, fmt)
    b = dmxnum.cast(x, fmt, path="bfp.integer")
    cached = dmxnum.casting._jax_cast
    assert cached(dmxnum.parse(fmt), "ste", "bfp.integer") is not cached(dmxnum.parse(fmt), "ste", None)
    assert np.array_equal(np.asarray(a).view(np.uint32), np.asarray(b).view(np.uint32))
    # inside a user's jit too: the forced path is traced, not the cached default
    ran = []
    original = kfam.choose_path

    def spy(f, ctx, name=None):
        ran.append(name)
        return original(f, ctx, name)

    kfam.choose_path = spy
    try:
        jax.jit(lambda v: dmxnum.cast(v, "BFP[6|8]{16,-1}(SZ)", path="bfp.integer"))(x)
    finally:
        kfam.choose_path = original
    assert "bfp.integer" in ran


def test_forcing_never_changes_results_on_a_guarded_path_whose_guard_fails() -> None:
    """JAX's BFP float|integer path on blocks whose quantum is below 2^-124
    (the guard sends them to the integer branch): equal to the integer path."""
    x = np.full((2, 16), 3e-38, np.float32)
    x[1] = 1.5
    a = dmxnum.cast(jnp.asarray(x), "BFP[8|8]{16,-1}(SN)", path="bfp.float|integer")
    b = dmxnum.cast(jnp.asarray(x), "BFP[8|8]{16,-1}(SN)", path="bfp.integer")
    assert np.array_equal(np.asarray(a).view(np.uint32), np.asarray(b).view(np.uint32))
    assert_bit_exact(a, "BFP[8|8]{16,-1}(SN)", x)


# ----------------------------------------------------------------------------- every path exact
@pytest.mark.parametrize("family", LABELS)
@pytest.mark.parametrize("backend", ["numpy", "torch"])
@given(data=st.data())
def test_every_eager_path_matches_reference(backend: str, family: str, data: st.DataObject) -> None:
    fmt = data.draw(formats(families=family), label="fmt")
    names = [r.name for r in dmxnum.kernel_paths(fmt, backend) if r.applies]
    path = data.draw(st.sampled_from(names), label="path")
    x = data.draw(arrays_for(fmt, max_elements=40), label="x")
    words = data.draw(hnp.arrays(np.uint32, x.shape, elements=WORDS), label="words") if fmt.stochastic else None
    y = dmxnum.cast(to_backend(x, backend), fmt, random_bits=to_backend(words, backend), path=path)
    assert_bit_exact(y, fmt, x, random_bits=words)


# one format per family, the paths that the default choice does not reach on these backends
COMPILED_MATRIX = [
    "FP[1|5|2,15](_S)", "FP8_E4M3FN", "XP[8,3](CSS)", "BFP[4|8]{5,0}(_N)", "MXINT8{32,-1}",
    "MXFP6[E3M2]{6,0}", "SBFP<XP[6,0](C_N)><FP[1|8|3,127](_N)>{16,-1}",
]
SHAPE = (24, 70)


def _non_default_paths(fmt: str, backend: str, compiled: bool) -> list[str]:
    rows = [r.name for r in dmxnum.kernel_paths(fmt, backend, compiled=compiled) if r.applies]
    return rows[1:]


@functools.lru_cache(maxsize=None)
def _jitted(fmt: str, path: str):
    return jax.jit(lambda v, w: dmxnum.cast(v, fmt, random_bits=w, path=path))


@pytest.mark.parametrize(
    ("fmt", "path"), [(f, p) for f in COMPILED_MATRIX for p in _non_default_paths(f, "jax", True)]
)
def test_jax_jit_forced_paths_match_reference(fmt: str, path: str) -> None:
    x = edge_heavy(SHAPE, 17)
    words = np.random.default_rng(3).integers(0, 2**32, SHAPE, dtype=np.uint32) if dmxnum.parse(fmt).stochastic else None
    y = _jitted(fmt, path)(jnp.asarray(x), None if words is None else jnp.asarray(words))
    assert_bit_exact(y, fmt, x, random_bits=words)


@pytest.mark.parametrize(
    ("fmt", "path"), [(f, p) for f in COMPILED_MATRIX for p in _non_default_paths(f, "torch", True)]
)
def test_torch_compile_forced_paths_match_reference(fmt: str, path: str) -> None:
    x = edge_heavy(SHAPE, 19)
    stochastic = dmxnum.parse(fmt).stochastic
    words = np.random.default_rng(4).integers(0, 2**32, SHAPE, dtype=np.uint32) if stochastic else None
    compiled = torch.compile(lambda v, w: dmxnum.cast(v, fmt, random_bits=w, path=path), dynamic=False)
    y = compiled(torch.from_numpy(x), None if words is None else torch.from_numpy(words.view(np.int32)))
    assert_bit_exact(y, fmt, x, random_bits=words)


def test_family_modules_resolve_for_every_table_entry() -> None:
    assert {module for _, module in FAMILIES.values()} == set(kfam._MODULES)


@pytest.mark.parametrize("fmt", ["XP[8,3](CSS)", "FP[1|5|2,15](_S)", "BFP[8|8]{16,-1}(SN)", "MXFP4[E2M1]{32,-1}",
                                 "SBFP<XP[8,0](CSS)><FP[1|8|3,127](_N)>{16,-1}"])
def test_cast_is_one_graph_under_torch_compile(fmt: str) -> None:
    """Choosing the path is traceable: no graph break inside a cast (a module
    lookup by name once split every compiled cast in three graphs)."""
    torch._dynamo.reset()
    x = torch.randn(8, 48)
    w = torch.randint(-(2**31), 2**31 - 1, (8, 48), dtype=torch.int32)
    explained = torch._dynamo.explain(lambda v, ww: dmxnum.cast(v, fmt, random_bits=ww))(x, w)
    assert explained.graph_break_count == 0, [b.reason for b in explained.break_reasons]
