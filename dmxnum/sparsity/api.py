"""Public sparsity functions: :func:`mask`, :func:`sparsify`, :func:`is_sparse`.

They validate their arguments, pick the kernel for the sparseness value and
attach the gradient rule; the numerics live in :mod:`dmxnum.sparsity.kernels`.
"""

from __future__ import annotations

from typing import Any, Callable, Union

import numpy as np

from .._backend import backend_name, check_float, is_dtensor, is_tracing, namespace, resolve_words, to_float32
from ._shim import bits_to_float, float_bits, layout, masked_select
from .kernels import bernoulli_keep, nm_keep, nonzero_bits, order_keys, topk_keep
from .values import Bernoulli, BlockTopK, Dense, SparsenessLike, TopK, parse_sparseness

Array = Any
Scores = Union[Array, Callable[[Array], Array], None]


def normalize_axis(spec: BlockTopK, shape: tuple[int, ...]) -> int:
    """The non-negative axis of ``spec`` for an array of ``shape``; ``ValueError`` if invalid.

    The axis must exist and its length must be a multiple of ``spec.m``.
    """
    ndim = len(shape)
    if not -ndim <= spec.axis < ndim:
        raise ValueError(
            f"{spec}: axis {spec.axis} does not exist for an array of shape {tuple(shape)} "
            f"(ndim {ndim}); allowed axes: {-ndim}..{ndim - 1}"
            if ndim
            else f"{spec}: needs an array with at least one dimension, got shape ()"
        )
    axis = spec.axis % ndim
    if shape[axis] % spec.m:
        raise ValueError(
            f"{spec}: axis {spec.axis} of shape {tuple(shape)} has length {shape[axis]}, "
            f"which is not a multiple of the group size M = {spec.m}"
        )
    return axis


def magnitude(w: Array) -> Array:
    """``|w|`` computed on the bit pattern (clears the sign bit: exact for subnormals; NaN stays NaN)."""
    lay = layout(w, "w")
    return bits_to_float(float_bits(w) & lay.magnitude, w)


def _stop_gradient(x: Array) -> Array:
    name = backend_name(x)
    if name == "torch":
        return x.detach()
    if name == "jax":
        import jax

        return jax.lax.stop_gradient(x)
    return x


def _probabilities(scores: Array) -> Array:
    """Bernoulli probabilities as float32 (bfloat16 widened on the bits, others converted with RNE)."""
    lay = layout(scores)
    if lay.int_name == "int16" and "bfloat16" in str(scores.dtype):
        xp = namespace(scores)
        wide = xp.astype(float_bits(scores), xp.int32) << 16
        return bits_to_float(wide, xp.zeros_like(wide, dtype=xp.float32))
    return to_float32(scores)


def _check_probabilities(p32: Array) -> None:
    """Eagerly reject probabilities outside [0, 1] or NaN, naming the first bad value."""
    if is_tracing(p32):
        return
    keys = order_keys(p32)
    bad = (keys < 0) | (keys > 0x3F800000)  # 0x3F800000 = bits of 1.0; NaN has the lowest key
    xp = namespace(p32)
    if bool(xp.any(bad)):
        host = _to_numpy(p32).reshape(-1)
        flat = _to_numpy(bad).reshape(-1)
        i = int(np.argmax(flat))
        raise ValueError(
            f"BERN scores are keep probabilities and must lie in [0, 1]; got {host[i]!r} at flat index {i} "
            f"({int(flat.sum())} of {flat.size} out of range)"
        )


def _to_numpy(x: Array) -> np.ndarray:
    if backend_name(x) == "torch":
        return x.detach().cpu().numpy()
    return np.asarray(x)


