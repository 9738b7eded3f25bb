"""Column quantizers for GPTQ: how one input column of ``W`` lands on the grid.

GPTQ (:mod:`.gptq`) works on ``W.reshape(out, -1)`` (a linear layer's
``(out, in)``, or a convolution's ``(out, in, *kernel)`` flattened: column
``c`` holds ``W[:, i, k...]`` for the index ``(i, k...)`` of ``c`` in
``W.shape[1:]``, row-major). It calls a quantizer once per column, in
processing order, with the column's current (error-updated) values. Two
kinds:

- :class:`ElementColumns`: every format whose cast of a column does not
  depend on other columns: XP and FP (elementwise), and block formats whose
  blocks run along the output axis 0 (the blocks of ``W[:, i, k...]`` along
  axis 0 are exactly those of the N-D cast at that index). The column is
  cast with ``dmxnum.cast`` as an array of shape ``(out, 1, ..., 1)`` (as
  many axes as ``W``, so the format's block axis means what it means for
  ``W``), under the static scale's slice for that column if there is one.
- :class:`HeldBlockColumns`: block formats whose blocks run along an axis
  ``a >= 1`` of ``W``. Each block (one row of a group of columns, see
  :func:`block_groups`) is cut as the N-D cast cuts it. When the first
  column of a group (in processing order) arrives, its scale is computed
  row by row from the current values of all the group's columns
  (:mod:`.block_scales`) and held; each of its columns is then rounded
  under the held scale. With ``static_groups`` every group's scale comes
  from the original ``W`` instead.

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


def block_groups(rest: tuple[int, ...], axis: int, block: int) -> list[np.ndarray]:
    """The column groups of ``W.reshape(out, -1)`` that are blocks of ``W``
    (shape ``(out,) + rest``) along its axis ``axis + 1``, ``block`` long
    (the last one shorter where the axis length is not a multiple).

    Group order: by the other ``rest`` indices (row-major), then by block;
    columns within a group ascending. For a 2-D ``W`` (``rest = (in,)``)
    these are the ranges ``[b, b + block)``, in order."""
    idx = np.moveaxis(np.arange(int(np.prod(rest)), dtype=np.intp).reshape(rest), axis, -1)
    fibers = idx.reshape(-1, rest[axis])
    return [f[b : b + block] for f in fibers for b in range(0, rest[axis], block)]


def _column_of(a: np.ndarray | None, c: int) -> np.ndarray | None:
    """Column ``c`` (kept 2-D) of a 2-D array broadcasting to ``W``: itself when its extent there is 1."""
    if a is None:
        return None
    return a if a.shape[1] == 1 else a[:, c : c + 1]


class ElementColumns:
    """Quantize a column by ``dmxnum.cast`` of the column shaped ``(out, 1, ..., 1)`` (``ndim`` axes)."""

    def __init__(self, fmt: Any, perm: np.ndarray, scale: np.ndarray | None, ndim: int = 2):
        self.fmt, self.perm, self.scale = fmt, perm, scale
        self.shape = (-1,) + (1,) * (ndim - 1)

    def __call__(self, i: int, w: np.ndarray, current: Current) -> np.ndarray:
        """The column at processing position ``i`` (values ``w``, float64) on the grid, as float64."""
        s = _column_of(self.scale, int(self.perm[i]))
        s = None if s is None else s.reshape(self.shape)
        col = w.astype(np.float32).reshape(self.shape)
        return cast(col, self.fmt, scale=s).reshape(-1).astype(np.float64)


class HeldBlockColumns:
    """Quantize a column under its group's held scale (blocks along an axis >= 1 of ``W``).

    ``columns``: the column groups (original column indices, as
    :func:`block_groups` gives them; each column in exactly one group);
    ``shape``: ``(out, C)`` of the flattened ``W``; ``scale``, ``g``: the
    static scale, ``NVFP4(T)``'s tensor scale, 2-D, broadcasting to it."""

    def __init__(self, fmt: Any, perm: np.ndarray, columns: list[np.ndarray], shape: tuple[int, int],
                 scale: np.ndarray | None, g: np.ndarray | None, w_start: np.ndarray | None = None):
        n = shape[1]
        self.rule = block_rule(fmt)
        self.perm = perm
        inv = np.empty_like(perm)
        inv[perm] = np.arange(n)
        #: per group: its original columns and their processing positions
        self.columns = columns
        self.positions = [inv[c] for c in self.columns]
        group = np.empty(n, dtype=np.intp)
        for b, c in enumerate(columns):
            group[c] = b
        self.block_of = group[perm]  # processing position -> group
        # static scale / NVFP4(T) tensor scale as read-only views of W's shape
        self.scale = None if scale is None else np.broadcast_to(scale, shape)
        self.g = None if g is None else np.broadcast_to(g, shape)
        self.held: list[Held | None] = [None] * len(self.columns)
        if w_start is not None:  # static groups: every scale from the starting W (processing order)
            for b, pos in enumerate(self.positions):
                self.held[b] = self._block_scale(b, w_start[:, pos])

    def _block_scale(self, b: int, values: np.ndarray) -> Held:
        """Held scale of group ``b`` from its columns' values ``(out, k)`` (the group's column order)."""
        cols = self.columns[b]
        v32 = values.astype(np.float32)
        if self.scale is not None:
            v32 = v32 / self.scale[:, cols]
        g = None if self.g is None else self.g[:, cols[0]]
        return self.rule.scale(magnitude_max(v32, axis=1), g)

    def __call__(self, i: int, w: np.ndarray, current: Current) -> np.ndarray:
        """The column at processing position ``i`` (values ``w``) rounded under its group's
        held scale (computed now from ``current`` if this is the group's first column)."""
        b = int(self.block_of[i])
        if self.held[b] is None:
            self.held[b] = self._block_scale(b, current(self.positions[b]))
        c = int(self.perm[i])
        v32 = w.astype(np.float32)
        if self.scale is None:
            return self.rule.round(v32, self.held[b]).astype(np.float64)
        r = self.rule.round(v32 / self.scale[:, c], self.held[b])
        return (r * self.scale[:, c]).astype(np.float64)
