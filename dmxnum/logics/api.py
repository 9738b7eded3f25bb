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
from .rmsnorm import rms_eps, rmsnorm_rows
from .silu import silu_approx
from .softmax import softmax_last

Array = Any

_ARGS = {
    "SOFTMAX": ("axis",),
    "LAYERNORM": ("normalized_shape", "weight", "bias"),
    "RMSNORM": ("normalized_shape", "weight", "eps"),
}

#: ``finfo(dtype).eps`` of the input dtypes: the RMS norm's ``eps=None`` (as ``nn.RMSNorm``)
_FINFO_EPS = {"float16": 2.0**-10, "bfloat16": 2.0**-7, "float32": 2.0**-23, "float64": 2.0**-52}


def approximate(x: Array, spec: "str | Logic", **args: Any) -> Array:
    """Apply the logic ``spec`` (a :class:`Logic` or its shorthand) to ``x``.

    ``x`` is a float16/bfloat16/float32/float64 NumPy, JAX or PyTorch array;
    it is converted to float32 (RNE) and then to the logic's NF; the result
    is a float32 array of the same kind and shape (``NONE`` returns ``x``
    unchanged). Keyword arguments: softmax ``axis=-1``; layer norm
    ``normalized_shape`` (int or tuple, default: the last dimension),
    ``weight=None``, ``bias=None`` (arrays of shape ``normalized_shape``); RMS
    norm ``normalized_shape``, ``weight=None`` and ``eps=None`` (a Python float,
    the module's epsilon; ``None``: ``finfo(dtype).eps`` of the input's own
    dtype, as ``torch.nn.RMSNorm``; rounded to NF).
    Every step is rounded as SPEC section 5 states; NaN/Inf propagate as the
    algorithm's IEEE steps make them (see each logic's docstring and
    ``docs/logics.md``). Gradients (JAX, PyTorch) are those of the exact
    function. Raises ``TypeError`` for integer/bool input or unknown keyword
    arguments, ``ValueError`` for a bad axis or a layer-norm shape mismatch,
    :class:`~dmxnum.errors.ShorthandError` for a bad shorthand.

    A ``DTensor`` ``x`` gives a DTensor with its placements, equal bit for bit
    to the result on ``x.full_tensor()``: element-wise logics run on each
    shard; a softmax axis or a norm's normalized dims that are sharded are
    gathered first (a one-time :class:`~dmxnum.errors.DistributedWarning`).
    """
    logic = parse_logic(spec)
    if B.is_dtensor(x) and logic.op != "NONE":
        return _approximate_dtensor(x, logic, args)
    if B.backend_name(x) == "numpy":
        import numpy as np

        with np.errstate(all="ignore"):
            return _approximate(x, logic, args)
    if B.backend_name(x) == "jax":
        import jax

        with jax.named_scope(f"dmxnum.approximate[{logic}]"):  # location metadata in exported modules
            return _approximate(x, logic, args)
    return _approximate(x, logic, args)


def _approximate_dtensor(x: Any, logic: Logic, args: dict) -> Any:
    """``approximate`` of a ``DTensor``: a DTensor with ``x``'s placements equal to
    the result on ``x.full_tensor()`` re-sharded (see :mod:`dmxnum._dtensor`).
    Element-wise logics run on each shard; a softmax gathers its axis and a
    layer or RMS norm its normalized dims where they are sharded (with a
    warning). DTensor ``weight``/``bias`` are used whole."""
    from .. import _dtensor as D

    whole = _reduced_dims(x.ndim, logic, args)
    layout = D.Layout(whole, reason="" if whole is not None else f"{logic} is checked on the whole tensor")
    params = {name: D.full(value) for name, value in args.items()}
    return D.run(x, lambda v: _approximate(v, logic, params), layout, f"dmxnum.approximate({logic})")


