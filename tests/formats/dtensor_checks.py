"""One rank of the DTensor checks (run by ``test_dtensor.py`` as two processes).

``python dtensor_checks.py RANK WORLD STORE_FILE OUT_DIR``: joins a ``gloo``
group through a ``FileStore``, runs every check on a 1-D CPU mesh and writes
``OUT_DIR/rank{RANK}.json``: ``{"passed": [...], "failed": {name: error}}``.
Each check compares a DTensor operation with the same operation on the full
tensor, bit for bit, and the result's placements with the input's.
"""

from __future__ import annotations

import json
import sys
import traceback
import warnings

import numpy as np
import torch
import torch.distributed as dist
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.tensor import DTensor, Partial, Replicate, Shard, distribute_tensor

import dmxnum
from dmxnum.errors import DistributedError, DistributedWarning, MissingRandomnessError

CHECKS = []


def check(fn):
    CHECKS.append(fn)
    return fn


def data(shape, seed=0, dtype=torch.float32):
    """Wide-range values with NaN, Inf, zeros and subnormals (same on every rank)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g) * 2.0 ** torch.randint(-20, 20, shape[:-1] + (1,), generator=g)
    flat = x.view(-1)
    n = flat.numel()
    flat[n // 7] = float("nan")
    flat[n // 5] = float("inf")
    flat[n // 3] = -0.0
    flat[n // 2] = 1e-42
    return x.to(dtype)


def bits(t):
    t = t.detach()
    return t.view(torch.int16) if t.element_size() == 2 else t.view(torch.int32)


def assert_same(got, ref, what):
    """``got`` (a DTensor) equals ``ref`` (a full tensor) bit for bit, NaNs as equal."""
    full = got.full_tensor()
    assert full.dtype == ref.dtype, (what, full.dtype, ref.dtype)
    nan = torch.isnan(full) & torch.isnan(ref)
    same = (bits(full) == bits(ref)) | nan
    assert bool(same.all()), f"{what}: {int((~same).sum())} of {same.numel()} elements differ"


def assert_placed(got, x, what):
    want = tuple(Replicate() if p.is_partial() else p for p in x.placements)
    assert isinstance(got, DTensor), (what, type(got))
    assert tuple(got.placements) == want, (what, got.placements, want)
    assert got.device_mesh == x.device_mesh, what
    assert tuple(got.shape) == tuple(x.shape), (what, got.shape, x.shape)


def gathered(fn):
    """Run ``fn()``; return its result and the DistributedWarnings it emitted."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = fn()
    return out, [w for w in caught if issubclass(w.category, DistributedWarning)]


def cast_case(mesh, x, fmt, placement, expect_warning, **kw):
    d = distribute_tensor(x, mesh, [placement])
    y, warned = gathered(lambda: dmxnum.cast(d, fmt, **kw))
    what = f"cast {fmt} {placement} {tuple(x.shape)}"
    assert_placed(y, d, what)
    assert_same(y, dmxnum.cast(x, fmt, **kw), what)
    assert bool(warned) == expect_warning, (what, [str(w.message) for w in warned])
    if expect_warning:  # once per operation, shape and placements
        _, again = gathered(lambda: dmxnum.cast(d, fmt, **kw))
        assert not again, (what, "warned twice")
        assert "block" in str(warned[0].message) or "whole" in str(warned[0].message), str(warned[0].message)


# ----------------------------------------------------------------------------- casts
@check
def elementwise(mesh):
    for shape in [(6, 10), (7, 5)]:  # even and uneven shards
        for p in (Shard(0), Shard(1), Replicate()):
            cast_case(mesh, data(shape), "FP8_E4M3FN", p, False)
    cast_case(mesh, data((5, 4), dtype=torch.bfloat16), "FP8_E5M2", Shard(0), False)


@check
def mx_aligned(mesh):
    cast_case(mesh, data((8, 96)), "MXFP8_E4M3", Shard(0), False)  # block axis not sharded
    cast_case(mesh, data((4, 128)), "MXFP8_E4M3", Shard(1), False)  # 64 per shard: whole blocks
    cast_case(mesh, data((64, 3)), "MXFP8[E4M3]{32,0}", Shard(0), False)
    cast_case(mesh, data((4, 127)), "MXFP8_E4M3", Shard(1), False)  # shards 64 + 63: partial last block
    cast_case(mesh, data((1, 64)), "MXFP8_E4M3", Shard(0), False)  # an empty shard


