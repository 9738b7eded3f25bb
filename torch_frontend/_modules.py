"""Module kinds and the module computations an ``accum_format`` or an
``approximation_function`` replaces.

A covered module is recognised by ``isinstance`` against the table below
(first match wins) and given a framework-neutral kind and a canonical class
name; any other module has kind ``module`` (input and output slots only).
"""

from __future__ import annotations

import sys
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from . import _core

_TABLE: list[tuple[type, str]] = [
    (nn.Linear, "linear"),
    (nn.Conv1d, "conv"),
    (nn.Conv2d, "conv"),
    (nn.Conv3d, "conv"),
    (nn.ConvTranspose1d, "conv_transpose"),
    (nn.ConvTranspose2d, "conv_transpose"),
    (nn.Embedding, "embedding"),
    (nn.LayerNorm, "layer_norm"),
    (nn.GroupNorm, "group_norm"),
    (nn.BatchNorm1d, "batch_norm"),
    (nn.BatchNorm2d, "batch_norm"),
    (nn.Softmax, "softmax"),
    (nn.GELU, "gelu"),
    (nn.SiLU, "silu"),
    (nn.ReLU, "relu"),
    (nn.Tanh, "tanh"),
    (nn.MaxPool2d, "pool"),
    (nn.AvgPool2d, "pool"),
    (nn.AdaptiveAvgPool2d, "pool"),
    (nn.Dropout, "dropout"),
    (nn.MultiheadAttention, "mha"),
]
if hasattr(nn, "RMSNorm"):
    _TABLE.append((nn.RMSNorm, "rms_norm"))


def _hf_conv1d() -> type | None:
    """Hugging Face's ``Conv1D`` class when transformers is already imported."""
    if "transformers" not in sys.modules:
        return None
    try:
        from transformers.pytorch_utils import Conv1D
    except Exception:  # pragma: no cover - other transformers layouts
        return None
    return Conv1D


#: Hugging Face classes covered by their class name (defined in a
#: ``transformers`` module): name -> (canonical class name, kind). RMS norms
#: are an allow-list of the classes that compute ``w * (x * rsqrt(mean(x^2) +
#: eps))`` (``GemmaRMSNorm`` scales by ``1 + w`` and is not one of them).
_HF_CLASSES: dict[str, tuple[str, str]] = {
    "LlamaRMSNorm": ("RMSNorm", "rms_norm"),
    "MistralRMSNorm": ("RMSNorm", "rms_norm"),
    "Qwen2RMSNorm": ("RMSNorm", "rms_norm"),
    "SiLUActivation": ("SiLU", "silu"),
}


def classify(module: nn.Module) -> tuple[str, str]:
    """``(class name, kind)`` of a module: the covered base class's name and kind,
    ``("Conv1D", "linear")`` for Hugging Face ``Conv1D``, ``("RMSNorm",
    "rms_norm")`` for the allow-listed Hugging Face RMS norms, ``("SiLU",
    "silu")`` for its ``SiLUActivation``, else ``(type name, "module")``."""
    for cls, kind in _TABLE:
        if isinstance(module, cls):
            return cls.__name__, kind
    conv1d = _hf_conv1d()
    if conv1d is not None and isinstance(module, conv1d):
        return "Conv1D", "linear"
    cls = type(module)
    hf = _HF_CLASSES.get(cls.__name__)
    if hf is not None and cls.__module__.startswith("transformers."):
        return hf
    return cls.__name__, "module"


def rms_norm_arguments(module: nn.Module, x: torch.Tensor) -> dict[str, Any]:
    """``normalized_shape``, ``weight`` and ``eps`` of an RMS-norm module for
    ``dmxnum.approximate``: ``nn.RMSNorm``'s own attributes (``eps=None``:
    ``finfo(x.dtype).eps``), Hugging Face's ``weight`` shape and
    ``variance_epsilon``."""
    weight = getattr(module, "weight", None)
    shape = getattr(module, "normalized_shape", None)
    if shape is None:
        shape = tuple(weight.shape) if weight is not None else tuple(x.shape[-1:])
    eps = getattr(module, "eps", getattr(module, "variance_epsilon", None))
    if eps is None:
        eps = torch.finfo(x.dtype).eps
    return {"normalized_shape": tuple(shape), "weight": weight, "eps": float(eps)}


