"""``approximate(x, spec, **args)``: apply a logic to a NumPy, JAX or PyTorch array."""

from __future__ import annotations

import math
from typing import Any

from .. import _backend as B
from . import _grad as G
from .exp import exp_approx
from .gelu import gelu_poly2
from .grammar import Logic, parse_logic
from .ibert import gelu_ibert, layernorm_ibert, softmax_ibert
from .layernorm import FALLBACK_EPS, LEGACY_EPS, QUAKE3_EPS, layernorm_rows
from .quake import recip_approx, rsqrt_approx
from .softmax import softmax_last

Array = Any

_ARGS = {
    "SOFTMAX": ("axis",),
    "LAYERNORM": ("normalized_shape", "weight", "bias"),
}


def approximate(x: Array, spec: "str | Logic", **args: Any) -> Array:
    """Apply the logic ``spec`` (a :class:`Logic` or its shorthand) to ``x``.

    ``x`` is a float16/bfloat16/float32/float64 NumPy, JAX or PyTorch array;
    it is converted to float32 (RNE) and then to the logic's NF; the result
    is a float32 array of the same kind and shape (``NONE`` returns ``x``
    unchanged). Keyword arguments: softmax ``axis=-1``; layer norm
    ``normalized_shape`` (int or tuple, default: the last dimension),
    ``weight=None``, ``bias=None`` (arrays of shape ``normalized_shape``).
    Every step is rounded as SPEC section 5 states; NaN/Inf propagate as the
    algorithm's IEEE steps make them (see each logic's docstring and
    ``docs/logics.md``). Gradients (JAX, PyTorch) are those of the exact
    function. Raises ``TypeError`` for integer/bool input or unknown keyword
    arguments, ``ValueError`` for a bad axis or a layer-norm shape mismatch,
    :class:`~dmxnum.errors.ShorthandError` for a bad shorthand.
    """
    logic = parse_logic(spec)
    if B.backend_name(x) == "numpy":
        import numpy as np

        with np.errstate(all="ignore"):
            return _approximate(x, logic, args)
    if B.backend_name(x) == "jax":
        import jax

        with jax.named_scope(f"dmxnum.approximate[{logic}]"):  # location metadata in exported modules
            return _approximate(x, logic, args)
    return _approximate(x, logic, args)


def _approximate(x: Array, logic: Logic, args: dict) -> Array:
    allowed = _ARGS.get(logic.op, ())
    unknown = sorted(set(args) - set(allowed))
    if unknown:
        valid = ", ".join(allowed) if allowed else "none"
        raise TypeError(f"approximate({logic}) got unexpected keyword argument(s) {unknown}; valid: {valid}")
    if logic.op == "NONE":
        return x
    B.check_float(x)
    x32 = B.to_float32(x)
    if logic.op == "SOFTMAX":
        return _softmax(x32, logic, args.get("axis", -1))
    if logic.op == "LAYERNORM":
        return _layernorm(x32, logic, args.get("normalized_shape"), args.get("weight"), args.get("bias"))
    if logic.op == "GELU":
        fn = gelu_ibert if logic.algorithm == "ibert" else gelu_poly2
        return G.with_exact_grad(fn, G.exact_gelu, [x32])
    if logic.op == "EXP":
        alg, nf = logic.algorithm, logic.nf
        return G.with_exact_grad(lambda v: exp_approx(v, alg, nf), G.exact_exp, [x32])
    if logic.op == "RECIP":
        return G.with_exact_grad(recip_approx, G.exact_recip, [x32])
    nf = logic.nf
    return G.with_exact_grad(lambda v: rsqrt_approx(v, nf), G.exact_rsqrt, [x32])


def _softmax(x: Array, logic: Logic, axis: Any) -> Array:
    xp = B.namespace(x)
    if isinstance(axis, bool) or not isinstance(axis, int):
        raise TypeError(f"axis must be an int, got {axis!r}")
    ndim = len(x.shape)
    if not -ndim <= axis < ndim:
        raise ValueError(f"axis {axis} is out of range for an array of {ndim} dimension(s)")
    axis %= ndim
    moved = axis != ndim - 1
    if moved:
        x = xp.moveaxis(x, axis, -1)
    if logic.algorithm == "ibert":
        fn = softmax_ibert
    else:
        alg, nf = logic.algorithm, logic.nf

        def fn(v: Array) -> Array:
            return softmax_last(v, alg, nf)

    y = G.with_exact_grad(fn, G.exact_softmax, [x])
    return xp.moveaxis(y, -1, axis) if moved else y


def _layernorm(x: Array, logic: Logic, normalized_shape: Any, weight: Any, bias: Any) -> Array:
    xp = B.namespace(x)
    shape = tuple(x.shape)
    if normalized_shape is None:
        if not shape:
            raise ValueError("layer norm needs an input with at least one dimension")
        normalized_shape = shape[-1:]
    elif isinstance(normalized_shape, int) and not isinstance(normalized_shape, bool):
        normalized_shape = (normalized_shape,)
    else:
        normalized_shape = tuple(int(s) for s in normalized_shape)
    k = len(normalized_shape)
    if k == 0 or k > len(shape) or shape[len(shape) - k :] != normalized_shape:
        raise ValueError(
            f"normalized_shape {normalized_shape} does not match the trailing dimensions of the input shape {shape}"
        )
    n = math.prod(normalized_shape)
    lead = shape[: len(shape) - k]
    x2 = xp.reshape(x, lead + (n,))
    params = []
    for name, p in (("weight", weight), ("bias", bias)):
        if p is None:
            params.append(None)
            continue
        p = B.convert_like(p, x)
        B.check_float(p, name)
        if tuple(p.shape) != normalized_shape:
            raise ValueError(f"{name} has shape {tuple(p.shape)}; expected normalized_shape {normalized_shape}")
        params.append(xp.reshape(B.to_float32(p), (n,)))
    if logic.algorithm == "ibert":
        fn, eps = layernorm_ibert, 1e-12
    else:
        alg, nf, norm = logic.algorithm, logic.nf, logic.norm

        def fn(v: Array, w: Array | None, b: Array | None) -> Array:
            return layernorm_rows(v, alg, nf, norm, w, b)

        if alg == "fallback":
            eps = FALLBACK_EPS * 4.0**norm
        elif alg == "legacy":
            eps = LEGACY_EPS
        else:
            eps = QUAKE3_EPS[nf]
    y = G.with_exact_grad(fn, G.exact_layernorm(eps), [x2, *params])
    return xp.reshape(y, shape)
