"""Configuration slots, module kinds and instance names (framework-neutral).

A configuration maps a module name to a mapping of *slots*. The slots, in the
order the frontends apply them (SPEC section 6):

``instance``
    optional check of the module's type;
``weight_sparseness``
    sparsify the float weight (scores from the float weight);
``weight_format``
    cast the sparsified weight (effective weight = cast(sparsify(w)));
``weight_scale``
    the weight cast's calibrated static scale (``NONE``: none);
``input_format``
    the module's first tensor input;
``input_scale``
    the input cast's calibrated static scale (``NONE``: none);
``multiplier_format``
    the second tensor operand of an activation x activation op;
``residual_format``
    the second operand of an addition;
``approximation_function``
    replaces the module's computation (softmax, GELU, layer norm);
``accum_format``
    the product / convolution before the bias is added;
``bias_format``
    the bias, before it is added;
``output_format``
    the result, last.

Every module and functional op has a framework-neutral *kind*; ``KIND_SLOTS``
says which slots each kind has. ``INSTANCE_NAMES`` maps PyTorch and Flax
class names to one canonical instance name, so that ``instance: Linear``
accepts a ``torch.nn.Linear`` as well as a ``flax.linen.Dense``.
"""

from __future__ import annotations

#: Every slot name, in the order the slots are applied.
SLOTS: tuple[str, ...] = (
    "instance",
    "weight_sparseness",
    "weight_format",
    "weight_scale",
    "input_format",
    "input_scale",
    "multiplier_format",
    "residual_format",
    "approximation_function",
    "accum_format",
    "bias_format",
    "output_format",
)

#: Slots whose value is a number format (parsed with ``dmxnum.parse``).
FORMAT_SLOTS: frozenset[str] = frozenset(
    {
        "weight_format",
        "input_format",
        "multiplier_format",
        "residual_format",
        "accum_format",
        "bias_format",
        "output_format",
    }
)

#: Slots whose value is a static scale (``dmxnum.ptq.parse_scale_spec``),
#: each with the format slot it scales.
SCALE_SLOTS: dict[str, str] = {"weight_scale": "weight_format", "input_scale": "input_format"}

_WEIGHTED = frozenset(
    {
        "instance",
        "weight_sparseness",
        "weight_format",
        "weight_scale",
        "input_format",
        "input_scale",
        "accum_format",
        "bias_format",
        "output_format",
    }
)
_NORM = frozenset({"instance", "weight_format", "bias_format", "input_format", "output_format"})
_ELEMENTWISE = frozenset({"instance", "input_format", "output_format"})
_APPROX = _ELEMENTWISE | {"approximation_function"}

#: kind -> the slots a module or functional op of that kind has.
KIND_SLOTS: dict[str, frozenset[str]] = {
    # weighted products: y = x . W (+ b)
    "linear": _WEIGHTED,
    "conv": _WEIGHTED,
    "conv_transpose": _WEIGHTED,
    # table look-up: the input is integer indices, so it has no input format
    "embedding": frozenset({"instance", "weight_sparseness", "weight_format", "output_format"}),
    # normalizations (layer norm and RMS norm have approximation logics)
    "layer_norm": _NORM | {"approximation_function"},
    "rms_norm": _NORM | {"approximation_function"},
    "group_norm": _NORM,
    "batch_norm": _NORM,
    # element-wise functions
    "softmax": _APPROX,
    "gelu": _APPROX,
    "silu": _APPROX,
    "relu": _ELEMENTWISE,
    "tanh": _ELEMENTWISE,
    "activation": _ELEMENTWISE,
    "pool": _ELEMENTWISE,
    "dropout": _ELEMENTWISE,
    # activation x activation
    "matmul": frozenset({"instance", "input_format", "multiplier_format", "output_format"}),
    "attention": frozenset(
        {
            "instance",
            "input_format",
            "multiplier_format",
            "approximation_function",
            "accum_format",
            "output_format",
        }
    ),
    "add": frozenset({"instance", "input_format", "residual_format", "output_format"}),
    # element-wise product of two activations (the gated MLP's act(gate) * up)
    "mul": frozenset({"instance", "input_format", "multiplier_format", "output_format"}),
    # multi-head attention as a whole (query in, attention output out); its
    # packed projection and attention are sites of their own
    "mha": _ELEMENTWISE,
    # any other module: its first tensor input and its output
    "module": _ELEMENTWISE,
}

#: kind -> the logic family its ``approximation_function`` must belong to.
APPROXIMATION_FAMILY: dict[str, str] = {
    "softmax": "SOFTMAX",
    "attention": "SOFTMAX",
    "gelu": "GELU",
    "layer_norm": "LAYERNORM",
    "rms_norm": "RMSNORM",
    "silu": "SILU",
}

#: PyTorch / Flax class name (or functional op name) -> canonical instance name.
INSTANCE_NAMES: dict[str, str] = {
    # products
    "Linear": "Linear",
    "Dense": "Linear",
    "DenseGeneral": "Linear",
    "LinearGeneral": "Linear",  # Flax NNX
    "Conv1d": "Conv1d",
    "Conv2d": "Conv2d",
    "Conv3d": "Conv3d",
    "Conv": "Conv2d",  # Flax Conv with two spatial dimensions
    "ConvTranspose1d": "ConvTranspose1d",
    "ConvTranspose2d": "ConvTranspose2d",
    "ConvTranspose": "ConvTranspose2d",  # Flax, two spatial dimensions
    "Conv1D": "Conv1D",  # Hugging Face transformers' GPT-2 style linear
    "Embedding": "Embedding",
    "Embed": "Embedding",
    # normalizations
    "LayerNorm": "LayerNorm",
    "RMSNorm": "RMSNorm",
    "GroupNorm": "GroupNorm",
    "BatchNorm2d": "BatchNorm2d",
    "BatchNorm": "BatchNorm2d",
    # element-wise modules
    "Softmax": "Softmax",
    "GELU": "GELU",
    "SiLU": "SiLU",
    "ReLU": "ReLU",
    "Tanh": "Tanh",
    "MaxPool2d": "MaxPool2d",
    "AvgPool2d": "AvgPool2d",
    "AdaptiveAvgPool2d": "AdaptiveAvgPool2d",
    "Dropout": "Dropout",
    "MultiheadAttention": "MultiheadAttention",
    "MultiHeadDotProductAttention": "MultiheadAttention",  # Flax
    # functional ops (instance name = op name)
    "softmax": "softmax",
    "gelu": "gelu",
    "silu": "silu",
    "layer_norm": "layer_norm",
    "matmul": "matmul",
    "bmm": "bmm",
    "scaled_dot_product_attention": "scaled_dot_product_attention",
    "dot_product_attention": "scaled_dot_product_attention",  # Flax
    "add": "add",
    "mul": "mul",
}


def canonical_instance(name: str) -> str:
    """The canonical instance name of a class or op name (itself when unknown)."""
    return INSTANCE_NAMES.get(name, name)