def _reduced_dims(ndim: int, logic: Logic, args: dict) -> frozenset[int] | None:
    """The dims ``logic`` reduces along on an input of ``ndim`` dims (empty for
    element-wise logics), or ``None`` (all dims) where the arguments are invalid,
    so that the error is raised on the whole tensor, as without sharding."""
    if logic.op == "SOFTMAX":
        axis = args.get("axis", -1)
        valid = isinstance(axis, int) and not isinstance(axis, bool) and -ndim <= axis < ndim
        return frozenset({axis % ndim}) if valid else None
    if logic.op in ("LAYERNORM", "RMSNORM"):
        shape = args.get("normalized_shape")
        try:
            k = 1 if shape is None or isinstance(shape, int) else len(tuple(shape))
        except TypeError:
            return None
        return frozenset(range(ndim - k, ndim)) if 0 < k <= ndim else None
    return frozenset()


def _approximate(x: Array, logic: Logic, args: dict) -> Array:
    allowed = _ARGS.get(logic.op, ())
    unknown = sorted(set(args) - set(allowed))
    if unknown:
        valid = ", ".join(allowed) if allowed else "none"
        raise TypeError(f"approximate({logic}) got unexpected keyword argument(s) {unknown}; valid: {valid}")
    if logic.op == "NONE":
        return x
    dtype = B.check_float(x)
    x32 = B.to_float32(x)
    if logic.op == "SOFTMAX":
        return _softmax(x32, logic, args.get("axis", -1))
    if logic.op == "LAYERNORM":
        return _layernorm(x32, logic, args.get("normalized_shape"), args.get("weight"), args.get("bias"))
    if logic.op == "RMSNORM":
        return _rmsnorm(x32, logic, args.get("normalized_shape"), args.get("weight"), _eps(args.get("eps"), dtype))
    if logic.op == "SILU":
        alg, nf = logic.algorithm, logic.nf
        return G.with_exact_grad(lambda v: silu_approx(v, alg, nf), G.exact_silu, [x32])
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


def _rows(x: Array, normalized_shape: Any, params: dict) -> tuple[Array, tuple, list]:
    """``x`` reshaped to ``(..., n)`` over the trailing ``normalized_shape`` (default: the last
    dimension), its shape, and the named parameters as float32 ``(n,)`` arrays (or ``None``)."""
    xp = B.namespace(x)
    shape = tuple(x.shape)
    if normalized_shape is None:
        if not shape:
            raise ValueError("a layer or RMS norm needs an input with at least one dimension")
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
    out = []
    for name, p in params.items():
        if p is None:
            out.append(None)
            continue
        p = B.convert_like(p, x)
        B.check_float(p, name)
        if tuple(p.shape) != normalized_shape:
            raise ValueError(f"{name} has shape {tuple(p.shape)}; expected normalized_shape {normalized_shape}")
        out.append(xp.reshape(B.to_float32(p), (n,)))
    return x2, shape, out


def _layernorm(x: Array, logic: Logic, normalized_shape: Any, weight: Any, bias: Any) -> Array:
    xp = B.namespace(x)
    x2, shape, params = _rows(x, normalized_shape, {"weight": weight, "bias": bias})
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


def _eps(eps: Any, dtype: str) -> float:
    """The RMS norm's epsilon: a non-negative real number, ``None`` for ``finfo(dtype).eps``."""
    if eps is None:
        return _FINFO_EPS[dtype]
    if isinstance(eps, bool) or not isinstance(eps, (int, float)):
        raise TypeError(f"eps must be a Python float or None, got {eps!r}")
    eps = float(eps)
    if not eps >= 0.0 or math.isinf(eps):
        raise ValueError(f"eps must be a finite non-negative number, got {eps!r}")
    return eps


def _rmsnorm(x: Array, logic: Logic, normalized_shape: Any, weight: Any, eps: float) -> Array:
    xp = B.namespace(x)
    x2, shape, params = _rows(x, normalized_shape, {"weight": weight})
    alg, nf, norm = logic.algorithm, logic.nf, logic.norm

    def fn(v: Array, w: Array | None) -> Array:
        return rmsnorm_rows(v, alg, nf, norm, w, eps)

    # the exact RMS norm with the epsilon the logic adds, in input units
    exact_eps = rms_eps(alg, nf, norm, eps) * (4.0**norm if alg == "fallback" else 1.0)
    y = G.with_exact_grad(fn, G.exact_rmsnorm(exact_eps), [x2, *params])
    return xp.reshape(y, shape)
