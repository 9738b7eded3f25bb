"""Block bookkeeping: per-block reductions along any axis, with a short last block.

An array of shape ``pre + (L,) + post`` is viewed, without moving axes, as
``pre + (nblocks, block) + post`` (padding a short last block); per-block
values have shape ``pre + (nblocks, 1) + post`` and broadcast back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .. import _backend as B

Array = Any


def normalize_axis(ndim: int, axis: int, fmt: Any) -> int:
    """Return ``axis`` as a non-negative index, or raise ``ValueError``."""
    if ndim < 1:
        raise ValueError(f"blocked format {fmt} needs an array with ndim >= 1, got a 0-d array")
    if not -ndim <= axis < ndim:
        raise ValueError(
            f"blocked format {fmt} has block axis {axis}, but the array has {ndim} dims "
            f"(valid axes: {-ndim}..{ndim - 1})"
        )
    return axis % ndim


@dataclass(frozen=True)
class Blocking:
    """How an array of ``shape`` is cut into blocks of ``block`` along ``axis``."""

    shape: tuple[int, ...]
    axis: int
    block: int

    @property
    def length(self) -> int:
        return self.shape[self.axis]

    @property
    def nblocks(self) -> int:
        return -(-self.length // self.block)

    @property
    def padded(self) -> bool:
        return self.nblocks * self.block != self.length

    def grouped_shape(self) -> tuple[int, ...]:
        s = self.shape
        return s[: self.axis] + (self.nblocks, self.block) + s[self.axis + 1 :]

    def group(self, xp: Any, a: Array, fill: int) -> Array:
        """``a`` reshaped to ``pre + (nblocks, block) + post``, padded with ``fill``."""
        if self.padded:
            pad_shape = list(self.shape)
            pad_shape[self.axis] = self.nblocks * self.block - self.length
            pad = xp.full(tuple(pad_shape), fill, dtype=a.dtype, **B.device_kwargs(a))
            a = xp.concat([a, pad], axis=self.axis)
        return xp.reshape(a, self.grouped_shape())

    def reduce_max(self, xp: Any, a: Array, tree: bool = False) -> Array:
        """Per-block maximum of ``a`` (short block padded with 0), shape ``pre + (nb, 1) + post``.

        ``tree`` (for XLA; used for blocks of a power of two along the last axis): a tree
        of strided maxima, which XLA on CPU runs about three times faster than
        its reduction over a short minor axis. It pays only where the result
        is materialized (e.g. passed through ``lax.cond``): otherwise XLA may
        fuse the whole tree into each consumer element.
        """
        grouped = self.group(xp, a, 0)
        b = self.block
        if tree and self.axis == len(self.shape) - 1 and b & (b - 1) == 0:
            while grouped.shape[-1] > 1:
                grouped = xp.maximum(grouped[..., 0::2], grouped[..., 1::2])
            return grouped
        return xp.max(grouped, axis=self.axis + 1, keepdims=True)

    def spread(self, xp: Any, per_block: Array) -> Array:
        """Broadcast a per-block array back to the elements (original shape)."""
        if self.padded:
            # gather by block index (a broadcast + reshape + slice of the padded
            # layout is miscompiled by torch.compile/inductor on CPU)
            per_block = xp.squeeze(per_block, axis=self.axis + 1)
            index = xp.arange(self.length, **B.device_kwargs(per_block)) // self.block
            return xp.take(per_block, index, axis=self.axis)
        full = xp.broadcast_to(per_block, self.grouped_shape())
        return xp.reshape(full, self.shape)


def blocking_for(x: Array, fmt: Any) -> Blocking:
    """The :class:`Blocking` of a blocked format on array ``x`` (validates the axis)."""
    axis = normalize_axis(x.ndim, fmt.axis, fmt)
    return Blocking(tuple(x.shape), axis, fmt.block_size)  # symbolic sizes stay symbolic
