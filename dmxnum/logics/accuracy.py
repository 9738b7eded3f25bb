"""Accuracy characterization of every logic against the exact float64 function.

:func:`measure` runs a logic (NumPy kernel) on two fixed, seeded input sets
and returns the maximum absolute and relative error against the exact
function computed in float64:

* ``grid``: a dense grid over the logic's valid input range (layer norm:
  each row is its own tensor; RMS norm: rows of 576, the grid scaled by
  ``2^NORM`` for the fallback);
* ``realistic``: attention logits (with causal masks) for softmax, MLP
  pre-activations for GELU/SILU/EXP, transformer residual activations (with
  outlier channels) for layer and RMS norm, positive variances for RECIP/RSQRT.

Relative error is ``|y - exact| / |exact|`` over the elements with
``|exact| >= REL_FLOOR``. :data:`DOCUMENTED_BOUNDS` holds the bounds that
``docs/logics.md`` states and the tests assert.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .grammar import parse_logic

REL_FLOOR = 1e-3

#: spec -> (grid abs, grid rel, realistic abs, realistic rel): documented upper bounds
DOCUMENTED_BOUNDS: dict[str, tuple[float, float, float, float]] = {
    "SOFTMAX(poly2,int)": (0.00046, 0.003, 0.00087, 0.0042),
    "SOFTMAX(poly2,float32)": (0.00047, 0.0035, 0.00085, 0.0045),
    "SOFTMAX(poly2,float16)": (0.0049, 0.036, 0.0033, 0.016),
    "SOFTMAX(poly2,bfloat16)": (0.031, 0.25, 0.016, 0.11),
    "SOFTMAX(base2,int)": (0.012, 0.07, 0.017, 0.078),
    "SOFTMAX(base2,float32)": (0.012, 0.07, 0.017, 0.078),
    "SOFTMAX(base2,float16)": (0.012, 0.09, 0.017, 0.081),
    "SOFTMAX(base2,bfloat16)": (0.025, 0.25, 0.03, 0.16),
    "SOFTMAX(base2quake3,float16)": (0.013, 0.091, 0.018, 0.083),
    "SOFTMAX(ibert)": (0.0051, 1.3, 0.0053, 1.3),
    "GELU(poly2,float16)": (0.026, 1.3, 0.026, 1.3),
    "GELU(ibert)": (0.023, 1.3, 0.023, 1.3),
    "LAYERNORM(fallback,0,float16)": (0.024, 2.3, 0.026, 0.2),
    "LAYERNORM(fallback,3,float16)": (0.021, 2, 0.033, 0.2),
    "LAYERNORM(legacy,_,float32)": (7.3e-07, 0.00032, 2.8e-06, 3.4e-05),
    "LAYERNORM(legacy,_,float16)": (0.0071, 2.3, 0.025, 0.33),
    "LAYERNORM(legacy,_,bfloat16)": (0.048, 19, 0.21, 2.4),
    "LAYERNORM(quake3,_,float16)": (0.0093, 2, 0.05, 0.59),
    "LAYERNORM(quake3,_,float32)": (0.0058, 0.0025, 0.034, 0.41),
    "LAYERNORM(ibert)": (0.0027, 0.72, 0.054, 1.1),
    "EXP(poly2,int)": (39, 0.0028, 1.2, 0.0028),
    "EXP(poly2,float32)": (37, 0.0029, 1.1, 0.0029),
    "EXP(poly2,float16)": (1.6e+02, 0.014, 4, 0.0099),
    "EXP(poly2,bfloat16)": (1.4e+03, 0.067, 31, 0.053),
    "EXP(base2,int)": (8.8e+02, 0.054, 22, 0.054),
    "EXP(base2,float32)": (8.8e+02, 0.054, 22, 0.054),
    "EXP(base2,float16)": (9.4e+02, 0.062, 21, 0.055),
    "EXP(base2,bfloat16)": (2.2e+03, 0.11, 29, 0.11),
    "RECIP(quake3,float16)": (70, 0.0061, 0.92, 0.0061),
    "RSQRT(quake3,float16)": (0.35, 0.0034, 0.038, 0.0035),
    "RSQRT(quake3,float32)": (0.28, 0.0022, 0.024, 0.0022),
    "SILU(poly2,int)": (0.00062, 0.0028, 0.00062, 0.0028),
    "SILU(poly2,float32)": (0.00063, 0.0028, 0.00063, 0.0028),
    "SILU(poly2,float16)": (0.0078, 0.0096, 0.0057, 0.0089),
    "SILU(poly2,bfloat16)": (0.047, 0.059, 0.042, 0.043),
    "SILU(base2,int)": (0.013, 0.057, 0.013, 0.055),
    "SILU(base2,float32)": (0.013, 0.057, 0.013, 0.055),
    "SILU(base2,float16)": (0.013, 0.064, 0.013, 0.059),
    "SILU(base2,bfloat16)": (0.047, 0.088, 0.042, 0.07),
    "SILU(base2quake3,float16)": (0.027, 0.062, 0.015, 0.056),
    "RMSNORM(fallback,0,float16)": (0.0038, 0.0049, 0.041, 0.0028),
    "RMSNORM(fallback,8,float16)": (0.0038, 0.0066, 0.041, 0.0065),
    "RMSNORM(legacy,float32)": (4.2e-07, 1.9e-07, 4e-06, 2.8e-07),
    "RMSNORM(legacy,float16)": (0.0038, 0.0049, 0.041, 0.0028),
    "RMSNORM(legacy,bfloat16)": (0.033, 0.014, 0.28, 0.023),
    "RMSNORM(quake3,float16)": (0.011, 0.0046, 0.068, 0.0052),
    "RMSNORM(quake3,float32)": (0.0058, 0.0022, 0.044, 0.0022),
}


#: the RMS norm's ``eps`` in the accuracy runs (Llama-family modules use 1e-5 or 1e-6)
RMS_EPS = 1e-5


def _erf(x: np.ndarray) -> np.ndarray:
    return np.vectorize(math.erf, otypes=[np.float64])(x)


def exact(spec: Any, x: np.ndarray, **args: Any) -> np.ndarray:
    """The exact function (float64) a logic approximates."""
    logic = parse_logic(spec)
    x = np.asarray(x, np.float64)
    if logic.op == "SOFTMAX":
        x = np.maximum(x, -16384.0)
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)
    if logic.op == "GELU":
        return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))
    if logic.op == "SILU":
        return x / (1.0 + np.exp(-x))
    if logic.op == "RMSNORM":
        y = x / np.sqrt((x * x).mean(axis=-1, keepdims=True) + rmsnorm_eps(logic, args.get("eps", RMS_EPS)))
        if args.get("weight") is not None:
            y = y * np.asarray(args["weight"], np.float64)
        return y
    if logic.op == "EXP":
        return np.exp(x)
    if logic.op == "RECIP":
        return 1.0 / x
    if logic.op == "RSQRT":
        return 1.0 / np.sqrt(x)
    if logic.op == "LAYERNORM":
        mean = x.mean(axis=-1, keepdims=True)
        var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
        y = (x - mean) / np.sqrt(var + layernorm_eps(logic))
        if args.get("weight") is not None:
            y = y * np.asarray(args["weight"], np.float64)
        if args.get("bias") is not None:
            y = y + np.asarray(args["bias"], np.float64)
        return y
    return x


def layernorm_eps(logic: Any) -> float:
    """The epsilon inside the square root of the layer norm a logic implements (in input units)."""
    logic = parse_logic(logic)
    if logic.algorithm == "fallback":
        return 1e-5 * 4.0**logic.norm  # x is divided by 2^NORM before the variance
    if logic.algorithm == "legacy":
        return 2.0**-126
    if logic.algorithm == "quake3":
        return max(float(np.finfo(np.float16 if logic.nf == "float16" else np.float32).eps), 1e-5)
    return 0.0


def rmsnorm_eps(logic: Any, eps: float) -> float:
    """The epsilon added to the mean square of the RMS norm a logic implements (in input units)."""
    logic = parse_logic(logic)
    if logic.algorithm == "quake3":
        return max(float(np.finfo(np.float16 if logic.nf == "float16" else np.float32).eps), eps)
    return eps


def inputs(spec: Any, which: str) -> tuple[np.ndarray, dict]:
    """The fixed input set ``"grid"`` or ``"realistic"`` for a logic, and its extra arguments."""
    logic = parse_logic(spec)
    rng = np.random.default_rng(20210611)
    op = logic.op
    if op == "SOFTMAX":
        if which == "grid":
            # rows linspace(-a, a, 128) for spreads a in [0, 16]; plus shifted copies
            a = np.linspace(0.0, 16.0, 65)[:, None]
            base = np.linspace(-1.0, 1.0, 128)[None, :] * a
            x = np.concatenate([base, base + 20.0, base - 20.0])
        else:
            # attention logits q.k/sqrt(d) of unit-variance heads, plus causal masks
            x = rng.normal(0.0, 1.0, size=(512, 128)) * rng.choice([1.0, 2.0, 4.0], size=(512, 1))
            mask = np.triu(np.ones((128, 128), bool), 1)
            x[:128][mask] = -np.inf
        return x.astype(np.float32), {}
    if op == "LAYERNORM":
        n = 384
        if which == "grid":
            # rows a * (t^3 + c): spreads a in [0.01, 10], offsets c in [-1, 1] (relative)
            a = np.repeat(np.geomspace(0.01, 10.0, 16), 9)[:, None]
            c = np.tile(np.linspace(-1.0, 1.0, 9), 16)[:, None]
            x = a * (np.linspace(-1.0, 1.0, n)[None, :] ** 3 + c)
            return x.astype(np.float32), {}
        x = rng.normal(0.0, 1.0, size=(256, n))
        x[:, rng.choice(n, 4, replace=False)] *= 20.0  # outlier channels
        w = rng.normal(1.0, 0.1, size=n).astype(np.float32)
        b = rng.normal(0.0, 0.1, size=n).astype(np.float32)
        return x.astype(np.float32), {"weight": w, "bias": b}
    if op == "RMSNORM":
        n = 576  # SmolLM2-135M's hidden size
        if which == "grid":
            # rows a * (t^3 + c): scales a in [0.01, 8] (times 2^NORM for the fallback), offsets c in [-1, 1]
            a = np.repeat(np.geomspace(0.01, 8.0, 16), 9)[:, None] * 2.0 ** (logic.norm or 0)
            c = np.tile(np.linspace(-1.0, 1.0, 9), 16)[:, None]
            x = a * (np.linspace(-1.0, 1.0, n)[None, :] ** 3 + c)
            return x.astype(np.float32), {"eps": RMS_EPS}
        x = rng.normal(0.0, 1.0, size=(256, n))
        x[:, rng.choice(n, 4, replace=False)] *= 20.0  # outlier channels
        w = rng.normal(1.0, 0.1, size=n).astype(np.float32)
        return x.astype(np.float32), {"weight": w, "eps": RMS_EPS}
    if op in ("GELU", "SILU"):
        if which == "grid":
            return np.linspace(-8.0, 8.0, 20001).astype(np.float32), {}
        return (rng.normal(0.0, 1.5, size=50000) - 0.5).astype(np.float32), {}
    if op == "EXP":
        if which == "grid":
            return np.linspace(-10.0, 10.0, 20001).astype(np.float32), {}
        return rng.normal(-2.0, 2.0, size=50000).clip(-10, 10).astype(np.float32), {}
    # RECIP / RSQRT: positive normal float16 range
    if which == "grid":
        hi = 15000.0 if op == "RECIP" else 60000.0
        return np.geomspace(2.0**-14, hi, 20001).astype(np.float32), {}
    return (rng.gamma(2.0, 0.5, size=50000) + 1e-3).astype(np.float32), {}


def measure(spec: Any) -> dict[str, tuple[float, float]]:
    """``{"grid": (max_abs, max_rel), "realistic": (max_abs, max_rel)}`` of the NumPy kernel."""
    from .api import approximate

    out = {}
    for which in ("grid", "realistic"):
        x, args = inputs(spec, which)
        if parse_logic(spec).op == "LAYERNORM":  # every row its own tensor (I-BERT's per-tensor scale)
            y = np.concatenate([approximate(x[i : i + 1], spec, **args) for i in range(x.shape[0])])
        else:
            y = approximate(x, spec, **args)
        y = np.asarray(y, np.float64)
        e = exact(spec, x, **args)
        err = np.abs(y - e)
        big = np.abs(e) >= REL_FLOOR
        rel = float(np.max(err[big] / np.abs(e[big]))) if big.any() else 0.0
        out[which] = (float(np.max(err)), rel)
    return out
