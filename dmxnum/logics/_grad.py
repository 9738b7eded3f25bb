"""Gradients of the logics: the exact function's gradient through a custom VJP.

Every logic's forward value is the approximation; its gradient is the
gradient of the exact float32 function it approximates (``jax.custom_vjp``,
``torch.autograd.Function``). NumPy arrays get the forward value only.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

from .. import _backend as B

Array = Any
Fn = Callable[..., Array]


def with_exact_grad(approx: Fn, exact: Fn, args: Sequence[Array | None]) -> Array:
    """``approx(*args)`` whose VJP is that of ``exact(*args)`` (``None`` args stay ``None``).

    ``approx`` and ``exact`` take the same positional arrays (float32) and
    return one float32 array of the output shape.
    """
    first = args[0]
    name = B.backend_name(first)
    if name == "numpy":
        return approx(*args)
    idx = [i for i, a in enumerate(args) if a is not None]

    def fill(live: Sequence[Array]) -> list[Array | None]:
        full: list[Array | None] = [None] * len(args)
        for i, a in zip(idx, live):
            full[i] = a
        return full

    live = [args[i] for i in idx]
    if name == "jax":
        import jax

        if not any(isinstance(a, jax.core.Tracer) for a in live):
            return approx(*args)  # concrete arrays: nothing differentiates this call

        @jax.custom_vjp
        def f(*xs):
            return approx(*fill(xs))

        def fwd(*xs):
            return approx(*fill(xs)), xs

        def bwd(xs, g):
            _, vjp = jax.vjp(lambda *ys: exact(*fill(ys)), *xs)
            return vjp(g)

        f.defvjp(fwd, bwd)
        return f(*live)
    import torch

    if not any(a.requires_grad for a in live) or not torch.is_grad_enabled():
        return approx(*args)
    return _TorchExact.apply(approx, exact, fill, *live)


try:
    import torch as _torch

    class _TorchExact(_torch.autograd.Function):
        @staticmethod
        def forward(ctx, approx, exact, fill, *xs):  # type: ignore[override]
            ctx.exact, ctx.fill = exact, fill
            ctx.save_for_backward(*xs)
            with _torch.no_grad():
                return approx(*fill([x.detach() for x in xs]))

        @staticmethod
        def backward(ctx, g):  # type: ignore[override]
            xs = [x.detach().requires_grad_(True) for x in ctx.saved_tensors]
            with _torch.enable_grad():
                y = ctx.exact(*ctx.fill(xs))
                grads = _torch.autograd.grad(y, xs, g, allow_unused=True)
            grads = [gr if gr is not None else _torch.zeros_like(x) for gr, x in zip(grads, xs)]
            return (None, None, None, *grads)

except ImportError:  # pragma: no cover
    _TorchExact = None  # type: ignore[assignment]


# ----------------------------------------------------------------------------- exact functions
def _erf(x: Array) -> Array:
    name = B.backend_name(x)
    if name == "jax":
        import jax

        return jax.scipy.special.erf(x)
    if name == "torch":
        import torch

        return torch.erf(x)
    import math as _m

    import numpy as np

    return np.vectorize(_m.erf, otypes=[np.float32])(x)


def exact_softmax(x: Array) -> Array:
    """``softmax(max(x, -16384))`` over the last axis (the clamp every softmax logic applies)."""
    xp = B.namespace(x)
    x = xp.where(x < -16384.0, xp.full_like(x, -16384.0), x)
    e = xp.exp(x - xp.max(x, axis=-1, keepdims=True))
    return e / xp.sum(e, axis=-1, keepdims=True)


def exact_gelu(x: Array) -> Array:
    """``x * (1 + erf(x / sqrt 2)) / 2``."""
    return 0.5 * x * (1.0 + _erf(x * (1.0 / math.sqrt(2.0))))


def exact_silu(x: Array) -> Array:
    """``x * sigmoid(x)`` (the frameworks' own, whose gradient stays finite for large ``|x|``)."""
    name = B.backend_name(x)
    if name == "jax":
        import jax

        return jax.nn.silu(x)
    if name == "torch":
        import torch

        return torch.nn.functional.silu(x)
    return x / (1.0 + B.namespace(x).exp(-x))


def exact_exp(x: Array) -> Array:
    """``exp(x)``."""
    return B.namespace(x).exp(x)


def exact_recip(x: Array) -> Array:
    """``1 / x``."""
    return 1.0 / x


def exact_rsqrt(x: Array) -> Array:
    """``1 / sqrt(x)``."""
    return 1.0 / B.namespace(x).sqrt(x)


def exact_layernorm(eps: float) -> Fn:
    """The exact layer norm over the last axis with ``eps`` inside the square root."""

    def ln(x: Array, w: Array | None, b: Array | None) -> Array:
        xp = B.namespace(x)
        mean = xp.mean(x, axis=-1, keepdims=True)
        var = xp.mean((x - mean) * (x - mean), axis=-1, keepdims=True)
        y = (x - mean) / xp.sqrt(var + eps)
        if w is not None:
            y = y * w
        if b is not None:
            y = y + b
        return y

    return ln


def exact_rmsnorm(eps: float) -> Fn:
    """The exact RMS norm over the last axis, ``w * x / sqrt(mean(x^2) + eps)``."""

    def rms(x: Array, w: Array | None) -> Array:
        xp = B.namespace(x)
        y = x / xp.sqrt(xp.mean(x * x, axis=-1, keepdims=True) + eps)
        return y if w is None else y * w

    return rms