def mask(scores: Array, spec: SparsenessLike, key: Any = None, random_bits: Any = None) -> Array:
    """The bool keep-mask of ``spec`` for ``scores`` (same shape and backend as ``scores``).

    ``scores``: a float16/bfloat16/float32/float64 array. Ordering: larger
    score first; NaN ranks below every number (below -Inf); -0 and +0 are
    equal; equal scores go to the lower flat index (the lower index inside
    the group for N:M). Subnormal scores are ordered exactly on every backend.

    * ``DENSE``: all True.
    * ``TOPK{d}``: exactly ``round_half_even(d * numel)`` True.
    * ``BTOPK{K:M,a}``: exactly K True in every group of M consecutive
      elements along axis ``a``; ``ValueError`` when that axis does not exist
      or its length is not a multiple of M.
    * ``BERN``: True iff ``(r >> 8) * 2^-24 < p`` for the score ``p``
      (converted to float32) and the element's uint32 word ``r`` drawn from
      ``key`` or given as ``random_bits``; ``MissingRandomnessError`` without
      either. Scores outside [0, 1] or NaN raise ``ValueError`` (checked
      eagerly; under ``jax.jit``/``torch.compile`` they are not checked: a NaN
      or negative score is never kept, a score above 1 always is).

    DTensor ``scores`` give a bool DTensor with their placements, as for
    :func:`sparsify`.
    """
    spec = parse_sparseness(spec)
    backend_name(scores)  # TypeError for non-arrays
    layout(scores)  # UnsupportedDtypeError for non-float scores
    xp = namespace(scores)
    if isinstance(spec, Dense):
        return xp.ones_like(scores, dtype=xp.bool)
    if is_dtensor(scores):
        return _mask_dtensor(scores, spec, key, random_bits)
    if isinstance(spec, TopK):
        numel = 1
        for s in scores.shape:
            numel *= int(s)
        return topk_keep(scores, spec.kept(numel))
    if isinstance(spec, BlockTopK):
        axis = normalize_axis(spec, tuple(scores.shape))
        return nm_keep(scores, spec.k, spec.m, axis)
    if isinstance(spec, Bernoulli):
        p32 = _probabilities(scores)
        _check_probabilities(p32)
        top24 = resolve_words(p32, key, random_bits)
        return bernoulli_keep(p32, top24)
    raise TypeError(f"unknown sparseness {spec!r}")  # pragma: no cover


def sparsify(
    w: Array,
    spec: SparsenessLike,
    scores: Scores = None,
    key: Any = None,
    random_bits: Any = None,
    *,
    trainable_scores: bool = False,
) -> Array:
    """``w`` with the elements that ``mask(scores, spec)`` drops set to +0.

    Kept elements are returned bit for bit (NaN, Inf, -0 included); dropped
    ones become +0 (also where ``w`` is NaN or Inf, so the result equals
    ``decompress_nm(*compress_nm(w, ...))`` for N:M). The dtype and backend
    are ``w``'s. ``DENSE`` returns ``w`` itself.

    ``scores``: ``None`` for ``|w|`` (not allowed for ``BERN``, whose scores
    are keep probabilities), an array of ``w``'s shape and backend, or a
    function ``scores(w) -> array``. ``key`` / ``random_bits``: the
    randomness for ``BERN`` (see :func:`mask`).

    Gradient with respect to ``w`` (JAX and PyTorch): ``G = U`` passes the
    incoming gradient unmasked (straight-through); ``G = M`` and ``BERN``
    zero it where the mask is False. The mask itself is computed from the
    scores with gradients stopped, unless ``trainable_scores=True``: then the
    scores receive ``g * w`` (the mask treated as the identity with respect
    to the scores, as in supermask / edge-popup training), and a score
    function's gradient flows on to ``w`` by the chain rule.

    A ``DTensor`` ``w`` gives a DTensor with its placements, equal bit for bit
    to the result on ``w.full_tensor()``: ``BERN`` and N:M with whole groups
    per shard run on each shard; ``TOPK`` and straddling N:M groups gather
    (a one-time :class:`~dmxnum.errors.DistributedWarning`). Scores and
    words: DTensors or full arrays of the global shape (see ``docs/distributed.md``).
    """
    spec = parse_sparseness(spec)
    backend = backend_name(w)
    check_float(w, "w")
    if isinstance(spec, Dense):
        return w
    if is_dtensor(w):
        return _sparsify_dtensor(w, spec, scores, key, random_bits, trainable_scores)
    if backend == "jax":
        import jax

        with jax.named_scope(f"dmxnum.sparsify[{spec}]"):  # location metadata in exported modules
            return _sparsify(w, spec, scores, key, random_bits, trainable_scores)
    return _sparsify(w, spec, scores, key, random_bits, trainable_scores)


def _sparsify(
    w: Array, spec: Any, scores: Scores, key: Any, random_bits: Any, trainable_scores: bool
) -> Array:
    backend = backend_name(w)
    if scores is None:
        if spec.needs_scores:
            raise ValueError(
                f"{spec} has no default scores: call sparsify(w, 'BERN', scores=p, key=...) with keep "
                "probabilities p in [0, 1] of w's shape"
            )
        if trainable_scores:
            raise ValueError("trainable_scores=True needs scores= (an array or a function of w) to train")
        s = magnitude(_stop_gradient(w))
    else:
        s = scores(w) if callable(scores) else scores
        if backend_name(s) != backend:
            raise TypeError(f"scores are a {backend_name(s)} array but w is a {backend} array; use one backend")
        if tuple(s.shape) != tuple(w.shape):
            raise ValueError(f"scores have shape {tuple(s.shape)}; expected w's shape {tuple(w.shape)}")
    keep = mask(_stop_gradient(s), spec, key, random_bits)
    return masked_select(w, keep, spec.grad, s if trainable_scores else None)


