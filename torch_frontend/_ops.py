"""Functional ops that ``dmx.aware()`` names and configures.

Each intercepted callable maps to an op name (the ``<op>`` of the
configurable name ``<module path>.<op>_<i>``) and a kind (its slots).
:func:`apply` runs one call with its configured slots; with no slots it is
exactly ``func(*args, **kwargs)``.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch
import torch.nn.functional as F

from . import _core
from ._modules import _arg

#: callable -> (op name, kind)
OPS: dict[Callable, tuple[str, str]] = {
    F.softmax: ("softmax", "softmax"),
    torch.softmax: ("softmax", "softmax"),
    torch.Tensor.softmax: ("softmax", "softmax"),
    F.gelu: ("gelu", "gelu"),
    F.silu: ("silu", "silu"),
    F.layer_norm: ("layer_norm", "layer_norm"),
    torch.matmul: ("matmul", "matmul"),
    torch.Tensor.matmul: ("matmul", "matmul"),
    torch.Tensor.__matmul__: ("matmul", "matmul"),
    torch.bmm: ("bmm", "matmul"),
    torch.Tensor.bmm: ("bmm", "matmul"),
    F.scaled_dot_product_attention: ("scaled_dot_product_attention", "attention"),
    torch.add: ("add", "add"),
    torch.Tensor.add: ("add", "add"),
    torch.Tensor.__add__: ("add", "add"),
    torch.mul: ("mul", "mul"),
    torch.Tensor.mul: ("mul", "mul"),
    torch.Tensor.__mul__: ("mul", "mul"),
}

#: op name -> kind
OP_KINDS: dict[str, str] = {name: kind for name, kind in OPS.values()}


def lookup(func: Callable, args: tuple) -> tuple[str, str] | None:
    """``(op, kind)`` when ``func(*args)`` is an intercepted op call, else None.

    Additions and products count only when both operands are floating
    tensors (``x + 1``, ``x * 0.5`` or an integer index sum is not an op of
    the model's numerics).
    """
    try:
        entry = OPS.get(func)
    except TypeError:  # unhashable callable
        return None
    if entry is None:
        return None
    if entry[1] in ("add", "mul"):
        if len(args) < 2:
            return None
        a, b = args[0], args[1]
        if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)):
            return None
        if not (a.is_floating_point() and b.is_floating_point()):
            return None
    return entry


def _replace(args: tuple, kwargs: dict, index: int, name: str, fn: Callable) -> tuple[tuple, dict]:
    if len(args) > index:
        return args[:index] + (fn(args[index]),) + args[index + 1:], kwargs
    if name in kwargs and kwargs[name] is not None:
        return args, {**kwargs, name: fn(kwargs[name])}
    return args, kwargs


def _attention(q, k, v, kwargs_all: dict, slots: dict, key: Any) -> torch.Tensor:
    """``scaled_dot_product_attention`` as its decomposition:
    ``softmax(accum(q @ k^T) * scale + mask) -> accum(p @ v)``."""
    attn_mask = kwargs_all.get("attn_mask")
    dropout_p = kwargs_all.get("dropout_p", 0.0)
    is_causal = kwargs_all.get("is_causal", False)
    scale = kwargs_all.get("scale")
    if kwargs_all.get("enable_gqa", False) and k.shape[-3] != q.shape[-3]:
        rep = q.shape[-3] // k.shape[-3]
        k = k.repeat_interleave(rep, dim=-3)
        v = v.repeat_interleave(rep, dim=-3)
    accum = slots.get("accum_format")
    approx = slots.get("approximation_function")
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    scores = _core.cast(torch.matmul(q, k.transpose(-2, -1)), accum, key) * scale
    L, S = q.shape[-2], k.shape[-2]
    if is_causal:
        causal = torch.ones(L, S, dtype=torch.bool, device=q.device).tril()
        scores = scores.masked_fill(~causal, float("-inf"))
    if attn_mask is not None:
        if attn_mask.dtype == torch.bool:
            scores = scores.masked_fill(~attn_mask, float("-inf"))
        else:
            scores = scores + attn_mask
    if _core.is_none_logic(approx):
        probs = torch.softmax(scores, dim=-1)
    else:
        probs = _core.approximate(scores, approx, axis=-1)
    if dropout_p > 0.0:
        probs = F.dropout(probs, p=dropout_p, training=True)
    return _core.cast(torch.matmul(probs, v), accum, key)


_SDPA_NAMES = ("query", "key", "value", "attn_mask", "dropout_p", "is_causal", "scale", "enable_gqa")


def apply(op: str, func: Callable, args: tuple, kwargs: dict, slots: dict, key: Any) -> Any:
    """Run the intercepted call ``func(*args, **kwargs)`` with its slots applied:
    input (first operand), multiplier (second operand of matmul/bmm; key and
    value of attention; second operand of mul), residual (second operand of add), weight/bias (of
    ``F.layer_norm``), approximation (softmax, gelu, silu, layer_norm, attention's
    softmax), accumulation (attention's two products), output (the result)."""
    inp = slots.get("input_format")
    args, kwargs = _replace(args, kwargs, 0, "input", lambda t: _core.cast(t, inp, key))
    kind = OP_KINDS[op]
    if kind == "matmul":
        mul = slots.get("multiplier_format")
        args, kwargs = _replace(args, kwargs, 1, "other", lambda t: _core.cast(t, mul, key))
        out = func(*args, **kwargs)
    elif kind == "mul":
        mul = slots.get("multiplier_format")
        args, kwargs = _replace(args, kwargs, 1, "other", lambda t: _core.cast(t, mul, key))
        out = func(*args, **kwargs)
    elif kind == "add":
        res = slots.get("residual_format")
        args, kwargs = _replace(args, kwargs, 1, "other", lambda t: _core.cast(t, res, key))
        out = func(*args, **kwargs)
    elif kind == "attention":
        mul = slots.get("multiplier_format")
        args, kwargs = _replace(args, kwargs, 1, "key", lambda t: _core.cast(t, mul, key))
        args, kwargs = _replace(args, kwargs, 2, "value", lambda t: _core.cast(t, mul, key))
        if _core.is_none_logic(slots.get("approximation_function")) and _core.is_same(
            slots.get("accum_format")
        ):
            out = func(*args, **kwargs)
        else:
            bound = dict(zip(_SDPA_NAMES, args))
            bound.update(kwargs)
            out = _attention(bound["query"], bound["key"], bound["value"], bound, slots, key)
    elif kind == "layer_norm":
        wf, bf = slots.get("weight_format"), slots.get("bias_format")
        args, kwargs = _replace(args, kwargs, 2, "weight", lambda t: _core.cast(t, wf, key))
        args, kwargs = _replace(args, kwargs, 3, "bias", lambda t: _core.cast(t, bf, key))
        approx = slots.get("approximation_function")
        if _core.is_none_logic(approx):
            out = func(*args, **kwargs)
        else:
            out = _core.approximate(
                args[0], approx,
                normalized_shape=tuple(_arg(args, kwargs, 1, "normalized_shape")),
                weight=_arg(args, kwargs, 2, "weight"), bias=_arg(args, kwargs, 3, "bias"),
            )
    elif kind in ("softmax", "gelu", "silu"):
        approx = slots.get("approximation_function")
        if _core.is_none_logic(approx):
            out = func(*args, **kwargs)
        elif kind == "softmax":
            x, dim = args[0], _arg(args, kwargs, 1, "dim")
            if kwargs.get("dtype") is not None:
                x = x.to(kwargs["dtype"])
            out = _core.approximate(x, approx, axis=-1 if dim is None else dim)
        else:
            out = _core.approximate(args[0], approx)
    else:
        out = func(*args, **kwargs)
    return _core.cast(out, slots.get("output_format"), key)
