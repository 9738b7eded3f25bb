"""Twin models in PyTorch and Flax (same module names, same weights) for cross-framework tests.

Each model reads ``feed(name, x)`` before every configured layer: when a
test puts an array under ``name`` in the framework's feed dict, the layer
gets that array instead of its upstream input, so both frameworks feed the
same values to every layer. The Flax layers record what they see (their cast
input and effective weight) with ``sow`` in the ``intermediates``
collection (:func:`seen_flax`); the PyTorch side records through forward
hooks (:func:`record_torch`) in ``SEEN_T``.
"""

from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn as tnn

from examples.digits_cnn import LeNet5

FEEDS_T: dict[str, Any] = {}
FEEDS_F: dict[str, Any] = {}
SEEN_T: dict[str, tuple] = {}


def _feed_t(name: str, x: Any) -> Any:
    return FEEDS_T.get(name, x)


def _feed_f(name: str, x: Any) -> Any:
    return FEEDS_F.get(name, x)


# ----------------------------------------------------------------------------- Flax recording layers
def _record_f(module: nn.Module, x: Any, weight: str) -> None:
    p = module.variables.get("params", {})
    module.sow("intermediates", "input", x)
    module.sow("intermediates", "weight", p.get(weight))


class RecConv(nn.Conv):
    def __call__(self, x):
        y = super().__call__(x)
        _record_f(self, x, "kernel")
        return y


class RecDense(nn.Dense):
    def __call__(self, x):
        y = super().__call__(x)
        _record_f(self, x, "kernel")
        return y


class RecLayerNorm(nn.LayerNorm):
    def __call__(self, x, *args, **kwargs):
        y = super().__call__(x, *args, **kwargs)
        _record_f(self, x, "scale")
        return y


class ReLU(nn.Module):
    @nn.compact
    def __call__(self, x):
        return nn.relu(x)


class MaxPool2d(nn.Module):
    @nn.compact
    def __call__(self, x):
        return nn.max_pool(x, (2, 2), strides=(2, 2))


# ----------------------------------------------------------------------------- LeNet-5 (8x8 digits)
class TorchLeNet(LeNet5):
    """``examples/digits_cnn.py``'s LeNet5 (same modules and names), with feed points."""

    def forward(self, x):
        x = self.mp1(self.relu1(self.conv1(_feed_t("conv1", x))))
        x = self.mp2(self.relu2(self.conv2(_feed_t("conv2", x))))
        x = torch.flatten(x, 1)
        x = self.relu3(self.fc1(_feed_t("fc1", x)))
        x = self.relu4(self.fc2(_feed_t("fc2", x)))
        return self.fc3(_feed_t("fc3", x))


class FlaxLeNet(nn.Module):
    """Flax twin of :class:`TorchLeNet` on NHWC input (flatten in PyTorch's C, H, W order)."""

    def setup(self):
        pad = ((1, 1), (1, 1))
        self.conv1 = RecConv(6, (3, 3), padding=pad)
        self.relu1 = ReLU()
        self.mp1 = MaxPool2d()
        self.conv2 = RecConv(16, (3, 3), padding=pad)
        self.relu2 = ReLU()
        self.mp2 = MaxPool2d()
        self.fc1 = RecDense(120)
        self.relu3 = ReLU()
        self.fc2 = RecDense(84)
        self.relu4 = ReLU()
        self.fc3 = RecDense(10)

    def __call__(self, x):
        x = self.mp1(self.relu1(self.conv1(_feed_f("conv1", x))))
        x = self.mp2(self.relu2(self.conv2(_feed_f("conv2", x))))
        x = jnp.transpose(x, (0, 3, 1, 2)).reshape(x.shape[0], -1)
        x = self.relu3(self.fc1(_feed_f("fc1", x)))
        x = self.relu4(self.fc2(_feed_f("fc2", x)))
        return self.fc3(_feed_f("fc3", x))


LENET_CONVS = ("conv1", "conv2")
LENET_DENSES = ("fc1", "fc2", "fc3")


def lenet_flax_params(net: TorchLeNet) -> dict:
    """Flax variables holding ``net``'s weights (OIHW -> HWIO, (out, in) -> (in, out))."""
    params = {}
    for n in LENET_CONVS:
        m = getattr(net, n)
        params[n] = {"kernel": _np(m.weight).transpose(2, 3, 1, 0), "bias": _np(m.bias)}
    for n in LENET_DENSES:
        m = getattr(net, n)
        params[n] = {"kernel": _np(m.weight).T, "bias": _np(m.bias)}
    return {"params": jax.tree_util.tree_map(jnp.asarray, params)}


# ----------------------------------------------------------------------------- transformer block
D_MODEL, HEADS, FF = 32, 4, 64
BLOCK_LINEARS = ("q", "k", "v", "o", "fc1", "fc2")
BLOCK_NORMS = ("ln1", "ln2")


