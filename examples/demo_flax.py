"""Flax demo: a LeNet-5 style CNN on scikit-learn's 8x8 digits under dmxnum configurations.

Trains the Flax twin of ``examples/digits_cnn.py``'s PyTorch ``LeNet5`` (same
module names, so the seed-style ``configs/lenet5.yaml`` applies unchanged)
with optax for a few seconds, then evaluates the test accuracy in FP32 and
under every example configuration of ``configs/``, and prints a table.

Run: ``python examples/demo_flax.py``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

import dmxnum.flax

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
CONFIG_FILES = (
    "lenet5.yaml",
    "bfp16_transformer.yaml",
    "mxfp4_weights_mxfp8_act.yaml",
    "sparse_2of4.yaml",
    "approx_logics.yaml",
)


class ReLU(nn.Module):
    """``nn.relu`` as a module, named like PyTorch's ``nn.ReLU`` (configurable as ``relu``)."""

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        return nn.relu(x)


class MaxPool2d(nn.Module):
    """2-D max pooling over ``window x window`` (stride ``window``) on NHWC input."""

    window: int = 2

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        w = (self.window, self.window)
        return nn.max_pool(x, w, strides=w)


class LeNet5(nn.Module):
    """conv(1->6) relu pool, conv(6->16) relu pool, fc 64->120->84->10 on (N, 8, 8, 1) images.

    The flatten goes through PyTorch's (C, H, W) order, so ``fc1``'s kernel is
    the transpose of the PyTorch ``fc1`` weight.
    """

    def setup(self) -> None:
        self.conv1 = nn.Conv(6, (3, 3), padding=((1, 1), (1, 1)))
        self.relu1 = ReLU()
        self.mp1 = MaxPool2d()
        self.conv2 = nn.Conv(16, (3, 3), padding=((1, 1), (1, 1)))
        self.relu2 = ReLU()
        self.mp2 = MaxPool2d()
        self.fc1 = nn.Dense(120)
        self.relu3 = ReLU()
        self.fc2 = nn.Dense(84)
        self.relu4 = ReLU()
        self.fc3 = nn.Dense(10)

    def __call__(self, x: jax.Array) -> jax.Array:
        return lenet5_forward(self, x)


def lenet5_forward(net: Any, x: jax.Array) -> jax.Array:
    """The LeNet-5 forward on NHWC ``x`` through ``net``'s submodules (``conv1`` ...
    ``fc3``), shared by this Linen module and its NNX twin (``examples/nnx_digits.py``)."""
    x = net.mp1(net.relu1(net.conv1(x)))
    x = net.mp2(net.relu2(net.conv2(x)))
    x = jnp.transpose(x, (0, 3, 1, 2)).reshape(x.shape[0], -1)
    x = net.relu3(net.fc1(x))
    x = net.relu4(net.fc2(x))
    return net.fc3(x)


def digits_data(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(x_train, y_train, x_test, y_test)``: digits in [0, 1], shape ``(N, 8, 8, 1)``.

    The same 75/25 split (1347 / 450 images) as ``examples/digits_cnn.py``.
    """
    from sklearn.datasets import load_digits

    data = load_digits()
    x = (data.images / 16.0).astype(np.float32)[..., None]
    y = data.target.astype(np.int32)
    perm = np.random.default_rng(seed).permutation(len(y))
    x, y = x[perm], y[perm]
    n = (len(y) * 3) // 4
    return x[:n], y[:n], x[n:], y[n:]


def train(x: np.ndarray, y: np.ndarray, epochs: int = 30, seed: int = 0) -> Any:
    """Train :class:`LeNet5` (Adam, lr 3e-3, minibatches of 64); return its variables."""
    net = LeNet5()
    variables = net.init(jax.random.key(seed), jnp.zeros((1, 8, 8, 1), jnp.float32))
    opt = optax.adam(3e-3)
    state = opt.init(variables)

    def step(carry, batch):
        variables, state = carry
        xb, yb = batch

        def loss(v):
            logits = net.apply(v, xb)
            return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()

        grads = jax.grad(loss)(variables)
        updates, state = opt.update(grads, state, variables)
        return (optax.apply_updates(variables, updates), state), None

    @jax.jit
    def epoch(variables, state, xs, ys):  # one pass: a scan over minibatches
        (variables, state), _ = jax.lax.scan(step, (variables, state), (xs, ys))
        return variables, state

    rng = np.random.default_rng(seed)
    nb = len(y) // 64  # whole batches only: one compiled shape
    for _ in range(epochs):
        idx = rng.permutation(len(y))[: nb * 64].reshape(nb, 64)
        variables, state = epoch(variables, state, x[idx], y[idx])
    return variables


def accuracy(apply: Any, variables: Any, x: np.ndarray, y: np.ndarray) -> float:
    """Test accuracy in percent of ``apply(variables, x)`` (jitted)."""
    logits = jax.jit(apply)(variables, jnp.asarray(x))
    return 100.0 * float(np.mean(np.asarray(jnp.argmax(logits, -1)) == y))


def configured(config: Any) -> dmxnum.flax.Model:
    """A wrapped :class:`LeNet5` under ``config`` (pending until its first apply records the names)."""
    return dmxnum.flax.Model(LeNet5()).transform(config)


def run(epochs: int = 30, seed: int = 0, configs: tuple[str, ...] = CONFIG_FILES) -> dict[str, float]:
    """Train, evaluate in FP32 and under each config; print and return ``{name: accuracy}``."""
    t0 = time.perf_counter()
    xtr, ytr, xte, yte = digits_data(seed)
    variables = train(xtr, ytr, epochs=epochs, seed=seed)
    t_train = time.perf_counter() - t0
    results = {"FP32": accuracy(LeNet5().apply, variables, xte, yte)}
    for name in configs:
        model = configured(CONFIGS / name)
        results[name] = accuracy(model.apply, variables, xte, yte)
        if name == "lenet5.yaml":
            report = model.dmx_report(variables, jnp.asarray(xte[:64]), reference=True)
    print(f"Flax LeNet-5 on 8x8 digits ({len(ytr)} train / {len(yte)} test, trained in {t_train:.1f} s)")
    print(f"{'configuration':<32} {'test accuracy':>14}")
    for name, acc in results.items():
        print(f"{name:<32} {acc:>13.2f}%")
    if "lenet5.yaml" in configs:
        print(f"\nlenet5.yaml, per module (SQNR of each output against FP32, 64 test images):\n{report}")
    return results


if __name__ == "__main__":
    run()
