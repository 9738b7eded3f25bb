"""Quantization-aware training under FSDP2 (``docs/distributed.md``).

    torchrun --standalone --nproc-per-node 2 examples/fsdp_qat.py

A small residual MLP classifier on scikit-learn's digits: every block is
``fully_shard``-ed (then the root), the network is wrapped by ``dmx.Model``
with MXFP4 weights and MXFP8 inputs, and each rank trains on its half of
every batch (gloo on CPU; ``"cuda"`` and nccl on GPUs). Rank 0 prints the
test accuracy of the quantized model before and after training; every rank
holds the same parameters (FSDP reduce-scatters the gradients).
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import fully_shard

import torch_frontend as dmx

CONFIG = dmx.ConfigRule(module_types=["linear"], config={"weight_format": "MXFP4_E2M1", "input_format": "MXFP8_E4M3"})


class Block(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.fc = nn.Linear(width, width)

    def forward(self, x):
        return x + F.gelu(self.fc(x))


class Net(nn.Module):
    def __init__(self, width: int = 128, depth: int = 2):
        super().__init__()
        self.stem = nn.Linear(64, width)
        self.blocks = nn.ModuleList(Block(width) for _ in range(depth))
        self.head = nn.Linear(width, 10)

    def forward(self, x):
        x = self.stem(x)
        for block in self.blocks:
            x = block(x)
        return self.head(x)


def digits() -> tuple[torch.Tensor, ...]:
    """The digits images (flattened, scaled to [0, 1]) split 1347 / 450."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.data, dtype=torch.float32) / 16
    y = torch.tensor(d.target)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    x, y = x[perm], y[perm]
    return x[:1347], y[:1347], x[1347:], y[1347:]


def accuracy(model, x, y) -> float:
    with torch.no_grad():
        return float((model(x).argmax(-1) == y).float().mean() * 100)


def main(epochs: int = 5, batch: int = 64) -> float:
    """Train; return rank 0's final test accuracy (percent) of the quantized model."""
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.set_num_threads(1)
    torch.manual_seed(0)  # the same initial network on every rank
    net = Net()
    mesh = init_device_mesh("cpu", (world,))
    for block in net.blocks:
        fully_shard(block, mesh=mesh)
    fully_shard(net, mesh=mesh)
    model = dmx.Model(net).transform(CONFIG)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    xtr, ytr, xte, yte = digits()
    before = accuracy(model, xte, yte)
    for _ in range(epochs):
        for start in range(0, len(ytr) - batch + 1, batch):
            xb = xtr[start:start + batch].chunk(world)[rank]  # this rank's half of the batch
            yb = ytr[start:start + batch].chunk(world)[rank]
            opt.zero_grad()
            F.cross_entropy(model(xb), yb).backward()
            opt.step()
    after = accuracy(model, xte, yte)
    if rank == 0:
        print(f"MXFP4 weights, MXFP8 inputs, {world} ranks: test accuracy {before:.1f} % -> {after:.1f} %")
    dist.destroy_process_group()
    return after


if __name__ == "__main__":
    main(epochs=int(os.environ.get("EPOCHS", "5")))