class TorchBlock(tnn.Module):
    """Pre-norm transformer block: attention (fused SDPA, or explicit matmul/softmax/matmul) and a GELU MLP."""

    def __init__(self, explicit: bool = False) -> None:
        super().__init__()
        self.explicit = explicit
        self.ln1 = tnn.LayerNorm(D_MODEL)
        self.q = tnn.Linear(D_MODEL, D_MODEL)
        self.k = tnn.Linear(D_MODEL, D_MODEL)
        self.v = tnn.Linear(D_MODEL, D_MODEL)
        self.o = tnn.Linear(D_MODEL, D_MODEL)
        self.ln2 = tnn.LayerNorm(D_MODEL)
        self.fc1 = tnn.Linear(D_MODEL, FF)
        self.fc2 = tnn.Linear(FF, D_MODEL)

    def forward(self, x):
        b, t, _ = x.shape
        h = self.ln1(_feed_t("ln1", x))

        def heads(name):
            return getattr(self, name)(_feed_t(name, h)).view(b, t, HEADS, -1).transpose(1, 2)

        q, k, v = heads("q"), heads("k"), heads("v")  # (B, H, T, D)
        if self.explicit:
            s = torch.matmul(q, k.transpose(-2, -1)) * (1.0 / math.sqrt(q.shape[-1]))
            a = torch.matmul(F.softmax(s, dim=-1), v)
        else:
            a = F.scaled_dot_product_attention(q, k, v)
        a = a.transpose(1, 2).reshape(b, t, D_MODEL)
        x = x + self.o(_feed_t("o", a))
        h = self.ln2(_feed_t("ln2", x))
        h = self.fc2(_feed_t("fc2", F.gelu(self.fc1(_feed_t("fc1", h)))))
        return x + h


class FlaxBlock(nn.Module):
    """Flax twin of :class:`TorchBlock`; attention tensors are (B, T, H, D)."""

    explicit: bool = False

    def setup(self):
        norm = dict(epsilon=1e-5, use_fast_variance=False)
        self.ln1 = RecLayerNorm(**norm)
        self.q = RecDense(D_MODEL)
        self.k = RecDense(D_MODEL)
        self.v = RecDense(D_MODEL)
        self.o = RecDense(D_MODEL)
        self.ln2 = RecLayerNorm(**norm)
        self.fc1 = RecDense(FF)
        self.fc2 = RecDense(D_MODEL)

    def __call__(self, x):
        b, t, _ = x.shape
        h = self.ln1(_feed_f("ln1", x))

        def heads(name):
            return getattr(self, name)(_feed_f(name, h)).reshape(b, t, HEADS, -1)

        q, k, v = heads("q"), heads("k"), heads("v")  # (B, T, H, D)
        if self.explicit:
            qt, kt, vt = (jnp.swapaxes(a, 1, 2) for a in (q, k, v))  # (B, H, T, D)
            s = jnp.matmul(qt, jnp.swapaxes(kt, -2, -1)) * jnp.float32(1.0 / math.sqrt(q.shape[-1]))
            a = jnp.swapaxes(jnp.matmul(nn.softmax(s, axis=-1), vt), 1, 2)
        else:
            a = nn.dot_product_attention(q, k, v)
        a = a.reshape(b, t, D_MODEL)
        x = x + self.o(_feed_f("o", a))
        h = self.ln2(_feed_f("ln2", x))
        h = self.fc2(_feed_f("fc2", nn.gelu(self.fc1(_feed_f("fc1", h)), approximate=False)))
        return x + h


def block_flax_params(net: TorchBlock) -> dict:
    """Flax variables holding ``net``'s weights."""
    params = {}
    for n in BLOCK_LINEARS:
        m = getattr(net, n)
        params[n] = {"kernel": _np(m.weight).T, "bias": _np(m.bias)}
    for n in BLOCK_NORMS:
        m = getattr(net, n)
        params[n] = {"scale": _np(m.weight), "bias": _np(m.bias)}
    return {"params": jax.tree_util.tree_map(jnp.asarray, params)}


# ----------------------------------------------------------------------------- helpers
def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy().copy()


def record_torch(net: tnn.Module, names: tuple[str, ...]) -> list:
    """Forward hooks recording ``(cast input, effective weight)`` of ``names`` into ``SEEN_T``."""
    handles = []
    for n in names:
        def hook(mod, args, out, n=n):
            SEEN_T[n] = (args[0].detach().clone(), mod.weight.detach().clone())

        handles.append(getattr(net, n).register_forward_hook(hook))
    return handles


def seen_flax(state: Any, name: str) -> tuple[Any, Any]:
    """``(cast input, effective weight)`` sown by layer ``name`` in an apply's mutable state."""
    node = state["intermediates"][name]
    return node["input"][0], node["weight"][0]


def to_torch_layout(name: str, what: str, a: Any, kind: str) -> np.ndarray:
    """A Flax-layout array of layer ``name`` in PyTorch layout (``what``: input/weight)."""
    a = np.asarray(a)
    if kind == "conv":
        return a.transpose(0, 3, 1, 2) if what == "input" else a.transpose(3, 2, 0, 1)
    if kind == "linear" and what == "weight":
        return a.T
    return a
