"""Block axes written in PyTorch layouts, translated by meaning to Flax layouts.

Configuration files are written once, in PyTorch layouts (the seed's
convention), and serve both frontends. A block format (``BFP``, ``MXINT``,
``MXFP``, ``SBFP``) or an N:M sparsity (``BTOPK``) names a block axis ``d``
of the tensor *as PyTorch lays it out*; the Flax frontend maps that axis to
the axis of the Flax tensor that has the same meaning, so that the same
elements share a block in both frameworks:

==================  ===========================  ==============================
layout              PyTorch                      Flax
==================  ===========================  ==============================
``features``        ``(..., F)``                 ``(..., F)`` (identity)
``channels``        ``(N..., C, *S)``            ``(N..., *S, C)``
``linear_weight``   ``(out, in)``                ``(in, out)``
``dense_general_…``  ``(out, in)``                ``(*in, *out)`` (last in / last out axis)
``conv_weight``     ``(O, I, *S)``               ``(*S, I, O)``
``convt_weight``    ``(I, O, *S)``               ``(*S, I, O)``
``attention``       ``(..., H, T, D)``           ``(..., T, H, D)``
==================  ===========================  ==============================

``N...`` are leading batch axes (none, one or several; for ``channels`` the
caller says how many spatial axes ``S`` there are, so an unbatched or
``vmap``-ed input is translated correctly). A ``DenseGeneral`` kernel has
several input and output axes; the PyTorch ``(out, in)`` axes (a 2-D weight:
``-1``/``1`` is *in*, ``-2``/``0`` is *out*) map to its last input axis and
its last output axis (the caller passes the number of input axes). Non-blocked formats carry no axis
and pass through unchanged. An axis outside ``[-ndim, ndim)`` is left as it
is, so the core's own error reports it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

LAYOUTS = (
    "features", "channels", "linear_weight", "dense_general_weight", "conv_weight", "convt_weight", "attention",
)


def torch_axis_to_flax(axis: int, ndim: int, layout: str, spatial: int | None = None) -> int:
    """The Flax axis (in ``[0, ndim)``) holding what PyTorch axis ``axis`` holds.

    ``ndim`` is the tensor's rank (the same in both frameworks); ``layout`` one
    of :data:`LAYOUTS`; ``spatial`` the number of spatial axes for
    ``channels`` (default: ``ndim - 2``, one batch axis), or the number of
    input axes for ``dense_general_weight``. Out-of-range axes are returned
    unchanged. Raises ``ValueError`` for an unknown layout.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; valid: {', '.join(LAYOUTS)}")
    if layout == "dense_general_weight":
        if not -2 <= axis < 2:  # a PyTorch Linear weight is 2-D
            return axis
        n_in = 1 if spatial is None else spatial
        return ndim - 1 if axis % 2 == 0 else n_in - 1
    if not -ndim <= axis < ndim:
        return axis
    a = axis % ndim
    if layout == "features":
        return a
    if layout == "channels":
        s = ndim - 2 if spatial is None else spatial
        batch = ndim - s - 1
        if batch < 0:
            return a
        if a < batch:
            return a
        if a == batch:
            return ndim - 1
        return a - 1
    if layout == "linear_weight":
        if ndim != 2:
            return a
        return 1 - a
    if layout in ("conv_weight", "convt_weight"):
        if ndim < 3:
            return a
        first, second = (ndim - 1, ndim - 2) if layout == "conv_weight" else (ndim - 2, ndim - 1)
        if a == 0:
            return first
        if a == 1:
            return second
        return a - 2
    # attention: (..., H, T, D) -> (..., T, H, D)
    if ndim < 3:
        return a
    if a == ndim - 3:
        return ndim - 2
    if a == ndim - 2:
        return ndim - 3
    return a


def torch_shape(shape: Any, layout: str, spatial: int | None = None) -> tuple[int, ...]:
    """The shape a tensor of Flax ``shape`` has in PyTorch layout (the axes a file names).

    Axis ``a`` of the result has the length of Flax axis
    ``torch_axis_to_flax(a, ndim, layout, spatial)``, so a block axis checked
    against this shape is checked exactly as :func:`translate` will move it.
    A ``DenseGeneral`` kernel ``(*in, *out)`` is the 2-D ``(out, in)`` of its
    last output and last input axes (``spatial``: the number of input axes).
    """
    shape = tuple(int(n) for n in shape)
    if layout == "dense_general_weight":
        n_in = 1 if spatial is None else spatial
        return (shape[-1], shape[n_in - 1])
    ndim = len(shape)
    return tuple(shape[torch_axis_to_flax(a, ndim, layout, spatial)] for a in range(ndim))


def translate(spec: Any, ndim: int, layout: str, spatial: int | None = None) -> Any:
    """``spec`` (a format or sparsity value) with its block axis moved to the Flax layout.

    Values without an integer ``axis`` field (non-blocked formats, ``SAME``,
    ``DENSE``, ``TOPK``, logics) are returned unchanged; otherwise a copy
    with ``axis = torch_axis_to_flax(spec.axis, ndim, layout, spatial)``.
    The negative/positive spelling of the axis does not change what a cast
    computes.
    """
    if spec is None or not dataclasses.is_dataclass(spec):
        return spec
    axis = getattr(spec, "axis", None)
    if not isinstance(axis, int) or isinstance(axis, bool):
        return spec
    if "axis" not in {f.name for f in dataclasses.fields(spec)}:
        return spec
    new = torch_axis_to_flax(axis, ndim, layout, spatial)
    if not -ndim <= new < ndim or new == axis % ndim:
        return spec
    return dataclasses.replace(spec, axis=new)
