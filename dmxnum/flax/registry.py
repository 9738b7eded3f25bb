"""What the Flax frontend knows about Flax modules and functional ops.

Pure data plus two naming helpers: which framework-neutral *kind* (see
:data:`dmxnum.config.KIND_SLOTS`) a Flax Linen class has, where its weight
and bias live, and in which layout its tensors are; which functions in
``jax.nn`` / ``flax.linen`` are configurable functional ops, which JAX
primitives are operator sites (``+``, ``*``, ``@``); and the PyTorch-style
aliases of Flax names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class ModuleInfo:
    """How a Flax Linen class maps onto the configuration schema.

    ``kind``: the framework-neutral kind; ``weight`` / ``bias``: the names of
    its weight and bias parameters (None when it has none); ``weight_layout``
    and ``act_layout``: the :mod:`~dmxnum.flax.layouts` layouts of its weight
    and of its activations (input, accumulation, output).
    """

    kind: str
    weight: str | None = None
    bias: str | None = None
    weight_layout: str = "features"
    act_layout: str = "features"


#: Flax Linen / NNX class name -> how it is configured. Other classes are kind
#: ``module`` (input and output formats only).
FLAX_MODULES: dict[str, ModuleInfo] = {
    "Dense": ModuleInfo("linear", "kernel", "bias", "linear_weight"),
    "DenseGeneral": ModuleInfo("linear", "kernel", "bias", "dense_general_weight"),
    "Conv": ModuleInfo("conv", "kernel", "bias", "conv_weight", "channels"),
    "ConvTranspose": ModuleInfo("conv_transpose", "kernel", "bias", "convt_weight", "channels"),
    "Embed": ModuleInfo("embedding", "embedding"),
    "LayerNorm": ModuleInfo("layer_norm", "scale", "bias"),
    "RMSNorm": ModuleInfo("rms_norm", "scale"),
    "GroupNorm": ModuleInfo("group_norm", "scale", "bias", act_layout="channels"),
    "BatchNorm": ModuleInfo("batch_norm", "scale", "bias", act_layout="channels"),
    "Dropout": ModuleInfo("dropout"),
    "PReLU": ModuleInfo("activation"),
    # Flax NNX (the names shared with Linen above mean the same parameters and layouts)
    "Linear": ModuleInfo("linear", "kernel", "bias", "linear_weight"),
    "LinearGeneral": ModuleInfo("linear", "kernel", "bias", "dense_general_weight"),
}

#: Flax has functions, not modules, for activations and pooling. A user module
#: whose class has one of these PyTorch names (for instance a two-line
#: ``class ReLU(nn.Module)`` so that a file written for PyTorch's ``nn.ReLU``
#: modules applies) gets the PyTorch kind.
NAMED_MODULES: dict[str, ModuleInfo] = {
    "ReLU": ModuleInfo("relu"),
    "GELU": ModuleInfo("gelu"),
    "SiLU": ModuleInfo("silu"),
    "Tanh": ModuleInfo("tanh"),
    "Softmax": ModuleInfo("softmax"),
    "MaxPool2d": ModuleInfo("pool", act_layout="channels"),
    "AvgPool2d": ModuleInfo("pool", act_layout="channels"),
    "AdaptiveAvgPool2d": ModuleInfo("pool", act_layout="channels"),
}

#: Module kinds whose weight (and bias) the frontend replaces by effective values.
WEIGHTED_KINDS = frozenset(
    {"linear", "conv", "conv_transpose", "embedding", "layer_norm", "rms_norm", "group_norm", "batch_norm"}
)

#: Kinds whose ``accum_format`` splits the bias add from the product.
PRODUCT_KINDS = frozenset({"linear", "conv", "conv_transpose"})


def module_info(cls: type) -> tuple[str, ModuleInfo]:
    """``(class name for the configuration, info)`` of a Flax Linen class.

    A subclass of a Flax class (first match along the MRO, Flax classes only)
    is configured like it; a class named as in :data:`NAMED_MODULES` gets
    that kind; anything else is kind ``module``. The class name reported is the Flax one, except
    that ``Conv``/``ConvTranspose`` are reported per dimensionality by the
    caller (see :func:`instance_name`).
    """
    for base in cls.__mro__:
        if base.__name__ in FLAX_MODULES and base.__module__.startswith("flax."):
            return base.__name__, FLAX_MODULES[base.__name__]
    if cls.__name__ in NAMED_MODULES:
        return cls.__name__, NAMED_MODULES[cls.__name__]
    return cls.__name__, ModuleInfo("module")


def instance_name(cls_name: str, spatial: int | None) -> str:
    """The class name given to the configuration for an instance.

    Flax ``Conv`` / ``ConvTranspose`` have no dimensionality in their class
    name; with 2 spatial dims they keep it (``Conv`` is ``Conv2d`` in the
    configuration's instance table), otherwise they are reported as
    ``Conv1d``/``Conv3d`` (``ConvTranspose1d``/...), as PyTorch names them.
    """
    if cls_name in ("Conv", "ConvTranspose") and spatial is not None and spatial != 2:
        return f"{cls_name}{spatial}d"
    return cls_name


@dataclass(frozen=True)
class OpInfo:
    """A configurable functional op: its name in ``<path>.<op>_<i>`` and its kind."""

    op: str
    kind: str


#: Attribute name (in ``jax.nn``, ``flax.linen``, ``flax.linen.activation``)
#: -> functional op. ``swish`` is ``silu``.
ACTIVATION_OPS: dict[str, OpInfo] = {
    "softmax": OpInfo("softmax", "softmax"),
    "gelu": OpInfo("gelu", "gelu"),
    "silu": OpInfo("silu", "silu"),
    "swish": OpInfo("silu", "silu"),
    "relu": OpInfo("relu", "relu"),
    "tanh": OpInfo("tanh", "tanh"),
    **{
        n: OpInfo(n, "activation")
        for n in (
            "log_softmax", "sigmoid", "elu", "celu", "selu", "leaky_relu", "relu6", "softplus",
            "hard_tanh", "hard_sigmoid", "hard_silu", "hard_swish", "soft_sign", "log_sigmoid",
            "mish", "squareplus", "sparse_plus",
        )
    },
}

#: The attention op (Flax ``dot_product_attention``): instance name and kind.
ATTENTION_OP = OpInfo("dot_product_attention", "attention")
#: Operator sites (:mod:`dmxnum.flax.primitives`): the JAX primitive -> the op it is
#: configured as. ``x + y`` / ``x * y`` of two activations of the same shape and any
#: product of two activations (``@``, ``jnp.matmul``, ``jnp.einsum``: ``dot_general``).
SITE_OPS: dict[str, OpInfo] = {
    "add": OpInfo("add", "add"),
    "mul": OpInfo("mul", "mul"),
    "dot_general": OpInfo("matmul", "matmul"),
}
#: The matmul op (``@``, ``jax.numpy.matmul``).
MATMUL_OP = SITE_OPS["dot_general"]

ALL_OPS = {o.op for o in ACTIVATION_OPS.values()} | {ATTENTION_OP.op} | {o.op for o in SITE_OPS.values()}

#: PyTorch's name of an op where it differs from Flax's (one file serves both).
TORCH_OP_NAMES = {"dot_product_attention": "scaled_dot_product_attention"}

_AUTO_INDEX = re.compile(r"^(.+)_(\d+)$")
_OP_NAME = re.compile(r"^(?P<op>[a-z0-9_]+?)_(?P<i>\d+)$")


def torch_alias(name: str, op: str | None = None) -> str:
    """The PyTorch spelling of a Flax name.

    Every module-path component ending in ``_<digits>`` (Flax's
    ``layers_0`` for the list ``self.layers``, ``Dense_0`` for an unnamed
    compact submodule) becomes ``.<digits>`` (``layers.0``, ``Dense.0``);
    for a functional op name (``op`` given) the last component
    ``<op>_<i>`` keeps its form, with ``dot_product_attention`` spelled
    ``scaled_dot_product_attention``. ``blk.layers_0.softmax_1`` ->
    ``blk.layers.0.softmax_1``.
    """
    parts = name.split(".") if name else []
    last = None
    if op is not None and parts:
        last = parts.pop()
        torch_op = TORCH_OP_NAMES.get(op)
        if torch_op is not None and last.startswith(op + "_"):
            last = torch_op + last[len(op):]
    parts = [_AUTO_INDEX.sub(r"\1.\2", p) for p in parts]
    if last is not None:
        parts.append(last)
    return ".".join(parts)


def split_op_name(name: str) -> tuple[str, str, int] | None:
    """``(module path, op, i)`` when ``name`` looks like ``<path>.<op>_<i>`` for a known op."""
    path, _, last = name.rpartition(".")
    m = _OP_NAME.match(last)
    if m is None:
        return None
    op = m.group("op")
    op = {v: k for k, v in TORCH_OP_NAMES.items()}.get(op, op)
    if op not in ALL_OPS:
        return None
    return path, op, int(m.group("i"))
