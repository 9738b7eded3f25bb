"""Core papercuts (issue 12): keys of any library on any backend, ranked
suggestions, one whitespace rule, limits on every format, meta tensors, the
public ``dir`` and the errors for non-arrays and integer dtypes."""

from __future__ import annotations

import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import dmxnum
from dmxnum.errors import ShorthandError, UnsupportedDtypeError
from dmxnum.formats import Same
from dmxnum.logics import parse_logic
from dmxnum.sparsity import parse_sparseness
from dmxnum.testing.backends import to_backend

X = np.linspace(-3.0, 3.0, 48, dtype=np.float32).reshape(4, 12) + np.float32(0.013)
STOCHASTIC = ["XP[8,4](CSS)", "FP[1|5|2,15](_S)", "BFP[4|8]{4,-1}(SS)", "SBFP<XP[6,0](CSS)><FP[1|8|0,127](_N)>{4,-1}"]


def _numpy(y) -> np.ndarray:
    if isinstance(y, torch.Tensor):
        return y.detach().cpu().numpy()
    return np.asarray(y)


def _same_bits(a, b) -> bool:
    return np.array_equal(_numpy(a).view(np.uint32), _numpy(b).view(np.uint32))


# ----------------------------------------------------------------------------- 1. keys
def _jax_words(key) -> np.ndarray:
    return np.asarray(jax.random.bits(key, X.shape, jnp.uint32))


def _numpy_words(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 2**32, size=X.shape, dtype=np.uint32)


def _torch_words(seed: int) -> np.ndarray:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(-(2**31), 2**31, X.shape, dtype=torch.int32, generator=gen).numpy().view(np.uint32)


KEYS = {
    "jax-typed": (lambda: jax.random.key(3), lambda: _jax_words(jax.random.key(3))),
    "jax-legacy": (lambda: jax.random.PRNGKey(3), lambda: _jax_words(jax.random.PRNGKey(3))),
    "numpy": (lambda: np.random.default_rng(3), lambda: _numpy_words(3)),
    "torch": (lambda: torch.Generator().manual_seed(3), lambda: _torch_words(3)),
}


@pytest.mark.parametrize("backend", ["numpy", "jax", "torch"])
@pytest.mark.parametrize("kind", sorted(KEYS))
@pytest.mark.parametrize("fmt", STOCHASTIC)
def test_any_key_on_any_backend_draws_the_keys_own_words(backend, kind, fmt):
    make_key, words = KEYS[kind]
    x = to_backend(X, backend)
    got = dmxnum.cast(x, fmt, key=make_key())
    assert type(got) is type(x) and tuple(got.shape) == X.shape
    want = dmxnum.cast(x, fmt, random_bits=to_backend(words(), backend))
    assert _same_bits(got, want)
    # the same words whatever the input's backend
    assert _same_bits(got, dmxnum.cast(X, fmt, key=make_key()))


def test_int_seed_is_drawn_by_the_inputs_backend():
    fmt = "XP[8,4](CSS)"
    assert _same_bits(dmxnum.cast(X, fmt, key=3), dmxnum.cast(X, fmt, random_bits=_numpy_words(3)))
    assert _same_bits(dmxnum.cast(jnp.asarray(X), fmt, key=3),
                      dmxnum.cast(X, fmt, random_bits=_jax_words(jax.random.key(3))))
    assert _same_bits(dmxnum.cast(torch.from_numpy(X), fmt, key=np.int64(3)),
                      dmxnum.cast(X, fmt, random_bits=_torch_words(3)))


@pytest.mark.parametrize("key", [np.random.default_rng(0), torch.Generator().manual_seed(0)],
                         ids=["numpy", "torch"])
def test_host_generators_are_refused_under_jit(key):
    with pytest.raises(TypeError, match=r"under jax\.jit.*JAX\s+PRNG key.*random_bits"):
        jax.jit(lambda v: dmxnum.cast(v, "XP[8,4](CSS)", key=key))(jnp.asarray(X))
    with pytest.raises(TypeError, match=r"under jax\.jit"):
        jax.jit(lambda v: dmxnum.mask(v, "BERN", key=key))(jnp.full((8,), 0.5, jnp.float32))
    # eager JAX and a JAX key under jit are fine
    dmxnum.cast(jnp.asarray(X), "XP[8,4](CSS)", key=key)
    jitted = jax.jit(lambda v, k: dmxnum.cast(v, "XP[8,4](CSS)", key=k))(jnp.asarray(X), jax.random.key(3))
    assert _same_bits(jitted, dmxnum.cast(X, "XP[8,4](CSS)", random_bits=_jax_words(jax.random.key(3))))


