"""Benchmark: every format family's cast on 2^22 standard-normal float32 values,
as a ratio to ``x * 2`` on the same array in the same run.

Backends: JAX (``jax.jit``, after warm-up), PyTorch eager and PyTorch
``torch.compile``. Stochastic casts are timed with ``random_bits`` given;
drawing the random words is reported apart. Targets (issue 3): jit <= 3x,
torch.compile <= 4x, eager <= 60x.

Run: ``.venv/bin/python benchmarks/bench_formats.py`` (``--quick`` for 2^18;
shorthands as arguments time only those formats).
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import interleaved_ratio, median_seconds, table  # noqa: E402

FORMATS = [
    "FP16", "BF16", "FP8_E4M3FN", "FP4_E2M1", "FP[1|5|2,15](_S)",
    "XP[8,3](CSN)", "XP[8,3](CSS)",
    "BFP[8|8]{64,-1}(SN)", "BFP[8|8]{64,0}(SN)", "BFP[8|8]{64,-1}(SS)",
    "MXINT8{32,-1}", "MXFP8[E4M3]{32,-1}", "MXFP4[E2M1]{32,-1}",
    "SBFP<XP[8,0](CSN)><FP[1|8|3,127](_N)>{16,-1}", "SBFP<XP[8,0](CSS)><FP[1|8|3,127](_N)>{16,-1}",
]


def _caster(dmxnum, fmt: str):
    def run(v, w):
        return dmxnum.cast(v, fmt, random_bits=w)

    return run


def main(argv: list[str] | None = None) -> list[list[str]]:
    argv = sys.argv[1:] if argv is None else argv
    warnings.filterwarnings("ignore")
    import jax
    import jax.numpy as jnp
    import torch

    import dmxnum

    n = 2**18 if "--quick" in argv else 2**22
    x_np = np.random.default_rng(0).standard_normal((n // 1024, 1024)).astype(np.float32)
    words_np = np.random.default_rng(1).integers(0, 2**32, x_np.shape, dtype=np.uint32)
    xj, wj = jnp.asarray(x_np), jnp.asarray(words_np)
    xt, wt = torch.from_numpy(x_np), torch.from_numpy(words_np.view(np.int32))
    ready = lambda r: r.block_until_ready()  # noqa: E731

    twice_jit = jax.jit(lambda v: v * 2)
    base_jit = median_seconds(lambda: twice_jit(xj), sync=ready)
    base_eager = median_seconds(lambda: xt * 2)
    twice = torch.compile(lambda v: v * 2)
    base_compile = median_seconds(lambda: twice(xt), repeats=31)
    key = jax.random.key(0)
    draw_jax = median_seconds(lambda: jax.random.bits(key, x_np.shape, jnp.uint32), sync=ready)
    gen = torch.Generator().manual_seed(0)
    draw_torch = median_seconds(lambda: torch.randint(-(2**31), 2**31, x_np.shape, dtype=torch.int32, generator=gen))

    chosen = [a for a in argv if not a.startswith("--")] or FORMATS
    rows = []
    for fmt in chosen:
        stochastic = dmxnum.parse(fmt).stochastic
        jit_fn = jax.jit(lambda v, w, f=fmt: dmxnum.cast(v, f, random_bits=w))
        wjj, wtt = (wj, wt) if stochastic else (None, None)
        r_jit = interleaved_ratio(lambda: jit_fn(xj, wjj), lambda: twice_jit(xj), sync=ready)
        r_eager = interleaved_ratio(lambda: dmxnum.cast(xt, fmt, random_bits=wtt), lambda: xt * 2, rounds=5)
        torch._dynamo.reset()
        comp = torch.compile(_caster(dmxnum, fmt), dynamic=False)
        r_comp = interleaved_ratio(lambda: comp(xt, wtt), lambda: twice(xt))
        rows.append([f"`{fmt}`".replace("|", "\\|"), f"{r_jit:.2f}", f"{r_comp:.2f}", f"{r_eager:.1f}"])
        print(rows[-1], flush=True)
    print(f"\n{n} float32 values; baselines: jit x*2 {base_jit*1e3:.2f} ms, torch.compile x*2 "
          f"{base_compile*1e3:.2f} ms, eager x*2 {base_eager*1e3:.2f} ms")
    print(f"random words (not included above): jax.random.bits {draw_jax/base_jit:.1f}x jit x*2; "
          f"torch.randint {draw_torch/base_eager:.1f}x eager x*2\n")
    print(table(rows, ["format", "jax.jit / x*2", "torch.compile / x*2", "torch eager / x*2"]))
    return rows


if __name__ == "__main__":
    main()
