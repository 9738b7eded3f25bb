"""The mask kernels: one backend-neutral source over the array API.

Everything here works on integer *order keys* derived from the scores' bit
patterns, never on float comparisons, so that the ordering is exact on every
backend (JAX on CPU treats float32 subnormals as zero in comparisons; keys
do not). For a float with signed-integer bit pattern ``b`` (same width)::

    key = INT_MIN              if the value is NaN      (below every number)
          -(b & (2^(w-1) - 1)) if b < 0                 (negative numbers and -0)
          b                    otherwise

(the sign-magnitude bits read as a two's-complement integer), which is
strictly increasing in the float value and equal for -0 and +0; -Inf gets
``-bits(+Inf)``, above NaN's ``INT_MIN``.
Ties (equal keys) go to the lower index.

* N:M (:func:`nm_keep`): the rank of each element inside its group is the
  number of group members that beat it (larger key, or equal key at a lower
  index), from ``M * (M - 1)`` comparisons between the group's columns (no
  sort); an element is kept iff its rank < K. For M > ``PAIRWISE_MAX_M`` a
  stable descending argsort of each group gives the ranks instead.
* TOPK (:func:`topk_keep`): one descending sort of the keys gives the
  threshold ``t``, the k-th largest key; keep ``key > t``, plus the first
  ``k - count(key > t)`` elements with ``key == t`` in flat order (a
  cumulative sum). Exactly ``k`` elements are kept.
* BERN (:func:`bernoulli_keep`): keep iff ``(r >> 8) * 2^-24 < p``, compared
  as order keys of float32 values (exact).
"""

from __future__ import annotations

from typing import Any

from .._backend import namespace
from ._shim import float_bits, layout

Array = Any

#: N:M groups up to this size use sort-free pairwise ranking; larger ones a stable argsort.
PAIRWISE_MAX_M = 16


def order_keys(scores: Array) -> Array:
    """Signed integer keys (same width as the scores' dtype) ordered like the scores, NaN lowest."""
    xp = namespace(scores)
    lay = layout(scores)
    b = float_bits(scores)
    mag = b & lay.magnitude
    sign = b >> (lay.width - 1)  # arithmetic shift: 0 or -1
    key = (mag ^ sign) - sign  # +mag or -mag: -0 and +0 both give 0
    return xp.where(mag > lay.inf, xp.full_like(b, lay.sign_min), key)


def _to_last(x: Array, axis: int) -> Array:
    xp = namespace(x)
    return x if axis == x.ndim - 1 else xp.moveaxis(x, axis, -1)


def _from_last(x: Array, axis: int) -> Array:
    xp = namespace(x)
    return x if axis == x.ndim - 1 else xp.moveaxis(x, -1, axis)


def group_view(x: Array, m: int, axis: int) -> Array:
    """``x`` with ``axis`` moved last and split into groups: shape ``(..., L // m, m)``."""
    xp = namespace(x)
    y = _to_last(x, axis)
    return xp.reshape(y, tuple(y.shape[:-1]) + (y.shape[-1] // m, m))


def ungroup(y: Array, shape: tuple[int, ...], axis: int) -> Array:
    """Inverse of :func:`group_view` for an array that had ``shape``."""
    xp = namespace(y)
    moved = list(shape)
    moved.append(moved.pop(axis))
    return _from_last(xp.reshape(y, tuple(moved)), axis)


def group_ranks(keys: Array) -> Array:
    """Rank (0 = best) of every element inside its group along the last axis (stable argsort path).

    ``rank_i = #{j : key_j > key_i or (key_j == key_i and j < i)}``.
    """
    xp = namespace(keys)
    order = xp.argsort(keys, axis=-1, descending=True, stable=True)
    return xp.argsort(order, axis=-1, stable=True)


def pairwise_keep(keys: Array, k: int) -> Array:
    """``rank < k`` for every element of the groups along the last axis, without sorting.

    Column ``i`` of the groups is compared with every other column ``j``:
    ``j`` beats ``i`` iff ``key_j >= key_i`` for ``j < i`` and ``key_j > key_i``
    for ``j > i`` (ties go to the lower index). ``M * (M - 1)`` comparisons
    of ``numel / M`` elements each; ``2 <= M <= PAIRWISE_MAX_M``.
    """
    xp = namespace(keys)
    m = keys.shape[-1]
    cols = [keys[..., i] for i in range(m)]
    kept = []
    for i in range(m):  # static in-group offsets, each vectorized over all groups
        rank = None
        for j in range(m):
            if j != i:
                beats = xp.astype((cols[j] >= cols[i]) if j < i else (cols[j] > cols[i]), xp.int8)
                rank = beats if rank is None else rank + beats
        kept.append(rank < k)
    return xp.stack(kept, axis=-1)


def nm_keep(scores: Array, k: int, m: int, axis: int) -> Array:
    """Bool mask keeping the ``k`` largest scores of every group of ``m`` along ``axis``.

    ``axis`` must be non-negative and ``scores.shape[axis] % m == 0``
    (checked by the caller).
    """
    xp = namespace(scores)
    if k == m:
        return xp.ones_like(scores, dtype=xp.bool)
    if k == 0:
        return xp.zeros_like(scores, dtype=xp.bool)
    keys = group_view(order_keys(scores), m, axis)
    keep = pairwise_keep(keys, k) if m <= PAIRWISE_MAX_M else group_ranks(keys) < k
    return ungroup(keep, tuple(scores.shape), axis)


def topk_keep(scores: Array, k: int) -> Array:
    """Bool mask keeping exactly the ``k`` largest scores of the whole array (ties: lower flat index)."""
    xp = namespace(scores)
    n = 1
    for s in scores.shape:
        n *= int(s)
    if k >= n:
        return xp.ones_like(scores, dtype=xp.bool)
    if k <= 0:
        return xp.zeros_like(scores, dtype=xp.bool)
    keys = xp.reshape(order_keys(scores), (n,))
    threshold = xp.sort(keys, descending=True)[k - 1]
    above = keys > threshold
    at = keys == threshold
    room = k - xp.sum(xp.astype(above, xp.int32))
    first_at = xp.cumulative_sum(xp.astype(at, xp.int32)) <= room
    keep = above | (at & first_at)
    return xp.reshape(keep, tuple(scores.shape))


def bernoulli_keep(probs32: Array, top24: Array) -> Array:
    """Keep iff ``top24 * 2^-24 < p``: ``probs32`` float32, ``top24`` int32 values ``r >> 8``."""
    xp = namespace(probs32)
    threshold = xp.astype(top24, xp.float32) * 5.9604644775390625e-08  # 2^-24: exact, never subnormal
    return order_keys(threshold) < order_keys(probs32)


def nonzero_bits(x: Array) -> Array:
    """Bool: ``x != 0`` decided on the bit pattern (subnormals and NaN count as nonzero)."""
    lay = layout(x, "w")
    return (float_bits(x) & lay.magnitude) != 0