@pytest.mark.parametrize("key", [1.5, "seed", True, np.zeros(2, np.uint32)])
def test_other_keys_raise_type_error(key):
    with pytest.raises(TypeError, match="key must be an int seed, a JAX PRNG key, a numpy Generator or a torch.Generator"):
        dmxnum.cast(X, "XP[8,4](CSS)", key=key)


# ----------------------------------------------------------------------------- 2. suggestions
@pytest.mark.parametrize(
    "text, first",
    [
        ("MXFP4", "MXFP4_E2M1"),
        ("mxfp4", "MXFP4_E2M1"),
        ("MXFP6", "MXFP6_E3M2"),
        ("MXFP8", "MXFP8_E4M3"),
        ("FP8", "FP8_E4M3"),
        ("FP8_E4M2", "FP8_E4M3"),
        ("MXFP4_E2M2", "MXFP4_E2M1"),
        ("FP61", "FP16"),
        ("BFLOAT16", "BF16"),
        ("BFP16_64", "BFP16_64_LD"),
        ("SAM", "SAME"),
    ],
)
def test_suggestions_rank_shared_prefix_and_digits(text, first):
    with pytest.raises(ShorthandError) as info:
        dmxnum.parse(text)
    assert str(info.value).endswith(f"; did you mean {first} (= {dmxnum.parse(first)})?") or \
        str(info.value).endswith(f"; did you mean {first}?")


def test_no_suggestion_for_unrelated_words():
    with pytest.raises(ShorthandError) as info:
        dmxnum.parse("HELLO")
    assert "did you mean" not in str(info.value)


# ----------------------------------------------------------------------------- 3. whitespace
@pytest.mark.parametrize(
    "text, canonical",
    [
        (" BFP[8|8]{64, -1}(S N) ", "BFP[8|8]{64,-1}(SN)"),
        ("XP [ 8 , 0 ] ( C S N )", "XP[8,0](CSN)"),
        ("fp[1|5|10,15]\t(fn)", "FP[1|5|10,15](FN)"),
        ("MXFP8 [E4M3] {32}", "MXFP8[E4M3]{32,-1}"),
        ("MX FP4_E2M1", "MXFP4[E2M1]{32,-1}"),
        ("SBFP< INT8 >< FP[0|8|0,127](_N) >{16,\n-1}", "SBFP<XP[8,0](CSN)><FP[0|8|0,127](_N)>{16,-1}"),
    ],
)
def test_format_shorthands_ignore_whitespace(text, canonical):
    assert str(dmxnum.parse(text)) == canonical


def test_sparsity_and_logic_shorthands_ignore_whitespace_too():
    assert str(parse_sparseness(" BTOPK{ 2 : 4 , -1 }( U ) ")) == "BTOPK{2:4,-1}(U)"
    assert str(parse_sparseness("TOPK {0.5}\t(M)")) == str(parse_sparseness("TOPK{0.5}(M)"))
    assert str(parse_logic(" SOFTMAX( base2 , float16 ) ")) == str(parse_logic("SOFTMAX(base2,float16)"))
    assert str(parse_logic("LAYER NORM(fallback, 5, float16)")) == str(parse_logic("LAYERNORM(fallback,5,float16)"))


def test_error_columns_count_in_the_text_as_given():
    with pytest.raises(ShorthandError, match=r"bad rounding letter Y 'Q'.*\(column 20\)"):
        dmxnum.parse("BFP[8|8]{64, -1}(S Q)")
    with pytest.raises(ShorthandError, match="the shorthand is empty"):
        dmxnum.parse(" \t\n")


