"""What the sparsity kernels need beyond the array API and ``dmxnum._backend``.

* :func:`float_bits`: a float array's bit patterns as a signed integer array
  of the same width (float16/bfloat16 -> int16, float32 -> int32, float64 ->
  int64), with the constants the order keys need;
* :func:`masked_select`: ``where(mask, w, 0)`` with a chosen gradient for
  ``w`` (masked or straight-through) and, optionally, a straight-through
  gradient for the scores; one ``jax.custom_vjp`` and one
  ``torch.autograd.Function``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from .._backend import backend_name, check_float

Array = Any


class BitLayout(NamedTuple):
    """Integer width and IEEE constants of a float dtype."""

    int_name: str  # signed integer dtype of the same width
    width: int  # bits per element
    sign_min: int  # the sign bit as a (negative) signed integer: -2**(w-1)
    magnitude: int  # all bits but the sign: 2**(w-1) - 1
    inf: int  # bit pattern of +Inf


_LAYOUTS = {
    "float16": BitLayout("int16", 16, -(1 << 15), (1 << 15) - 1, 0x7C00),
    "bfloat16": BitLayout("int16", 16, -(1 << 15), (1 << 15) - 1, 0x7F80),
    "float32": BitLayout("int32", 32, -(1 << 31), (1 << 31) - 1, 0x7F800000),
    "float64": BitLayout("int64", 64, -(1 << 63), (1 << 63) - 1, 0x7FF0000000000000),
}


def layout(x: Array, what: str = "scores") -> BitLayout:
    """The :class:`BitLayout` of ``x``'s dtype; ``UnsupportedDtypeError`` unless it is a float dtype."""
    return _LAYOUTS[check_float(x, what)]


def float_bits(x: Array) -> Array:
    """Reinterpret the bits of float array ``x`` as the signed integer of the same width."""
    lay = layout(x)
    name = backend_name(x)
    if name == "numpy":
        return np.asarray(x).view(lay.int_name)
    if name == "torch":
        import torch

        return x.view(getattr(torch, lay.int_name))
    import jax

    return jax.lax.bitcast_convert_type(x, getattr(jax.numpy, lay.int_name))


def bits_to_float(b: Array, like: Array) -> Array:
    """Inverse of :func:`float_bits`: integer bits ``b`` as ``like``'s float dtype."""
    name = backend_name(b)
    if name == "numpy":
        return np.asarray(b).view(like.dtype)
    if name == "torch":
        return b.view(like.dtype)
    import jax

    return jax.lax.bitcast_convert_type(b, like.dtype)


# ----------------------------------------------------------------------------- gradients
def masked_select(w: Array, keep: Array, grad: str, scores: Array | None = None) -> Array:
    """``where(keep, w, 0)`` (pruned elements become +0) with a custom gradient.

    Gradient for ``w``: the incoming gradient ``g`` unchanged when ``grad ==
    "U"`` (straight-through), ``where(keep, g, 0)`` when ``grad == "M"``.
    With ``scores`` given (an array of ``w``'s shape), the scores receive
    ``g * w`` (in the scores' dtype): the mask is treated as the identity
    with respect to the scores (straight-through, as in supermask training).
    ``keep`` is a bool array and gets no gradient. NumPy: the plain ``where``.
    """
    name = backend_name(w)
    if name == "numpy":
        return np.where(keep, w, np.zeros((), dtype=w.dtype))
    if name == "jax":
        return _jax_masked_select(grad, scores is not None)(w, keep, scores)
    return _TorchMaskedSelect.apply(w, keep, scores, grad)


_JAX_CACHE: dict[tuple[str, bool], Any] = {}


def _jax_masked_select(grad: str, with_scores: bool) -> Any:
    fn = _JAX_CACHE.get((grad, with_scores))
    if fn is not None:
        return fn
    import jax
    import jax.numpy as jnp

    @jax.custom_vjp
    def select(w, keep, scores):
        return jnp.where(keep, w, jnp.zeros((), w.dtype))

    def fwd(w, keep, scores):
        return select(w, keep, scores), (w if with_scores else None, keep, scores)

    def bwd(res, g):
        w, keep, scores = res
        gw = g if grad == "U" else jnp.where(keep, g, jnp.zeros((), g.dtype))
        gs = None
        if with_scores:
            gs = (g * w).astype(scores.dtype)
        return gw, None, gs

    select.defvjp(fwd, bwd)
    _JAX_CACHE[(grad, with_scores)] = select
    return select


try:  # torch is optional
    import torch as _torch

    class _TorchMaskedSelect(_torch.autograd.Function):
        @staticmethod
        def forward(ctx, w, keep, scores, grad):  # type: ignore[override]
            ctx.grad_mode = grad
            ctx.with_scores = scores is not None
            ctx.save_for_backward(w if scores is not None else None, keep)
            if scores is not None:
                ctx.scores_dtype = scores.dtype
            return _torch.where(keep, w, _torch.zeros((), dtype=w.dtype, device=w.device))

        @staticmethod
        def backward(ctx, g):  # type: ignore[override]
            w, keep = ctx.saved_tensors
            gw = g if ctx.grad_mode == "U" else _torch.where(keep, g, _torch.zeros((), dtype=g.dtype, device=g.device))
            gs = (g * w).to(ctx.scores_dtype) if ctx.with_scores else None
            return gw, None, gs, None

except ImportError:  # pragma: no cover
    _TorchMaskedSelect = None  # type: ignore[assignment]