@check
def mx_straddling(mesh):
    cast_case(mesh, data((8, 96)), "MXFP8_E4M3", Shard(1), True)  # 48 per shard
    cast_case(mesh, data((40, 3)), "MXFP8[E4M3]{32,0}", Shard(0), True)
    cast_case(mesh, data((4, 100)), "MXFP8_E4M3", Shard(1), True)  # partial last block, straddling
    cast_case(mesh, data((2, 3)), "MXFP8_E4M3", Shard(1), True)  # uneven: 2 + 1 in one block


@check
def bfp(mesh):
    cast_case(mesh, data((4, 256)), "BFP16_64_LD", Shard(1), False)
    cast_case(mesh, data((4, 255)), "BFP16_64_LD", Shard(1), False)  # 128 + 127
    cast_case(mesh, data((4, 200)), "BFP16_64_LD", Shard(1), True)
    cast_case(mesh, data((6, 200)), "BFP16_64_LD", Shard(0), False)
    cast_case(mesh, data((8, 48)), "SBFP<XP[8,0](CSN)><FP[1|8|3,127](_N)>{16,-1}", Shard(1), True)


@check
def nvfp4(mesh):
    cast_case(mesh, data((4, 64)), "NVFP4", Shard(1), False)
    cast_case(mesh, data((4, 40)), "NVFP4", Shard(1), True)
    cast_case(mesh, data((6, 64)), "NVFP4(T)", Shard(0), True)  # tensor amax: whole tensor
    cast_case(mesh, data((6, 64)), "NVFP4(T)", Shard(1), True)
    cast_case(mesh, data((6, 64)), "NVFP4(T)", Replicate(), False)
    cast_case(mesh, data((6, 64)), "NVFP4(T)", Shard(1), False, scale=0.5)  # given g: blocks only


@check
def stochastic(mesh):
    for fmt, shape, p in [
        ("FP[1|5|2,15](_S)", (7, 33), Shard(0)),
        ("FP[1|5|2,15](_S)", (7, 33), Shard(1)),
        ("BFP[8|8]{16,-1}(SS)", (6, 64), Shard(1)),
        ("BFP[8|8]{16,-1}(SS)", (6, 40), Shard(1)),
    ]:
        x = data(shape)
        cast_case(mesh, x, fmt, p, fmt.startswith("BFP") and shape[1] == 40, key=1234)
        words = torch.randint(-(2**31), 2**31, shape, dtype=torch.int32, generator=torch.Generator().manual_seed(5))
        ref = dmxnum.cast(x, fmt, random_bits=words)
        d = distribute_tensor(x, mesh, [p])
        for given in (words, words.numpy().view(np.uint32), distribute_tensor(words, mesh, [Shard(1 - p.dim)])):
            y, _ = gathered(lambda: dmxnum.cast(d, fmt, random_bits=given))
            assert_placed(y, d, fmt)
            assert_same(y, ref, f"{fmt} {p} random_bits {type(given).__name__}")
    d = distribute_tensor(data((4, 6)), mesh, [Shard(0)])
    try:
        dmxnum.cast(d, "FP[1|5|2,15](_S)")
        raise AssertionError("no MissingRandomnessError")
    except MissingRandomnessError:
        pass
    try:
        dmxnum.cast(d, "FP[1|5|2,15](_S)", random_bits=torch.zeros((2, 6), dtype=torch.int32))
        raise AssertionError("no error for random_bits of the local shape")
    except ValueError as e:
        assert "(4, 6)" in str(e), str(e)


@check
def static_scale(mesh):
    x = data((8, 64))
    s = 2.0 ** torch.arange(-4, 4, dtype=torch.float32).reshape(8, 1)
    for p in (Shard(0), Shard(1)):
        cast_case(mesh, x, "MXFP8_E4M3", p, False, scale=s)
        d = distribute_tensor(x, mesh, [p])
        y = dmxnum.cast(d, "MXFP8_E4M3", scale=distribute_tensor(s, mesh, [Replicate()]))
        assert_same(y, dmxnum.cast(x, "MXFP8_E4M3", scale=s), f"scale DTensor {p}")


@check
def partial(mesh):
    x = data((4, 64))
    part = x / 2 if mesh.get_local_rank() == 0 else x - x / 2  # sums to x exactly except NaN/Inf
    d = DTensor.from_local(part, mesh, [Partial()], run_check=False)
    full = d.full_tensor()
    for fmt in ("MXFP8_E4M3", "FP8_E4M3FN"):
        y = dmxnum.cast(d, fmt)
        assert_placed(y, d, fmt)
        assert_same(y, dmxnum.cast(full, fmt), f"Partial {fmt}")