def _sparsify_dtensor(
    w: Any, spec: Any, scores: Scores, key: Any, random_bits: Any, trainable_scores: bool
) -> Any:
    """``sparsify`` of a ``DTensor``: a DTensor with ``w``'s placements equal to the
    result on ``w.full_tensor()`` re-sharded (see :mod:`dmxnum._dtensor`).
    ``BERN`` runs on each shard (words drawn for the global shape and sliced);
    N:M groups too where shards hold whole groups along the group axis (else it
    is gathered, with a warning); ``TOPK`` ranks the whole tensor (gathered).
    ``scores`` may be a DTensor, a full tensor of ``w``'s global shape or a
    function applied to the DTensor ``w``."""
    from .. import _dtensor as D

    s = scores(w) if callable(scores) else scores
    if s is not None and tuple(s.shape) != tuple(w.shape):
        raise ValueError(f"scores have shape {tuple(s.shape)}; expected w's (global) shape {tuple(w.shape)}")
    words = D.global_words(w, key, random_bits) if spec.needs_scores and s is not None else None

    def local(v: Array, s: Array | None, r: Array | None) -> Array:
        return _sparsify(v, spec, s, None, r, trainable_scores)

    return D.run(w, local, _shard_layout(spec, tuple(w.shape)), f"dmxnum.sparsify({spec})", [s, words])


def _mask_dtensor(scores: Any, spec: Any, key: Any, random_bits: Any) -> Any:
    """``mask`` of a ``DTensor`` of scores: a bool DTensor with the scores'
    placements, laid out as :func:`_sparsify_dtensor` does."""
    from .. import _dtensor as D

    words = D.global_words(scores, key, random_bits) if spec.needs_scores else None

    def local(v: Array, r: Array | None) -> Array:
        return mask(v, spec, None, r)

    return D.run(scores, local, _shard_layout(spec, tuple(scores.shape)), f"dmxnum.mask({spec})", [words])


def _shard_layout(spec: Any, shape: tuple[int, ...]) -> Any:
    """What ``spec`` needs of the shards: TOPK the whole tensor, N:M whole groups."""
    from .. import _dtensor as D

    if isinstance(spec, TopK):
        return D.Layout(None, reason=f"{spec} ranks every element of the tensor")
    if isinstance(spec, BlockTopK):
        return D.Layout(block=(normalize_axis(spec, shape), spec.m))
    return D.ELEMENTWISE


def is_sparse(w: Array, spec: SparsenessLike) -> Any:
    """Whether ``w`` already satisfies ``spec``'s sparsity pattern.

    Nonzero is decided on the bit pattern: ±0 are zero; subnormals, Inf and
    NaN are nonzero. ``DENSE``: True. ``TOPK{d}``: at most
    ``round_half_even(d * numel)`` nonzeros. ``BTOPK{K:M,a}``: every group of
    M along axis ``a`` has at most K nonzeros (``ValueError`` for a bad axis
    or length). ``BERN``: ``ValueError`` (a random pattern has no test).
    Returns a Python bool, or a 0-d bool array when traced (``jax.jit``,
    ``torch.compile``).
    """
    spec = parse_sparseness(spec)
    backend_name(w)
    if isinstance(spec, Bernoulli):
        raise ValueError("is_sparse is undefined for BERN: a Bernoulli mask is random, not a pattern to check")
    if isinstance(spec, Dense):
        return True
    nz = nonzero_bits(w)
    xp = namespace(w)
    if isinstance(spec, TopK):
        numel = 1
        for s in w.shape:
            numel *= int(s)
        result = xp.sum(xp.astype(nz, xp.int32)) <= spec.kept(numel)
    else:
        from .kernels import group_view

        axis = normalize_axis(spec, tuple(w.shape))
        counts = xp.sum(xp.astype(group_view(nz, spec.m, axis), xp.int32), axis=-1)
        result = xp.all(counts <= spec.k)
    return result if is_tracing(w) else bool(result)


__all__ = ["mask", "sparsify", "is_sparse", "magnitude", "normalize_axis"]
