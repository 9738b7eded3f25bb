"""A small LeNet-5 style CNN on scikit-learn's 8x8 digits (trains in seconds on CPU).

Shared by ``examples/demo_torch.py`` and the PyTorch-frontend tests; the
module names (``conv1``, ``conv2``, ``fc1``, ``fc2``, ``fc3``, ...) are the
ones ``configs/lenet5.yaml`` configures.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class LeNet5(nn.Module):
    """conv(1->6) relu pool, conv(6->16) relu pool, fc 64->120->84->10 on 1x8x8 images."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 3, padding=1)
        self.relu1 = nn.ReLU()
        self.mp1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(6, 16, 3, padding=1)
        self.relu2 = nn.ReLU()
        self.mp2 = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(64, 120)
        self.relu3 = nn.ReLU()
        self.fc2 = nn.Linear(120, 84)
        self.relu4 = nn.ReLU()
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.mp1(self.relu1(self.conv1(x)))
        x = self.mp2(self.relu2(self.conv2(x)))
        x = torch.flatten(x, 1)
        x = self.relu3(self.fc1(x))
        x = self.relu4(self.fc2(x))
        return self.fc3(x)


def digits_data(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(x_train, y_train, x_test, y_test)``: digits scaled to [0, 1], shape
    ``(N, 1, 8, 8)``, a fixed 75/25 split (1347 / 450 images)."""
    from sklearn.datasets import load_digits

    data = load_digits()
    x = torch.tensor(data.images / 16.0, dtype=torch.float32).unsqueeze(1)
    y = torch.tensor(data.target, dtype=torch.int64)
    perm = torch.tensor(np.random.default_rng(seed).permutation(len(y)))
    x, y = x[perm], y[perm]
    n = (len(y) * 3) // 4
    return x[:n], y[:n], x[n:], y[n:]


def train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int = 30, seed: int = 0) -> nn.Module:
    """Adam (lr 3e-3), minibatches of 64, ``epochs`` passes; returns ``model`` in eval mode."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny convolutions: one thread is fastest, and safe on a busy machine
    try:
        _train(model, x, y, epochs, seed)
    finally:
        torch.set_num_threads(threads)
    return model.eval()


def _train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int, seed: int) -> None:
    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(y), generator=g)
        for i in range(0, len(y), 64):
            idx = perm[i:i + 64]
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
            loss.backward()
            opt.step()


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Test accuracy in percent."""
    with torch.no_grad():
        return 100.0 * (model(x).argmax(-1) == y).float().mean().item()


def trained_lenet(seed: int = 0, epochs: int = 30) -> tuple[LeNet5, tuple[torch.Tensor, ...]]:
    """A LeNet5 trained on the digits split, with the data ``(xtr, ytr, xte, yte)``."""
    data = digits_data(seed)
    torch.manual_seed(seed)
    net = train(LeNet5(), data[0], data[1], epochs=epochs, seed=seed)
    return net, data