@check
def gradients(mesh):
    x = data((4, 96)).nan_to_num(0.0)
    g = data((4, 96), seed=3).nan_to_num(0.0, 0.0, 0.0)
    for p, fmt in [(Shard(0), "MXFP8_E4M3"), (Shard(1), "MXFP8_E4M3"), (Shard(1), "FP8_E4M3FN")]:
        d = distribute_tensor(x, mesh, [p]).requires_grad_()
        (dmxnum.cast(d, fmt) * distribute_tensor(g, mesh, [p])).sum().backward()
        assert d.grad is not None and tuple(d.grad.placements) == (p,), (fmt, p)
        assert torch.equal(d.grad.full_tensor(), g), f"STE gradient {fmt} {p}"
    d = distribute_tensor(x, mesh, [Shard(1)]).requires_grad_()
    dmxnum.cast(d, "FP8_E4M3FN", gradient="clip").sum().backward()
    ref = x.clone().requires_grad_()
    dmxnum.cast(ref, "FP8_E4M3FN", gradient="clip").sum().backward()
    assert torch.equal(d.grad.full_tensor(), ref.grad), "clip gradient"


# ----------------------------------------------------------------------------- sparsity, logics, ops
def sparsify_case(mesh, w, spec, p, expect_warning, **kw):
    d = distribute_tensor(w, mesh, [p])
    full_kw = {k: (v.full_tensor() if isinstance(v, DTensor) else v) for k, v in kw.items()}
    y, warned = gathered(lambda: dmxnum.sparsify(d, spec, **kw))
    what = f"sparsify {spec} {p} {tuple(w.shape)}"
    assert_placed(y, d, what)
    assert_same(y, dmxnum.sparsify(w, spec, **full_kw), what)
    assert bool(warned) == expect_warning, (what, [str(w.message) for w in warned])


@check
def sparsity(mesh):
    w = data((8, 64))
    sparsify_case(mesh, w, "BTOPK{2:4,-1}(U)", Shard(1), False)
    sparsify_case(mesh, w, "BTOPK{2:4,-1}(U)", Shard(0), False)
    sparsify_case(mesh, data((8, 36)), "BTOPK{2:4,-1}(M)", Shard(1), True)  # 18 per shard
    sparsify_case(mesh, data((6, 5)), "BTOPK{1:3,0}(M)", Shard(0), False)
    sparsify_case(mesh, w, "TOPK{0.3}(M)", Shard(0), True)
    sparsify_case(mesh, w, "TOPK{0.3}(M)", Replicate(), False)
    sparsify_case(mesh, w, "TOPK{0.5}(U)", Shard(1), True, scores=lambda v: v * v)
    p = torch.rand((8, 64), generator=torch.Generator().manual_seed(9))
    sparsify_case(mesh, w, "BERN", Shard(1), False, scores=p, key=77)
    sparsify_case(mesh, w, "BERN", Shard(0), False, scores=distribute_tensor(p, mesh, [Shard(1)]), key=77)
    for spec, pl in [("BTOPK{2:4,-1}(U)", Shard(1)), ("TOPK{0.3}(M)", Shard(0)), ("BERN", Shard(1))]:
        kw = {"key": 77} if spec == "BERN" else {}
        scores = p if spec == "BERN" else w
        m = gathered(lambda: dmxnum.mask(distribute_tensor(scores, mesh, [pl]), spec, **kw))[0]
        assert tuple(m.placements) == (pl,) and m.dtype == torch.bool, (spec, m.placements)
        assert torch.equal(m.full_tensor(), dmxnum.mask(scores, spec, **kw)), f"mask {spec} {pl}"
    d = distribute_tensor(w.nan_to_num(0.0, 0.0, 0.0), mesh, [Shard(1)]).requires_grad_()
    dmxnum.sparsify(d, "BTOPK{2:4,-1}(M)").sum().backward()
    ref = w.nan_to_num(0.0, 0.0, 0.0).requires_grad_()
    dmxnum.sparsify(ref, "BTOPK{2:4,-1}(M)").sum().backward()
    assert torch.equal(d.grad.full_tensor(), ref.grad), "N:M masked gradient"


