"""SmoothQuant smoothing factors (Xiao et al., 2023, "SmoothQuant: Accurate
and Efficient Post-Training Quantization for Large Language Models").

A linear layer ``y = x W^T`` (PyTorch layout, ``W`` of shape ``(out, in)``)
is unchanged when its input channel ``j`` is divided by ``f_j`` and the
weights' input column ``j`` multiplied by it: ``(x / f) (W * f)^T = x W^T``.
Choosing ``f_j = max|X_j|^alpha / max|W_j|^(1 - alpha)`` moves the
activations' outlier channels into the weights, where they are easier to
quantize. Apply the factors as ``X / f`` before the consuming module's input
cast and ``W * f`` (``f`` broadcast along the input axis, ``W * f[None, :]``)
before its weight cast; modules reading the same tensor (q/k/v projections,
gate/up projections) share one ``f`` computed over all their weights.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .. import _backend as B
from ._arrays import host

Array = Any
#: both maxima are clamped below at this value
CLAMP_MIN = 1e-5


def smoothquant_factors(x_absmax: Array, w_absmax_list: Sequence[Array] | Array, alpha: float = 0.5) -> Array:
    """Per input channel ``j``: ``f_j = max(a_j, 1e-5)^alpha / max(w_j, 1e-5)^(1 - alpha)``.

    ``x_absmax``: ``a_j = max |X_j|`` over the calibration activations, shape
    ``(in,)``. ``w_absmax_list``: the weights that read those activations,
    each either a weight matrix ``(out_k, in)`` (PyTorch layout; its
    ``max |W[:, j]|`` is taken) or already a per-input-channel maximum of
    shape ``(in,)``; a single array is one weight. ``w_j`` is the largest of
    them over all given weights. ``alpha`` in ``[0, 1]``.

    Computed in float64 and returned as float32 in ``x_absmax``'s kind and
    device. Non-finite maxima give non-finite factors (not checked).
    Raises ``ValueError`` for mismatched channel counts, an empty weight
    list or ``alpha`` outside ``[0, 1]``.
    """
    if not 0.0 <= float(alpha) <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha!r}")
    a = host(x_absmax, "x_absmax")
    if a.ndim != 1:
        raise ValueError(f"x_absmax must be 1-D (one maximum per input channel), got shape {a.shape}")
    weights = [w_absmax_list] if _is_array(w_absmax_list) else list(w_absmax_list)
    if not weights:
        raise ValueError("w_absmax_list holds no weight")
    w = np.zeros_like(a)
    for k, item in enumerate(weights):
        m = np.abs(host(item, f"w_absmax_list[{k}]"))
        m = m if m.ndim == 1 else (np.max(m, axis=0) if m.ndim == 2 and m.shape[0] else None)
        if m is None or m.shape != a.shape:
            raise ValueError(f"w_absmax_list[{k}] of shape {tuple(np.shape(item))} does not match "
                             f"{a.shape[0]} input channels: expected (out, {a.shape[0]}) or ({a.shape[0]},)")
        w = np.maximum(w, m)
    f = np.maximum(a, CLAMP_MIN) ** alpha / np.maximum(w, CLAMP_MIN) ** (1.0 - alpha)
    return B.convert_like(f.astype(np.float32), x_absmax)


def _is_array(v: Any) -> bool:
    try:
        B.backend_name(v)
    except TypeError:
        return False
    return True
