"""Cast a sharded weight with dmxnum on two CPU processes (``docs/distributed.md``).

    torchrun --standalone --nproc-per-node 2 examples/dtensor_cast.py

Each rank holds half of a 256 x 96 weight (a ``DTensor``); ``dmxnum.cast``
returns a ``DTensor`` with the same placements whose full tensor equals the
cast of the full weight bit for bit. ``MXFP8_E4M3`` has blocks of 32 along
the last dim: sharding dim 0 keeps whole blocks on every rank (shard-local);
sharding dim 1 gives 48 columns per rank, so blocks straddle the shards and
dmxnum gathers dim 1 first (a one-time ``DistributedWarning``).
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.tensor import Shard, distribute_tensor

import dmxnum


def show(mesh) -> list[str]:
    """Cast one weight with three (format, placement) pairs; a line per pair."""
    torch.manual_seed(0)  # the same full weight on every rank
    w = torch.randn(256, 96)
    lines = []
    for fmt, placement in [("FP8_E4M3FN", Shard(1)), ("MXFP8_E4M3", Shard(0)), ("MXFP8_E4M3", Shard(1))]:
        q = dmxnum.cast(distribute_tensor(w, mesh, [placement]), fmt)
        same = torch.equal(q.full_tensor(), dmxnum.cast(w, fmt))
        local = tuple(q.to_local().shape)
        lines.append(f"{fmt:<11} {placement}: placements {q.placements}, local {local}, equals full cast: {same}")
    return lines


def main() -> None:
    dist.init_process_group("gloo")  # torchrun sets RANK, WORLD_SIZE, MASTER_ADDR/PORT
    lines = show(init_device_mesh("cpu", (dist.get_world_size(),)))
    if dist.get_rank() == 0:
        print("\n".join(lines))
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