def whole_replacement(kind: str, slots: dict) -> Callable | None:
    """A function ``(module, x) -> output`` that computes a whole covered
    module from its (already cast) first input, replacing its forward, or
    None: an ``rms_norm`` module with an ``approximation_function`` (its
    forward is a chain of tensor methods in Hugging Face models, so no
    single call can be replaced)."""
    approx = slots.get("approximation_function")
    if kind != "rms_norm" or _core.is_none_logic(approx):
        return None

    def rms_norm(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
        out = _core.approximate(x, approx, **rms_norm_arguments(module, x))
        return out.to(x.dtype)

    return rms_norm


def weight_transposed(cls_name: str) -> bool:
    """True for modules whose stored weight is ``(in, out)`` (HF ``Conv1D``):
    its weight slots are applied in the PyTorch ``(out, in)`` layout."""
    return cls_name == "Conv1D"


# --- computations replaced inside a covered module --------------------------

def _with_accum(y: torch.Tensor, bias: Any, fmt: Any, key: Any, channel_dim: int | None) -> torch.Tensor:
    y = _core.cast(y, fmt, key)
    if bias is None:
        return y
    if channel_dim is not None:
        shape = [1] * y.ndim
        shape[channel_dim] = -1
        bias = bias.reshape(shape)
    return y + bias


def _arg(args: tuple, kwargs: dict, index: int, name: str, default: Any = None) -> Any:
    if len(args) > index:
        return args[index]
    return kwargs.get(name, default)


def _without(args: tuple, kwargs: dict, index: int, name: str, value: Any) -> tuple[tuple, dict]:
    if len(args) > index:
        args = args[:index] + (value,) + args[index + 1:]
    else:
        kwargs = {**kwargs, name: value}
    return args, kwargs


_CONV_FUNCS = {F.conv1d, F.conv2d, F.conv3d}
_CONVT_FUNCS = {F.conv_transpose1d, F.conv_transpose2d}


def replacement(kind: str, slots: dict) -> Callable | None:
    """A handler ``(func, args, kwargs, key) -> result | NotImplemented`` that
    replaces the core call of a covered module of ``kind`` configured with
    ``slots``, or None when nothing is replaced (accum SAME, approximation NONE).

    * linear / conv / conv_transpose with ``accum_format``: the product
      without bias, cast to the accumulation format, plus the bias;
    * layer_norm / softmax / gelu / silu with ``approximation_function``:
      ``dmxnum.approximate`` on the (already cast) input with the module's
      (effective) weight and bias.
    """
    accum = slots.get("accum_format")
    approx = slots.get("approximation_function")
    if kind in ("linear", "conv", "conv_transpose") and not _core.is_same(accum):
        def product(func, args, kwargs, key):
            if func is F.linear:
                bias = _arg(args, kwargs, 2, "bias")
                args, kwargs = _without(args, kwargs, 2, "bias", None)
                return _with_accum(func(*args, **kwargs), bias, accum, key, None)
            if func is torch.addmm:  # HF Conv1D: bias + x @ W
                bias, x, w = args[0], args[1], args[2]
                return _with_accum(torch.mm(x, w), bias, accum, key, None)
            if func in _CONV_FUNCS or func in _CONVT_FUNCS:
                bias = _arg(args, kwargs, 2, "bias")
                args, kwargs = _without(args, kwargs, 2, "bias", None)
                return _with_accum(func(*args, **kwargs), bias, accum, key, 1)
            return NotImplemented

        return product
    if _core.is_none_logic(approx):
        return None
    if kind == "layer_norm":
        def layer_norm(func, args, kwargs, key):
            if func is not F.layer_norm:
                return NotImplemented
            x = args[0]
            shape = tuple(_arg(args, kwargs, 1, "normalized_shape"))
            return _core.approximate(
                x, approx, normalized_shape=shape,
                weight=_arg(args, kwargs, 2, "weight"), bias=_arg(args, kwargs, 3, "bias"),
            )

        return layer_norm
    if kind == "softmax":
        def softmax(func, args, kwargs, key):
            if func is not F.softmax:
                return NotImplemented
            x, dim = args[0], _arg(args, kwargs, 1, "dim")
            dtype = kwargs.get("dtype")
            if dtype is not None:
                x = x.to(dtype)
            return _core.approximate(x, approx, axis=-1 if dim is None else dim)

        return softmax
    if kind == "gelu":
        def gelu(func, args, kwargs, key):
            if func is not F.gelu:
                return NotImplemented
            return _core.approximate(args[0], approx)

        return gelu
    if kind == "silu":
        def silu(func, args, kwargs, key):
            if func is not F.silu:
                return NotImplemented
            return _core.approximate(args[0], approx)

        return silu
    return None
