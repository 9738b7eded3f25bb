"""Column quantizers for GPTQ: how one input column of ``W`` lands on the grid.

GPTQ (:mod:`.gptq`) calls a quantizer once per input column, in processing
order, with the column's current (error-updated) values. Two kinds:

- :class:`ElementColumns`: every format whose cast of a column does not
  depend on other columns: XP and FP (elementwise), and block formats whose
  blocks run along the output axis (a block lies within a column). The
  column is cast as an ``(out, 1)`` array with ``dmxnum.cast``, under the
  static scale's slice for that column if there is one.
- :class:`HeldBlockColumns`: block formats whose blocks run along the input
  axis. When the first column of a block (in processing order) arrives,
  the block's scale is computed row by row from the current values of all
  its columns (:mod:`.block_scales`) and held; each of its columns is then
  rounded under the held scale. With ``static_groups`` every block's scale
  comes from the original ``W`` instead.

A static scale ``s`` (not ``NVFP4(T)``) applies as in ``cast(x, fmt,
scale=s)``: values are divided by ``s`` (one float32 division) before the
block maximum and the rounding, and the rounded values multiplied by it.
``NVFP4(T)``'s tensor scale ``g`` (given, or the default one of the
original ``W``) enters the block scales instead.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ..casting import cast
from ._arrays import magnitude_max
from .block_scales import Held, block_rule

#: ``current(positions) -> (out, k)`` float64: the current values of the columns at those processing positions
Current = Callable[[np.ndarray], np.ndarray]


def _column_of(a: np.ndarray | None, c: int) -> np.ndarray | None:
    """Column ``c`` (kept 2-D) of a 2-D array broadcasting to ``W``: itself when its extent there is 1."""
    if a is None:
        return None
    return a if a.shape[1] == 1 else a[:, c : c + 1]


class ElementColumns:
    """Quantize a column by ``dmxnum.cast`` of the ``(out, 1)`` column."""

    def __init__(self, fmt: Any, perm: np.ndarray, scale: np.ndarray | None):
        self.fmt, self.perm, self.scale = fmt, perm, scale

    def __call__(self, i: int, w: np.ndarray, current: Current) -> np.ndarray:
        """The column at processing position ``i`` (values ``w``, float64) on the grid, as float64."""
        s = _column_of(self.scale, int(self.perm[i]))
        col = w.astype(np.float32)[:, None]
        return cast(col, self.fmt, scale=s)[:, 0].astype(np.float64)


class HeldBlockColumns:
    """Quantize a column under its block's held scale (blocks along the input axis)."""

    def __init__(self, fmt: Any, perm: np.ndarray, shape: tuple[int, int], scale: np.ndarray | None,
                 g: np.ndarray | None, w_start: np.ndarray | None = None):
        n = shape[1]
        self.rule = block_rule(fmt)
        self.perm = perm
        bs = fmt.block_size
        inv = np.empty_like(perm)
        inv[perm] = np.arange(n)
        #: per block: its original columns and their processing positions
        self.columns = [np.arange(b, min(b + bs, n)) for b in range(0, n, bs)]
        self.positions = [inv[c] for c in self.columns]
        self.block_of = perm // bs  # processing position -> block
        # static scale / NVFP4(T) tensor scale as read-only views of W's shape
        self.scale = None if scale is None else np.broadcast_to(scale, shape)
        self.g = None if g is None else np.broadcast_to(g, shape)
        self.held: list[Held | None] = [None] * len(self.columns)
        if w_start is not None:  # static groups: every scale from the starting W (processing order)
            for b, pos in enumerate(self.positions):
                self.held[b] = self._block_scale(b, w_start[:, pos])

    def _block_scale(self, b: int, values: np.ndarray) -> Held:
        """Held scale of block ``b`` from its columns' values ``(out, k)`` (original column order)."""
        cols = self.columns[b]
        v32 = values.astype(np.float32)
        if self.scale is not None:
            v32 = v32 / self.scale[:, cols]
        g = None if self.g is None else self.g[:, cols[0]]
        return self.rule.scale(magnitude_max(v32, axis=1), g)

    def __call__(self, i: int, w: np.ndarray, current: Current) -> np.ndarray:
        """The column at processing position ``i`` (values ``w``) rounded under its block's
        held scale (computed now from ``current`` if this is the block's first column)."""
        b = int(self.block_of[i])
        if self.held[b] is None:
            self.held[b] = self._block_scale(b, current(self.positions[b]))
        c = int(self.perm[i])
        v32 = w.astype(np.float32)
        if self.scale is None:
            return self.rule.round(v32, self.held[b]).astype(np.float64)
        r = self.rule.round(v32 / self.scale[:, c], self.held[b])
        return (r * self.scale[:, c]).astype(np.float64)