@check
def logics(mesh):
    x = data((6, 40)).nan_to_num(0.0, 30.0, -30.0).clamp(-30, 30)
    for p, warn in [(Shard(1), True), (Shard(0), False)]:
        d = distribute_tensor(x, mesh, [p])
        for spec, kw in [("SOFTMAX(base2,float16)", {}), ("LAYERNORM(quake3,_,float16)", {})]:
            y, warned = gathered(lambda: dmxnum.approximate(d, spec, **kw))
            assert_placed(y, d, spec)
            assert_same(y, dmxnum.approximate(x, spec, **kw), f"{spec} {p}")
            assert bool(warned) == warn, (spec, p)
        y, warned = gathered(lambda: dmxnum.approximate(d, "SOFTMAX(poly2,float32)", axis=0))
        assert_same(y, dmxnum.approximate(x, "SOFTMAX(poly2,float32)", axis=0), f"softmax axis 0 {p}")
        assert bool(warned) == (p == Shard(0)), ("softmax axis 0", p)
        y, warned = gathered(lambda: dmxnum.approximate(d, "GELU(ibert)"))
        assert_same(y, dmxnum.approximate(x, "GELU(ibert)"), f"GELU {p}")
        assert not warned, "element-wise logic gathered"
    wgt = torch.linspace(0.5, 2.0, 40)
    d = distribute_tensor(x, mesh, [Shard(1)])
    y = dmxnum.approximate(d, "LAYERNORM(legacy,_,float32)", weight=distribute_tensor(wgt, mesh, [Shard(0)]))
    assert_same(y, dmxnum.approximate(x, "LAYERNORM(legacy,_,float32)", weight=wgt), "layernorm weight")


@check
def torch_ops(mesh):
    ops = torch.ops.dmxnum
    x = data((4, 96))
    d = distribute_tensor(x, mesh, [Shard(1)])
    assert_same(gathered(lambda: ops.cast(d, "MXFP8_E4M3"))[0], dmxnum.cast(x, "MXFP8_E4M3"), "op cast")
    y = ops.sparsify(d, "BTOPK{2:4,-1}(U)")
    assert_placed(y, d, "op sparsify")
    assert_same(y, dmxnum.sparsify(x, "BTOPK{2:4,-1}(U)"), "op sparsify")
    x = x.nan_to_num(0.0, 30.0, -30.0).clamp(-30, 30)
    d = distribute_tensor(x, mesh, [Shard(1)])
    y = gathered(lambda: ops.approximate(d, "SOFTMAX(base2,float16)"))[0]
    assert_same(y, dmxnum.approximate(x, "SOFTMAX(base2,float16)"), "op approximate")
    assert_same(ops.cast(d, "SAME"), x, "op SAME")


@check
def errors(mesh):
    w = data((4, 64))
    d = distribute_tensor(w, mesh, [Shard(0)])
    other = init_device_mesh("cpu", (2,), mesh_dim_names=("other",))
    cases = [
        (lambda: dmxnum.sparsify(d, "BERN", scores=distribute_tensor(w.abs(), other, [Shard(0)]), key=1),
         DistributedError, "same mesh"),
        (lambda: dmxnum.sparsify(d, "TOPK{0.5}(M)", scores=w[:2]), ValueError, "(4, 64)"),
        (lambda: dmxnum.cast(d, "MXFP8[E4M3]{32,2}"), ValueError, "valid axes"),
        (lambda: dmxnum.sparsify(d, "BTOPK{2:3,-1}(M)"), ValueError, "multiple of the group size"),
        (lambda: dmxnum.approximate(d, "SOFTMAX(base2,float16)", axis=5), ValueError, "out of range"),
    ]
    for fn, kind, text in cases:
        try:
            fn()
        except kind as e:
            assert text in str(e), (text, str(e))
        else:
            raise AssertionError(f"no {kind.__name__} ({text})")


@check
def example(mesh):
    from examples.dtensor_cast import show

    lines, warned = gathered(lambda: show(mesh))
    assert len(lines) == 3 and all(line.endswith("equals full cast: True") for line in lines), lines
    assert len(warned) <= 1, [str(w.message) for w in warned]  # MXFP8 on Shard(1), once per process


def main(rank: int, world: int, store: str, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", store=dist.FileStore(store, world), rank=rank, world_size=world)
    mesh = init_device_mesh("cpu", (world,))
    passed, failed = [], {}
    for fn in CHECKS:
        try:
            fn(mesh)
            passed.append(fn.__name__)
        except Exception:  # record and go on: the other rank runs the same collectives
            failed[fn.__name__] = traceback.format_exc(limit=6)
    with open(f"{out}/rank{rank}.json", "w") as f:
        json.dump({"passed": passed, "failed": failed}, f)
    dist.destroy_process_group()


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4])