# ----------------------------------------------------------------------------- 4. limits
LIMITS = ("bits_per_element", "max_value", "min_positive", "blocked")
ONE_OF_EACH = {
    "XP[8,4](CSN)": (8.0, 127 / 16, 1 / 16, False),
    "FP[1|5|10,15](_NI)": (16.0, 65504.0, 2.0**-24, False),
    "BFP[8|8]{64,-1}(SN)": (8.125, 127 * 2.0**121, 2.0**-133, True),
    "MXINT8{32,-1}": (8.25, 127 * 2.0**121, 2.0**-133, True),
    "MXFP4[E2M1]{32,-1}": (4.25, 6 * 2.0**127, 2.0**-128, True),
    "SBFP<XP[8,0](CSN)><FP[0|8|0,127](_N)>{16,-1}": (8.5, 127 * 2.0**127, 2.0**-126, True),
    "SAME": (None, None, None, False),
}


@pytest.mark.parametrize("text", sorted(ONE_OF_EACH))
def test_every_format_has_every_listed_limit(text):
    fmt = dmxnum.parse(text)
    assert tuple(getattr(fmt, name) for name in LIMITS) == ONE_OF_EACH[text]


def test_same_limits_are_none():
    assert Same().bits_per_element is None and Same().max_value is None and Same().min_positive is None


# ----------------------------------------------------------------------------- 5. meta tensors
@pytest.mark.parametrize("fmt", ["BFP[8|8]{4,-1}(SN)", "BFP[4|8]{4,0}(_S)", "MXINT8{4,-1}", "MXFP4_E2M1",
                                 "MXFP8[E4M3]{8,0}", "SBFP<XP[8,0](CSN)><FP[0|8|0,127](_N)>{16,-1}",
                                 "FP[1|5|2,15](_S)", "XP[8,0](CSS)"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_casts_of_meta_tensors_are_meta_tensors(fmt, dtype):
    x = torch.empty(8, 40, device="meta", dtype=dtype)
    y = dmxnum.cast(x, fmt, key=0)
    assert y.device.type == "meta" and y.shape == x.shape and y.dtype == dtype


@pytest.mark.parametrize("spec", ["TOPK{0.5}(U)", "BTOPK{2:4,-1}(M)", "BERN"])
def test_sparsify_of_meta_tensors_is_meta(spec):
    w = torch.empty(8, 40, device="meta")
    scores = torch.empty(8, 40, device="meta") if spec == "BERN" else None
    y = dmxnum.sparsify(w, spec, scores=scores, key=0)
    assert y.device.type == "meta" and y.shape == w.shape and y.dtype == w.dtype


# ----------------------------------------------------------------------------- 6. dir and errors
def test_dir_lists_the_lazy_public_api():
    # a fresh interpreter: nothing has been looked up (and so cached) yet
    out = subprocess.run([sys.executable, "-c", "import dmxnum; print(' '.join(dir(dmxnum)))"],
                         capture_output=True, text=True, check=True).stdout
    names = out.split()
    assert names == sorted(names)
    assert set(dmxnum.__all__) <= set(names)
    for name in ("cast", "parse", "encode", "decode", "sparsify", "mask", "approximate", "testing", "reference"):
        assert name in names


@pytest.mark.parametrize("value", [[1.0], 1.5, (1.0, 2.0), "x"])
def test_cast_of_a_non_array_is_a_type_error(value):
    with pytest.raises(TypeError, match=r"expected an array \(NumPy, JAX or PyTorch\), got " + type(value).__name__):
        dmxnum.cast(value, "FP16")


@pytest.mark.parametrize(
    "x, hint",
    [
        (np.ones(3, np.int32), "x.astype(np.float32)"),
        (jnp.ones(3, jnp.int32), "x.astype(jnp.float32)"),
        (torch.ones(3, dtype=torch.int32), "x.float()"),
        (torch.ones(3, dtype=torch.bool), "x.float()"),
    ],
)
def test_integer_dtype_error_suggests_the_backends_own_conversion(x, hint):
    with pytest.raises(UnsupportedDtypeError) as info:
        dmxnum.cast(x, "FP16")
    assert str(info.value).endswith(f"(convert integers explicitly, e.g. {hint})")
    assert isinstance(info.value, TypeError)
