"""Masks and sparsify on NumPy, JAX (eager) and PyTorch (eager) equal the reference exactly."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import dmxnum
from dmxnum.errors import MissingRandomnessError, UnsupportedDtypeError
from dmxnum.reference import sparsity as ref
from dmxnum.sparsity import Bernoulli, BlockTopK, TopK, is_sparse, mask, sparsify
from dmxnum.sparsity.kernels import PAIRWISE_MAX_M
from dmxnum.testing.sparsity_strategies import probability_arrays, score_arrays, sparsity_cases

from ._helpers import BACKENDS, bits, to_backend, to_numpy

DETERMINISTIC = ("DENSE", "TOPK", "BTOPK")
#: JAX compiles every primitive per shape, even eagerly: search it on a few shape buckets.
JAX_SHAPES = [(4, 24), (2, 3, 8)]


def cases(backend, kinds=DETERMINISTIC, **kw):
    """``sparsity_cases`` with shapes bucketed for JAX."""
    if backend == "jax":
        kw["shapes"] = JAX_SHAPES
    return sparsity_cases(kinds, **kw)


def _words(shape, seed):
    return np.random.default_rng(seed).integers(0, 2**32, size=shape, dtype=np.uint32)


@pytest.mark.parametrize("backend", BACKENDS)
@given(data=st.data())
def test_mask_equals_reference(backend, data):
    spec, scores = data.draw(cases(backend))
    got = to_numpy(mask(to_backend(scores, backend), spec))
    assert got.dtype == np.bool_ and got.shape == scores.shape
    np.testing.assert_array_equal(got, ref.mask(scores, spec))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("m", [16, 40])  # the largest pairwise group, and the argsort path
@given(data=st.data())
def test_large_groups_equal_reference(backend, m, data):
    axis = data.draw(st.sampled_from([0, 1, -1]))
    scores = data.draw(score_arrays((m, 3) if axis == 0 else (3, m)))
    spec = BlockTopK(data.draw(st.integers(0, m)), m, axis)
    np.testing.assert_array_equal(to_numpy(mask(to_backend(scores, backend), spec)), ref.mask(scores, spec))


@pytest.mark.parametrize("backend", BACKENDS)
@given(data=st.data())
def test_sparsify_equals_reference_bit_for_bit(backend, data):
    spec, w = data.draw(cases(backend, ("TOPK", "BTOPK")))
    out = to_numpy(sparsify(to_backend(w, backend), spec))
    assert out.dtype == w.dtype
    np.testing.assert_array_equal(bits(out), bits(ref.sparsify(w, spec)))


@pytest.mark.parametrize("backend", BACKENDS)
@given(data=st.data())
def test_exact_kept_counts(backend, data):
    spec, scores = data.draw(cases(backend, ("TOPK", "BTOPK")))
    got = to_numpy(mask(to_backend(scores, backend), spec))
    if isinstance(spec, TopK):
        assert got.sum() == spec.kept(scores.size)
    else:
        groups = np.moveaxis(got, spec.axis, -1).reshape(-1, spec.m)
        assert (groups.sum(axis=1) == spec.k).all()
        assert is_sparse(to_backend(np.where(got, 1.0, 0.0).astype(np.float32), backend), spec)


@pytest.mark.parametrize(
    "backend, dtype",
    [(b, d) for b in BACKENDS for d in (np.float16, ml_dtypes.bfloat16, np.float64) if (b, d) != ("jax", np.float64)],
)
@given(data=st.data())
def test_other_float_dtypes_are_ordered_exactly(backend, dtype, data):
    spec, scores32 = data.draw(cases(backend))
    with np.errstate(over="ignore"):
        scores = scores32.astype(dtype)
    np.testing.assert_array_equal(to_numpy(mask(to_backend(scores, backend), spec)), ref.mask(scores, spec))


@pytest.mark.parametrize("backend", BACKENDS)
def test_hand_worked_orderings(backend):
    nan, inf = np.nan, np.inf
    # each row is one group of 4 (2:4): expected kept positions by the rule
    scores = np.array(
        [
            [1.0, 1.0, 1.0, 1.0],  # all equal: the two lowest indices
            [nan, nan, 0.0, nan],  # NaN ranks below every number: 0.0 first, then the first NaN
            [-inf, nan, -1.0, -0.0],  # -0 > -1 > -inf > NaN
            [0.0, -0.0, 1e-45, 0.0],  # the subnormal beats zeros; -0 ties +0 -> lower index
            [3.0, 5.0, 5.0, 3.0],  # tie at the top
            [nan, nan, nan, nan],
        ],
        dtype=np.float32,
    )
    expected = np.array(
        [
            [1, 1, 0, 0],
            [1, 0, 1, 0],
            [0, 0, 1, 1],
            [1, 0, 1, 0],
            [0, 1, 1, 0],
            [1, 1, 0, 0],
        ],
        dtype=bool,
    )
    got = to_numpy(mask(to_backend(scores, backend), "BTOPK{2:4,-1}(U)"))
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(ref.mask(scores, "BTOPK{2:4,-1}(U)"), expected)
    # axis 0 on the transpose gives the transposed mask
    got0 = to_numpy(mask(to_backend(np.ascontiguousarray(scores.T), backend), "BTOPK{2:4,0}(M)"))
    np.testing.assert_array_equal(got0, expected.T)
    # TOPK over everything: 24 elements, density 0.25 -> 6 kept
    topk = to_numpy(mask(to_backend(scores, backend), "TOPK{0.25}(U)"))
    assert topk.sum() == 6
    np.testing.assert_array_equal(topk, ref.mask(scores, "TOPK{0.25}(U)"))
    assert topk[4, 1] and topk[4, 2] and topk[4, 0] and topk[4, 3] and topk[0, 0] and topk[0, 1]


@pytest.mark.parametrize("backend", BACKENDS)
def test_sparsify_drops_nan_and_inf_to_plus_zero_and_keeps_bits(backend):
    w = np.array([[-0.0, np.nan, -np.inf, 1e-40], [-2.0, 1.0, -3.0, 0.5]], dtype=np.float32)
    out = to_numpy(sparsify(to_backend(w, backend), "BTOPK{1:2,-1}(M)"))
    expected = np.array([[-0.0, np.nan, -np.inf, 0.0], [-2.0, 0.0, -3.0, 0.0]], dtype=np.float32)
    # |w| scores: in the group [-0, NaN], |-0| = 0 beats NaN, so -0 is kept and NaN becomes +0
    expected[0, 1] = 0.0
    np.testing.assert_array_equal(bits(out), bits(expected))


@pytest.mark.parametrize("backend", BACKENDS)
def test_dense_returns_input_and_all_true_mask(backend):
    w = to_backend(np.arange(6, dtype=np.float32).reshape(2, 3), backend)
    assert sparsify(w, "DENSE") is w
    assert to_numpy(mask(w, "DENSE")).all()
    assert is_sparse(w, "DENSE") is True


@pytest.mark.parametrize("backend", BACKENDS)
def test_scores_array_and_function(backend):
    w = np.array([[4.0, -3.0, 2.0, -1.0]], dtype=np.float32)
    s = np.array([[0.0, 1.0, 0.0, 2.0]], dtype=np.float32)
    wb = to_backend(w, backend)
    out = to_numpy(sparsify(wb, "BTOPK{2:4,-1}(U)", scores=to_backend(s, backend)))
    np.testing.assert_array_equal(out, [[0.0, -3.0, 0.0, -1.0]])
    out = to_numpy(sparsify(wb, "BTOPK{2:4,-1}(U)", scores=lambda x: -x))
    np.testing.assert_array_equal(out, [[0.0, -3.0, 0.0, -1.0]])


@pytest.mark.parametrize("backend", BACKENDS)
@given(p=probability_arrays(st.sampled_from([(4, 24), (2, 3, 8)])), seed=st.integers(0, 2**32 - 1))
def test_bernoulli_equals_reference_given_words(backend, p, seed):
    words = _words(p.shape, seed)
    got = to_numpy(mask(to_backend(p, backend), "BERN", random_bits=to_backend(words, backend)))
    np.testing.assert_array_equal(got, ref.mask(p, "BERN", random_bits=words))
    out = to_numpy(sparsify(to_backend(p, backend), "BERN", scores=to_backend(p, backend), random_bits=words))
    np.testing.assert_array_equal(bits(out), bits(ref.sparsify(p, "BERN", scores=p, random_bits=words)))


@pytest.mark.parametrize("backend", BACKENDS)
def test_bernoulli_keep_rule_at_the_boundaries(backend):
    # r >> 8 = u; keep iff u * 2^-24 < p
    u = np.array([0, 0, 1, 1, 2**23, 2**23, 2**24 - 1, 2**24 - 1, 0], dtype=np.uint32)
    words = (u << 8) | np.uint32(0xFF)  # low bits are ignored
    p = np.array([0.0, 1e-40, 2.0**-24, 2.0**-23, 0.5, 0.5 + 2.0**-24, 1.0 - 2.0**-24, 1.0, -0.0], dtype=np.float32)
    expected = np.array([False, True, False, True, False, True, False, True, False])
    got = to_numpy(mask(to_backend(p, backend), Bernoulli(), random_bits=to_backend(words, backend)))
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(ref.mask(p, "BERN", random_bits=words), expected)


@pytest.mark.parametrize("backend", BACKENDS)
def test_bernoulli_reproducible_with_a_key(backend):
    p = to_backend(np.full((16, 16), 0.5, dtype=np.float32), backend)
    a = to_numpy(mask(p, "BERN", key=123))
    b = to_numpy(mask(p, "BERN", key=123))
    c = to_numpy(mask(p, "BERN", key=124))
    np.testing.assert_array_equal(a, b)
    assert (a != c).any()
    assert 64 < a.sum() < 192


def test_bernoulli_key_kinds():
    import jax
    import torch

    p = np.full((8,), 0.5, dtype=np.float32)
    g1, g2 = np.random.default_rng(5), np.random.default_rng(5)
    np.testing.assert_array_equal(mask(p, "BERN", key=g1), mask(p, "BERN", key=g2))
    k = jax.random.key(3)
    np.testing.assert_array_equal(mask(to_backend(p, "jax"), "BERN", key=k), mask(to_backend(p, "jax"), "BERN", key=k))
    t1, t2 = torch.Generator().manual_seed(9), torch.Generator().manual_seed(9)
    assert torch.equal(mask(to_backend(p, "torch"), "BERN", key=t1), mask(to_backend(p, "torch"), "BERN", key=t2))


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize("backend", BACKENDS)
def test_bad_inputs_raise_clear_errors(backend):
    w = to_backend(np.ones((3, 6), dtype=np.float32), backend)
    with pytest.raises(ValueError, match=r"axis -1 of shape \(3, 6\) has length 6.*multiple of the group size M = 4"):
        mask(w, "BTOPK{2:4,-1}(U)")
    with pytest.raises(ValueError, match=r"axis 0 of shape \(3, 6\) has length 3.*M = 2"):
        sparsify(w, "BTOPK{1:2,0}(U)")
    with pytest.raises(ValueError, match=r"axis 2 does not exist.*shape \(3, 6\)"):
        mask(w, "BTOPK{1:2,2}(U)")
    with pytest.raises(ValueError, match="BTOPK"):
        is_sparse(w, "BTOPK{1:4,-1}(U)")
    with pytest.raises(MissingRandomnessError, match="key="):
        mask(w, "BERN")
    with pytest.raises(ValueError, match="no default scores"):
        sparsify(w, "BERN", key=0)
    bad = np.full((3, 6), 0.5, dtype=np.float32)
    bad[1, 2] = 1.5
    with pytest.raises(ValueError, match=r"\[0, 1\].*1\.5.*flat index 8"):
        mask(to_backend(bad, backend), "BERN", key=0)
    bad[1, 2] = np.nan
    with pytest.raises(ValueError, match=r"nan"):
        sparsify(w, "BERN", scores=to_backend(bad, backend), key=0)
    bad[1, 2] = -1e-40
    with pytest.raises(ValueError, match=r"e-40"):
        mask(to_backend(bad, backend), "BERN", key=0)
    with pytest.raises(ValueError, match="is_sparse is undefined for BERN"):
        is_sparse(w, "BERN")
    with pytest.raises(ValueError, match=r"scores have shape \(6,\)"):
        sparsify(w, "TOPK{0.5}(U)", scores=to_backend(np.ones(6, np.float32), backend))
    with pytest.raises(UnsupportedDtypeError, match="int32"):
        mask(to_backend(np.ones((4,), np.int32), backend), "BTOPK{2:4,-1}(U)")
    with pytest.raises(TypeError):
        sparsify(to_backend(np.ones((4,), np.int32), backend), "BTOPK{2:4,-1}(U)")
    with pytest.raises(ValueError, match="trainable_scores"):
        sparsify(w, "TOPK{0.5}(U)", trainable_scores=True)


def test_scores_from_another_backend_are_rejected():
    import torch

    with pytest.raises(TypeError, match="numpy array but w is a torch array"):
        sparsify(torch.ones(4), "TOPK{0.5}(U)", scores=np.ones(4, np.float32))


# ----------------------------------------------------------------------------- is_sparse
@pytest.mark.parametrize("backend", BACKENDS)
@given(data=st.data(), zero_rate=st.sampled_from([0.3, 0.6, 0.9]), seed=st.integers(0, 99))
def test_is_sparse_equals_reference(backend, data, zero_rate, seed):
    spec, w = data.draw(cases(backend, ("TOPK", "BTOPK")))
    w = np.where(np.random.default_rng(seed).random(w.shape) < zero_rate, np.float32(0), w).astype(np.float32)
    assert is_sparse(to_backend(w, backend), spec) is ref.is_sparse(w, spec)
    # a sparsified array always satisfies its own pattern
    assert is_sparse(sparsify(to_backend(w, backend), spec), spec) is True


@pytest.mark.parametrize("backend", BACKENDS)
def test_is_sparse_counts_subnormal_and_nan_as_nonzero(backend):
    w = np.array([[1e-40, np.nan, 0.0, -0.0]], dtype=np.float32)
    assert is_sparse(to_backend(w, backend), "BTOPK{2:4,-1}(U)") is True
    assert is_sparse(to_backend(w, backend), "BTOPK{1:4,-1}(U)") is False
    assert is_sparse(to_backend(w, backend), "TOPK{0.5}(U)") is True
    assert is_sparse(to_backend(w, backend), "TOPK{0.25}(U)") is False


def test_top_level_exports():
    assert dmxnum.sparsify is sparsify and dmxnum.mask is mask and dmxnum.is_sparse is is_sparse
    assert dmxnum.parse_sparseness("DENSE") == dmxnum.sparsity.Dense()
    assert BlockTopK(2, 4)(np.ones(4, np.float32)).tolist() == [1.0, 1.0, 0.0, 0.0]
    assert 16 <= PAIRWISE_MAX_M < 40


def test_empty_arrays():
    e = np.zeros((0, 4), np.float32)
    assert mask(e, "BTOPK{2:4,-1}(U)").shape == (0, 4)
    assert mask(e, "TOPK{0.5}(U)").shape == (0, 4)
    assert sparsify(e, "TOPK{0.5}(U)").shape == (0, 4)
    assert score_arrays((2,)) is not None
