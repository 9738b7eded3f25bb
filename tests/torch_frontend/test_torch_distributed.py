"""``dmx.Model`` under FSDP2 (``fully_shard``) and DDP: two ``gloo`` processes
on CPU, started by the test (this file, run as a script, is one rank).

One job checks, on each rank:

* FSDP2 (``fully_shard`` on every block and on the root, then
  ``dmx.Model``): the forward on the rank's local batch equals, bit for bit,
  the unsharded wrapped network's (blocked weight, bias, input and output
  formats, a weight block axis along the sharded dimension whose blocks
  straddle the two shards); after one SGD step on the global batch the
  gathered parameters equal the unsharded step's up to the gradient
  all-reduce's summation order; the next forward, an eval forward and a
  stochastic configuration (same key) are bitwise equal too.
* DDP (``DistributedDataParallel(dmx.Model(net))``): forward bitwise equal,
  gradients and the stepped parameters equal the single process's on the
  global batch up to the all-reduce's summation order.

Each rank writes what it measured to ``rank<r>.json``; the test asserts on it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

import torch_frontend as dmx

WORLD = 2
#: the tolerance asserted on the stepped parameters and gradients, relative to
#: the largest magnitude of the tensor compared (float32 sums in another order)
RTOL = 1e-6
ROOT = Path(__file__).resolve().parents[2]

#: blocked formats on every slot; ``blocks.0``'s weight (192 x 64, sharded
#: 96 + 96 along dim 0) has 64-row blocks along dim 0, so its second block
#: straddles the shards, and its bias (192) has 64-element blocks too: a cast
#: of the shards instead of the unsharded weight would differ
CONFIG = {
    "blocks.0": {"weight_format": "MXFP8[E4M3]{64,0}", "bias_format": "BFP16_64_LD", "input_format": "BFP16_64_LD"},
    "blocks.1": {"weight_format": "BFP16_64_LD", "input_format": "MXFP8_E4M3"},
    "blocks.2": {"weight_format": "MXFP8_E4M3", "input_format": "BFP16_64_LD", "output_format": "BFP16_64_LD"},
}
#: stochastic rounding on a weight (block axis along the sharded dimension) and an input
STOCHASTIC = {
    "blocks.0": {"weight_format": "BFP[8|8]{64,0}(SS)", "input_format": "BFP[8|8]{64,-1}(SS)"},
    "blocks.1": {"weight_format": "MXFP8_E4M3"},
}


class MLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.ModuleList([nn.Linear(64, 192), nn.Linear(192, 128), nn.Linear(128, 64)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i < len(self.blocks) - 1:
                x = torch.relu(x)
        return x


def _mlp() -> MLP:
    torch.manual_seed(0)
    return MLP()


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    """The global batch (every rank builds the same one)."""
    g = torch.Generator().manual_seed(1)
    return torch.randn(16, 64, generator=g), torch.randn(16, 64, generator=g)


def _relative(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> tuple[float, float]:
    """(max abs difference, the largest of max |diff| / max |b| over the tensors)."""
    absolute = max((a[n] - b[n]).abs().max().item() for n in b)
    relative = max(((a[n] - b[n]).abs().max() / b[n].abs().max()).item() for n in b)
    return absolute, relative


def _fsdp_checks(rank: int, mesh) -> dict:
    from torch.distributed.fsdp import fully_shard

    x, y = _batch()
    xl, yl = x.chunk(WORLD)[rank], y.chunk(WORLD)[rank]
    ref_net = _mlp()
    ref = dmx.Model(ref_net).transform(CONFIG)
    net = _mlp()
    for block in net.blocks:
        fully_shard(block, mesh=mesh)
    fully_shard(net, mesh=mesh)
    model = dmx.Model(net).transform(CONFIG)
    res = {"sharded": all(type(p).__name__ == "DTensor" for p in net.parameters())}

    expected = ref(xl)
    out = model(xl)
    res["forward_equal"] = torch.equal(out, expected)
    # the casts took effect: the plain network's output differs
    res["forward_differs_from_float"] = not torch.equal(out, ref_net(xl))

    before = {n: p.detach().clone() for n, p in ref_net.named_parameters()}
    F.mse_loss(out, yl).backward()
    torch.optim.SGD(model.parameters(), lr=0.5).step()
    F.mse_loss(ref(x), y).backward()
    torch.optim.SGD(ref.parameters(), lr=0.5).step()
    full = {n: p.full_tensor().detach() for n, p in net.named_parameters()}
    stepped = {n: p.detach() for n, p in ref_net.named_parameters()}
    res["step_max_abs"], res["step_max_rel"] = _relative(full, stepped)
    res["update_max_abs"] = max((stepped[n] - before[n]).abs().max().item() for n in before)

    # the next forward casts the updated shards: equal to the unsharded
    # network holding the same (gathered) parameters
    ref_net.load_state_dict(full)
    res["forward_after_step_equal"] = torch.equal(model(xl), ref(xl))
    model.eval(), ref.eval()
    with torch.no_grad():
        res["eval_equal"] = torch.equal(model(xl), ref(xl)) and torch.equal(model(xl), ref(xl))
    model.train(), ref.train()

    # stochastic formats: the same key draws the same words on every rank and
    # in the single process
    stochastic = dmx.Model(net, key=7).transform(STOCHASTIC)
    ref_stochastic = dmx.Model(ref_net, key=7).transform(STOCHASTIC)
    res["stochastic_equal"] = all(torch.equal(stochastic(xl), ref_stochastic(xl)) for _ in range(2))
    stochastic(xl).sum().backward()  # backward through the stochastic casts
    return res


def _ddp_checks(rank: int) -> dict:
    from torch.nn.parallel import DistributedDataParallel

    x, y = _batch()
    xl, yl = x.chunk(WORLD)[rank], y.chunk(WORLD)[rank]
    ref_net = _mlp()
    ref = dmx.Model(ref_net).transform(CONFIG)
    net = _mlp()
    model = dmx.Model(net).transform(CONFIG)
    ddp = DistributedDataParallel(model)
    opt = torch.optim.SGD(ddp.parameters(), lr=0.5)
    res = {}

    out = ddp(xl)
    res["forward_equal"] = torch.equal(out, ref(xl))
    F.mse_loss(out, yl).backward()
    F.mse_loss(ref(x), y).backward()
    grads = {n: p.grad for n, p in net.named_parameters()}
    ref_grads = {n: p.grad for n, p in ref_net.named_parameters()}
    res["grad_max_abs"], res["grad_max_rel"] = _relative(grads, ref_grads)

    opt.step()
    torch.optim.SGD(ref.parameters(), lr=0.5).step()
    params = {n: p.detach() for n, p in net.named_parameters()}
    res["step_max_abs"], res["step_max_rel"] = _relative(params, {n: p.detach() for n, p in ref_net.named_parameters()})
    # a second training step runs (DDP's buckets are rebuilt after the first)
    opt.zero_grad()
    F.mse_loss(ddp(xl), yl).backward()
    opt.step()
    res["second_step_finite"] = all(bool(torch.isfinite(p).all()) for p in net.parameters())
    return res


def _job(rank: int, folder: Path) -> None:
    import datetime

    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh

    torch.set_num_threads(1)  # two ranks on a small, shared machine
    dist.init_process_group(
        "gloo", store=dist.FileStore(str(folder / "store"), WORLD), rank=rank, world_size=WORLD,
        timeout=datetime.timedelta(seconds=120),
    )
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", dmx.SlotNotAppliedWarning)
            mesh = init_device_mesh("cpu", (WORLD,))
            res = {"fsdp": _fsdp_checks(rank, mesh), "ddp": _ddp_checks(rank)}
        res["slot_warnings"] = [str(w.message) for w in caught if issubclass(w.category, dmx.SlotNotAppliedWarning)]
        (folder / f"rank{rank}.json").write_text(json.dumps(res, indent=1))
    finally:
        dist.destroy_process_group()


def test_fsdp2_and_ddp(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    ranks = [
        subprocess.Popen(
            [sys.executable, __file__, str(rank), str(tmp_path)], cwd=ROOT, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        for rank in range(WORLD)
    ]
    logs = []
    for p in ranks:
        try:
            logs.append(p.communicate(timeout=240)[0])
        except subprocess.TimeoutExpired:
            for q in ranks:
                q.kill()
            raise
    for rank, (p, log) in enumerate(zip(ranks, logs)):
        assert p.returncode == 0, f"rank {rank} failed:\n{log[-4000:]}"
    for rank in range(WORLD):
        res = json.loads((tmp_path / f"rank{rank}.json").read_text())
        fsdp, ddp = res["fsdp"], res["ddp"]
        assert fsdp["sharded"], rank
        assert fsdp["forward_equal"] and fsdp["forward_differs_from_float"], (rank, fsdp)
        assert fsdp["step_max_rel"] <= RTOL, (rank, fsdp)
        assert fsdp["update_max_abs"] > 1e3 * fsdp["step_max_abs"], (rank, fsdp)  # the step did move
        assert fsdp["forward_after_step_equal"] and fsdp["eval_equal"], (rank, fsdp)
        assert fsdp["stochastic_equal"], (rank, fsdp)
        assert ddp["forward_equal"], (rank, ddp)
        assert ddp["grad_max_rel"] <= RTOL and ddp["step_max_rel"] <= RTOL, (rank, ddp)
        assert ddp["second_step_finite"], (rank, ddp)
        assert res["slot_warnings"] == [], (rank, res["slot_warnings"])


if __name__ == "__main__":
    _job(int(sys.argv[1]), Path(sys.argv[2]))


def test_fsdp_qat_example_trains_under_torchrun() -> None:
    """``examples/fsdp_qat.py`` (docs/distributed.md) under ``torchrun
    --standalone`` (a free rendezvous port): MXFP4/MXFP8 QAT of a residual
    MLP on the digits, two ranks, reaches over 90 % test accuracy."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "EPOCHS": "5"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(WORLD),
         str(ROOT / "examples" / "fsdp_qat.py")],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    line = next(s for s in proc.stdout.splitlines() if "test accuracy" in s)
    after = float(line.split("->")[1].split("%")[0])
    assert after > 90.0, line
