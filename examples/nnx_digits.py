"""Flax NNX: LeNet-5 on scikit-learn's 8x8 digits, quantization-aware training under dmxnum.

The NNX twin of ``examples/demo_flax.py``'s Linen ``LeNet5`` (same module
names, so ``configs/lenet5.yaml`` and the other example configurations apply
unchanged). ``main()`` trains it in FP32 with ``nnx.Optimizer`` for a few
epochs, wraps it with ``dmxnum.flax.Model``, fine-tunes it under MXFP4
weights / MXFP8 activations (QAT: straight-through gradients reach the float
parameters), and prints the test accuracy before and after.

Run: ``python examples/nnx_digits.py``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: the package and examples importable
    sys.path.insert(0, str(ROOT))

import dmxnum.flax  # noqa: E402
from examples.demo_flax import digits_data, lenet5_forward  # noqa: E402

CONFIGS = ROOT / "configs"


class ReLU(nnx.Module):
    """``nnx.relu`` as a module, named like PyTorch's ``nn.ReLU`` (configurable as ``relu``)."""

    def __call__(self, x: jax.Array) -> jax.Array:
        return nnx.relu(x)


class MaxPool2d(nnx.Module):
    """2x2 max pooling (stride 2) on NHWC input."""

    def __call__(self, x: jax.Array) -> jax.Array:
        return nnx.max_pool(x, (2, 2), strides=(2, 2))


class LeNet5(nnx.Module):
    """conv(1->6) relu pool, conv(6->16) relu pool, fc 64->120->84->10 on (N, 8, 8, 1) images.

    Module names and the flatten order ((C, H, W), as PyTorch) are those of
    the Linen ``examples/demo_flax.LeNet5`` and the PyTorch
    ``examples/digits_cnn.LeNet5``.
    """

    def __init__(self, rngs: nnx.Rngs) -> None:
        pad = ((1, 1), (1, 1))
        self.conv1 = nnx.Conv(1, 6, (3, 3), padding=pad, rngs=rngs)
        self.relu1 = ReLU()
        self.mp1 = MaxPool2d()
        self.conv2 = nnx.Conv(6, 16, (3, 3), padding=pad, rngs=rngs)
        self.relu2 = ReLU()
        self.mp2 = MaxPool2d()
        self.fc1 = nnx.Linear(64, 120, rngs=rngs)
        self.relu3 = ReLU()
        self.fc2 = nnx.Linear(120, 84, rngs=rngs)
        self.relu4 = ReLU()
        self.fc3 = nnx.Linear(84, 10, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return lenet5_forward(self, x)


def load_linen_params(module: nnx.Module, params: Any) -> nnx.Module:
    """Set ``module``'s parameters from Linen ``params`` of the same names and
    layouts (``variables["params"]`` of the Linen twin); returns ``module``."""
    state = nnx.state(module, nnx.Param)
    nnx.replace_by_pure_dict(state, jax.tree_util.tree_map(jnp.asarray, params))
    nnx.update(module, state)
    return module


def train(model: Any, x: np.ndarray, y: np.ndarray, epochs: int, lr: float = 3e-3, seed: int = 0) -> None:
    """Adam on the cross-entropy of ``model`` (an ``nnx.Module``, wrapped or not),
    minibatches of 64, in place; one ``nnx.jit`` step per minibatch."""
    optimizer = nnx.Optimizer(model, optax.adam(lr), wrt=nnx.Param)

    @nnx.jit
    def step(model: Any, optimizer: nnx.Optimizer, xb: jax.Array, yb: jax.Array) -> jax.Array:
        def loss(model: Any) -> jax.Array:
            return optax.softmax_cross_entropy_with_integer_labels(model(xb), yb).mean()

        value, grads = nnx.value_and_grad(loss)(model)
        optimizer.update(model, grads)
        return value

    rng = np.random.default_rng(seed)
    for _ in range(epochs):
        order = rng.permutation(len(y))
        for i in range(0, len(y) - 63, 64):
            idx = order[i:i + 64]
            step(model, optimizer, jnp.asarray(x[idx]), jnp.asarray(y[idx]))


def accuracy(model: Any, x: np.ndarray, y: np.ndarray) -> float:
    """Top-1 accuracy of ``model`` on ``(x, y)`` (one ``nnx.jit`` forward)."""
    logits = nnx.jit(lambda m, x: m(x))(model, jnp.asarray(x))
    return float(np.mean(np.asarray(jnp.argmax(logits, -1)) == y))


def main(epochs: int = 20, qat_epochs: int = 3) -> dict[str, float]:
    """Train in FP32, evaluate under MXFP4/MXFP8 before and after QAT; print and return the accuracies."""
    x_tr, y_tr, x_te, y_te = digits_data()
    t0 = time.perf_counter()
    net = LeNet5(nnx.Rngs(0))
    train(net, x_tr, y_tr, epochs)
    results = {"fp32": accuracy(net, x_te, y_te)}
    model = dmxnum.flax.Model(net)
    model.trace(jnp.asarray(x_te[:1]))
    model.transform(CONFIGS / "mxfp4_weights_mxfp8_act.yaml")
    results["mxfp4_ptq"] = accuracy(model, x_te, y_te)
    train(model, x_tr, y_tr, qat_epochs, lr=1e-3, seed=1)
    results["mxfp4_qat"] = accuracy(model, x_te, y_te)
    print(f"NNX LeNet-5 on digits ({len(y_te)} test images), {time.perf_counter() - t0:.0f} s")
    print(f"FP32 {results['fp32']:.3f} | MXFP4 weights + MXFP8 activations: "
          f"cast only {results['mxfp4_ptq']:.3f}, after {qat_epochs} QAT epochs {results['mxfp4_qat']:.3f}")
    return results


if __name__ == "__main__":
    main()
