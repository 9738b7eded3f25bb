"""GPTQ (Frantar et al., 2022, "GPTQ: Accurate Post-Training Quantization
for Generative Pre-trained Transformers"), format-aware and exact on the
format's grid.

For a linear layer with weights ``W`` (PyTorch layout ``(out, in)``) and
the Hessian ``H = 2/N sum x x^T`` of its calibration inputs, GPTQ quantizes
the input columns one at a time and spreads each column's rounding error
over the columns not yet quantized (the "optimal brain" update), so that
the layer's output error ``tr((W - Wq) H (W - Wq)^T)`` stays small:

1. dead columns (``H[j, j] == 0``: input ``j`` never active) get
   ``H[j, j] = 1`` and ``W[:, j] = 0``; with ``act_order`` the columns are
   processed by descending ``diag(H)`` (stable order);
2. ``H += damp * mean(diag H) * I``; ``U`` = the upper Cholesky factor of
   ``H^-1`` (``H^-1 = U^T U``);
3. for each column ``j`` in order: ``q = quantize(w_j)``, ``e = (w_j - q)
   / U[j, j]``, and every later column ``k`` gets ``w_k -= e * U[j, k]``;
   the updates are applied lazily, ``block_size`` columns at a time (within
   a batch of columns at once, to the rest of ``W`` once per batch). A value
   rounded to ±Inf (FP scheme ``I`` overflow) feeds no error back.

A convolution's weights ``(out, in, *kernel)`` (PyTorch layout: Conv1d
``OIW``, Conv2d ``OIHW``, Conv3d ``OIDHW``) are the linear layer
``W.reshape(out, -1)`` on its unfolded input patches: column ``c`` holds
``W[:, i, k...]`` with ``c = i * prod(kernel) + flat(k...)`` (channel-major,
kernel positions row-major: the feature order of
``torch.nn.functional.unfold`` and ``jax.lax.conv_general_dilated_patches``),
and ``H`` is over those columns. GPTQ runs on that flattened view; the
format's block axis stays an axis of the N-D ``W``, exactly as in
``cast(W, fmt)``.

``quantize`` is the format's own rounding (:mod:`.column_grids`). When the
block axis is the output axis (0), or the format is elementwise, a block
lies within one column, cast on its own. Otherwise (block axis >= 1: the
input axis, or a kernel axis) every block is a group of columns of the
flattened view (for a 2-D ``W``, a contiguous range); its scale is taken
from the current weights when its first column (in processing order) is
reached and held for the rest of the group. The float math runs in
float64 NumPy, every rounding in float32 through the library's kernels.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from .. import _backend as B
from ..casting import cast
from ..formats.base import Format
from ..formats.grammar import parse
from ..formats.same import Same
from ..kernels import nvfp4 as nv_kernels
from ..kernels.blocking import normalize_axis
from ..kernels.static_scale import as_scale
from ._arrays import host, like
from .column_grids import ElementColumns, HeldBlockColumns, block_groups

Array = Any
#: most casts :func:`settle` applies before giving up on a fixed point
SETTLE_ROUNDS = 8


class GPTQResult(NamedTuple):
    """What :func:`gptq` returns.

    ``Wq``: the quantized weights, in ``W``'s kind, device and dtype, a fixed
    point of ``cast(., fmt[, scale=s])`` (see :func:`settle`); ``loss`` and
    ``loss_rtn``: ``tr((W - Q) H (W - Q)^T)`` (float64, with the ``H`` and
    ``W`` given, ``W`` and ``Q`` flattened to ``(out, C)``) for ``Q = Wq``
    and for round-to-nearest ``Q = settle(cast(W, fmt[, scale=s]))``;
    ``fallback``: True when GPTQ's own result had the
    larger loss and the round-to-nearest one was returned instead.
    """

    Wq: Array
    loss: float
    loss_rtn: float
    fallback: bool


def layer_loss(W: Array, Wq: Array, H: Array) -> float:
    """``tr((W - Wq) H (W - Wq)^T)`` in float64 for ``W``, ``Wq`` of shape
    ``(out, in, *kernel)`` (kernel possibly empty), flattened to ``(out,
    C)``, and ``H`` of shape ``(C, C)``, ``C = in * prod(kernel)`` (any array
    kinds); ``+Inf`` when ``W - Wq`` is not finite (a format that overflows
    to ±Inf)."""
    d = host(W) - host(Wq)
    d = d.reshape(d.shape[0], -1)
    if not np.all(np.isfinite(d)):
        return float("inf")
    return float(np.sum((d @ host(H, "H")) * d))


def settle(x: Array, fmt: Format | str, scale: Any = None, rounds: int = SETTLE_ROUNDS) -> Array:
    """``x`` cast to ``fmt`` (with the static ``scale`` if given) repeatedly,
    until the cast maps the result to itself bit for bit, at most ``rounds``
    casts; returns the last cast (in ``x``'s kind and dtype).

    One cast is a fixed point for most formats; asymmetric BFP (a value
    rounded to ``-2^(E+1)`` raises the block exponent), ``NVFP4(T)`` (the
    default tensor scale follows the largest value) and SBFP (a recomputed
    scaler value) can need a second one. No fixed point is reached (the
    last cast is returned) where the cast cycles (a few SBFP formats with
    coarse scalers) or drifts: a directed rounding (U, D, Z) under a static
    scale ``s`` that is not a power of two, where ``fl32(fl32(k * s) / s)``
    can fall just short of ``k`` and truncate to the next step.
    """
    y = cast(x, fmt, scale=scale)
    for _ in range(rounds - 1):
        z = cast(y, fmt, scale=scale)
        if np.array_equal(host(z).view(np.int64), host(y).view(np.int64)):
            return z
        y = z
    return y


def gptq(W: Array, H: Array, fmt: Format | str, block_size: int = 128, damp: float = 0.01,
         act_order: bool = False, scale: Any = None, static_groups: bool = False) -> GPTQResult:
    """Quantize the weights ``W`` (``(out, in)``, or ``(out, in, *kernel)``
    for a convolution; NumPy, JAX or PyTorch float array) to ``fmt`` by GPTQ
    with the Hessian ``H`` (``(C, C)`` over the columns of ``W.reshape(out,
    -1)``, ``C = in * prod(kernel)``, symmetric positive semi-definite, any
    kind) and return a :class:`GPTQResult` (``Wq`` of ``W``'s shape; the
    losses on the flattened view).

    ``block_size``: columns per lazy batch update (any positive integer; it
    changes only float rounding, not the algorithm). ``damp``: the fraction
    of ``mean(diag H)`` added to ``H``'s diagonal (>= 0). ``act_order``:
    process columns by descending ``diag(H)``. ``scale``: a static scale
    as for ``cast(W, fmt, scale=s)`` (``NVFP4(T)``: the tensor scale ``g``;
    without one ``NVFP4(T)`` holds the default ``g`` of the original ``W``
    throughout). ``static_groups``: for block formats along the input axis,
    every block scale from the original ``W`` (dead columns zeroed) instead
    of from the current weights at the block's first column.

    The result is settled on the grid (:func:`settle`), so the frontend's
    ``cast(Wq, fmt[, scale=s])`` maps it to itself; with ``H = I`` (no error
    feedback) it equals the settled round-to-nearest cast bit for bit. If
    the result's loss exceeds round-to-nearest's, the latter is returned
    (``fallback``), so ``loss <= loss_rtn`` always holds. Dead columns
    (``H[c, c] == 0``) are zeroed in ``Wq`` unless the fallback is taken.

    Raises ``ValueError`` for bad shapes or options, non-finite ``W``/``H``,
    ``SAME`` or a stochastic format, an invalid scale, or an ``H`` not
    positive definite after damping; ``TypeError`` for non-float arrays.
    """
    f = parse(fmt) if not isinstance(fmt, Format) else fmt
    w0, h0 = host(W, "W"), host(H, "H")
    _check(w0, h0, f, block_size, damp)
    w32 = w0.astype(np.float32)
    s = None if scale is None else B.to_numpy(as_scale(w32, _host_scale(scale), f))
    rtn = settle(W, f, scale=s)
    loss_rtn = layer_loss(W, rtn, h0)

    w, h = w0.reshape(w0.shape[0], -1).copy(), h0.copy()  # the flattened view: (out, C)
    dead = np.diag(h) == 0
    h[dead, dead] = 1.0
    w[:, dead] = 0.0
    perm = np.argsort(-np.diag(h), kind="stable") if act_order else np.arange(w.shape[1])
    w, h = w[:, perm], h[np.ix_(perm, perm)]
    h[np.diag_indices_from(h)] += damp * np.mean(np.diag(h))
    try:
        u = np.linalg.cholesky(np.linalg.inv(h)).T  # upper: H^-1 = U^T U
    except np.linalg.LinAlgError:
        raise ValueError("H is not positive definite after damping; raise damp (e.g. 0.1)") from None
    if not np.all(np.isfinite(u)):
        raise ValueError("H is too ill-conditioned to invert after damping; raise damp (e.g. 0.1)")

    quantize = _column_quantizer(f, perm, w32.shape, s, w32, w if static_groups else None)
    q = np.empty_like(w)
    q[:, perm] = _run(w, u, quantize, block_size)
    wq = settle(like(q.astype(np.float32).reshape(w0.shape), W), f, scale=s)
    loss = layer_loss(W, wq, h0)
    if loss > loss_rtn:
        return GPTQResult(rtn, loss_rtn, loss_rtn, True)
    return GPTQResult(wq, loss, loss_rtn, False)


def _run(w: np.ndarray, u: np.ndarray, quantize: Any, block_size: int) -> np.ndarray:
    """GPTQ's column loop over ``w`` (processing order, updated in place) with
    the upper Cholesky factor ``u`` of ``H^-1``; returns the quantized columns."""
    n = w.shape[1]
    q = np.empty_like(w)
    for i1 in range(0, n, block_size):
        i2 = min(i1 + block_size, n)
        w1 = w[:, i1:i2].copy()
        err = np.zeros_like(w1)
        u1 = u[i1:i2, i1:i2]
        for t in range(i2 - i1):

            def current(pos: np.ndarray, t: int = t) -> np.ndarray:
                """Current values of the columns at ``pos`` (none processed yet)."""
                out = w[:, pos]
                inside = (pos >= i1) & (pos < i2)
                out[:, inside] = w1[:, pos[inside] - i1]
                later = pos >= i2
                if t and later.any():
                    out[:, later] -= err[:, :t] @ u[i1:i1 + t][:, pos[later]]
                return out

            col = w1[:, t]
            q[:, i1 + t] = quantize(i1 + t, col, current)
            # a value rounded to ±Inf (FP scheme I overflow) feeds no error back
            e = np.where(np.isfinite(q[:, i1 + t]), col - q[:, i1 + t], 0.0) / u1[t, t]
            w1[:, t:] -= np.outer(e, u1[t, t:])
            err[:, t] = e
        w[:, i2:] -= err @ u[i1:i2, i2:]
    return q


def _column_quantizer(fmt: Format, perm: np.ndarray, shape: tuple[int, ...], s: np.ndarray | None,
                      w32: np.ndarray, w_start: np.ndarray | None) -> Any:
    """The :mod:`.column_grids` quantizer of ``fmt`` on weights of (N-D) ``shape``."""
    two_level = getattr(fmt, "tensor_scale", False)
    if two_level and s is None:
        s = nv_kernels.tensor_scale(np, w32)  # NVFP4(T): g of the original W, held throughout
    s2 = None if s is None else _flat_scale(np.asarray(s, np.float32), shape)
    if fmt.blocked and (axis := normalize_axis(len(shape), fmt.axis, fmt)) >= 1:
        groups = block_groups(shape[1:], axis - 1, fmt.block_size)
        return HeldBlockColumns(fmt, perm, groups, (shape[0], len(perm)),
                                None if two_level else s2, s2 if two_level else None, w_start)
    return ElementColumns(fmt, perm, s2, len(shape))


def _flat_scale(s: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A scale broadcasting to ``W`` of ``shape`` as a 2-D array broadcasting to
    ``W.reshape(out, -1)``: ``(o, 1)`` when it is constant over the columns
    (``o`` = 1 or ``out``), else ``(o, C)``."""
    s = np.reshape(s, (1,) * (len(shape) - np.ndim(s)) + np.shape(s))
    if all(n == 1 for n in s.shape[1:]):
        return np.reshape(s, (s.shape[0], 1))
    s = np.broadcast_to(s, s.shape[:1] + tuple(shape[1:]))
    return np.ascontiguousarray(s).reshape(s.shape[0], -1)


def _host_scale(scale: Any) -> Any:
    """A static scale as NumPy (arrays of any kind) or as given (Python numbers)."""
    try:
        B.backend_name(scale)
    except TypeError:
        return scale
    return host(scale, "scale").astype(np.float32)


def _check(w: np.ndarray, h: np.ndarray, fmt: Format, block_size: int, damp: float) -> None:
    if isinstance(fmt, Same):
        raise ValueError("gptq needs a format that quantizes; SAME leaves W unchanged")
    if fmt.stochastic:
        raise ValueError(f"{fmt} rounds stochastically; gptq needs a deterministic rounding")
    c = int(np.prod(w.shape[1:])) if w.ndim >= 2 else -1
    if w.ndim < 2 or h.shape != (c, c):
        raise ValueError("W must be (out, in) or (out, in, *kernel) and H (in, in) or (C, C), "
                         f"C = in * prod(kernel); got W {w.shape} and H {h.shape}")
    if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1:
        raise ValueError(f"block_size must be a positive integer, got {block_size!r}")
    if not (isinstance(damp, (int, float)) and damp >= 0):
        raise ValueError(f"damp must be a number >= 0, got {damp!r}")
    if not (np.all(np.isfinite(w)) and np.all(np.isfinite(h))):
        raise ValueError("W and H must be finite")
