"""Benchmark: NVFP4 and NVFP4(T) casts as a ratio to ``x * 2``, with torchao's
``nvfp4_quantize`` beside them.

What is measured (the statistic of ``bench_formats.py``): for each format,
shape (1024 x 1024 and 4096 x 1024 standard-normal float32) and mode
(NumPy eager, PyTorch eager, ``torch.compile``, ``jax.jit``), after warm-up,
21 back-to-back pairs, each one call of the cast and then one call of
``x * 2`` (eager, compiled or jitted likewise, on the same array); the
median of the pair ratios with their min-max range. torchao 0.18's
``nvfp4_quantize`` (quantization only: E4M3 block scales and packed FP4
codes, no dequantization; two level with its per-tensor scale
``amax / 2688`` computed in the timed call) is timed the same way, eager
and under ``torch.compile``.

Targets on the median (dmxnum casts; torchao's rows are for comparison):
``jax.jit`` <= 2x, ``torch.compile`` <= 3x, PyTorch eager <= 30x (NumPy:
no target, reported).

Run::

    .venv/bin/python benchmarks/bench_nvfp4.py            # everything
    .venv/bin/python benchmarks/bench_nvfp4.py --quick    # 256 x 256, 5 pairs (smoke test)
    .venv/bin/python benchmarks/bench_nvfp4.py --pairs 31 --json nvfp4.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import paired_times, ratio_summary, table  # noqa: E402

FORMATS = ["NVFP4", "NVFP4(T)"]
SHAPES = [(1024, 1024), (4096, 1024)]
QUICK_SHAPES = [(256, 256)]
PAIRS, QUICK_PAIRS = 21, 5
MODES = {"numpy": "NumPy eager", "eager": "torch eager", "compile": "torch.compile", "jit": "jax.jit"}
LIMITS = {"numpy": None, "eager": 30.0, "compile": 3.0, "jit": 2.0}


def _shape(text: str) -> tuple[int, int]:
    rows, cols = text.lower().split("x")
    return int(rows), int(cols)


def _parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="NVFP4 cast / x*2 ratios per shape and mode, with torchao's nvfp4_quantize.")
    p.add_argument("--quick", action="store_true", help="256x256, 5 pairs (smoke test)")
    p.add_argument("--pairs", type=int, default=None, help=f"pairs per cell (default {PAIRS})")
    p.add_argument("--shapes", default=None, help="comma-separated RxC shapes (default 1024x1024,4096x1024)")
    p.add_argument("--no-torchao", action="store_true", help="skip torchao's rows")
    p.add_argument("--json", metavar="PATH", default=None, help="write the raw results to PATH")
    args = p.parse_args(argv)
    args.shapes = [_shape(s) for s in args.shapes.split(",")] if args.shapes else (QUICK_SHAPES if args.quick else SHAPES)
    args.pairs = args.pairs or (QUICK_PAIRS if args.quick else PAIRS)
    return args


def _cell(res: dict | None) -> str:
    if res is None:
        return "-"
    text = f"{res['median']:.2f} ({res['min']:.2f}-{res['max']:.2f})"
    if res["limit"] is None:
        return text
    return text + (" ✓" if res["median"] <= res["limit"] else f" ✗ > {res['limit']:g}x")


def _torchao_quantize(two_level: bool):
    """torchao's ``nvfp4_quantize`` on a float32 tensor (two level: with its
    per-tensor scale from the tensor's amax), or ``None`` without torchao."""
    try:
        from torchao.prototype.mx_formats.nvfp4_tensor import nvfp4_quantize, per_tensor_amax_to_scale
    except ImportError:
        return None
    import torch

    if not two_level:
        return lambda x: nvfp4_quantize(x, 16)
    return lambda x: nvfp4_quantize(x, 16, per_tensor_amax_to_scale(torch.max(torch.abs(x))))


def main(argv: list[str] | None = None) -> list[dict]:
    args = _parse_args(sys.argv[1:] if argv is None else argv)
    warnings.filterwarnings("ignore")
    import jax
    import jax.numpy as jnp
    import torch

    import dmxnum

    pairs = args.pairs
    ready = lambda r: r.block_until_ready()  # noqa: E731
    twice_jit = jax.jit(lambda v: v * 2)
    twice_comp = torch.compile(lambda v: v * 2, dynamic=False)
    results: list[dict] = []
    rows = []
    for shape in args.shapes:
        x_np = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
        xj, xt = jnp.asarray(x_np), torch.from_numpy(x_np)
        for name in FORMATS + ([] if args.no_torchao else ["torchao " + f for f in FORMATS]):
            cells = {}
            if name.startswith("torchao"):
                quantize = _torchao_quantize(name.endswith("(T)"))
                if quantize is None:
                    continue
                runs = {"eager": (lambda: quantize(xt), lambda: xt * 2, None),
                        "compile": (lambda c=torch.compile(quantize, dynamic=False): c(xt), lambda: twice_comp(xt), None)}
            else:
                fmt = dmxnum.parse(name)
                jit_cast = jax.jit(lambda v, f=fmt: dmxnum.cast(v, f))
                comp_cast = torch.compile(lambda v, f=fmt: dmxnum.cast(v, f), dynamic=False)
                runs = {"numpy": (lambda: dmxnum.cast(x_np, fmt), lambda: x_np * 2, None),
                        "eager": (lambda: dmxnum.cast(xt, fmt), lambda: xt * 2, None),
                        "compile": (lambda: comp_cast(xt), lambda: twice_comp(xt), None),
                        "jit": (lambda: jit_cast(xj), lambda: twice_jit(xj), ready)}
            for mode, (fn, base, sync) in runs.items():
                times = paired_times(fn, base, pairs=pairs, warmup=3, sync=sync)
                limit = None if name.startswith("torchao") else LIMITS[mode]
                res = {"name": name, "shape": list(shape), "mode": mode, **ratio_summary(times), "limit": limit,
                       "pairs": pairs, "cast_ms": statistics.median(t for t, _ in times) * 1e3,
                       "base_ms": statistics.median(b for _, b in times) * 1e3}
                results.append(res)
                cells[mode] = res
            print(f"{name} {shape[0]}x{shape[1]}: " + "; ".join(f"{m} {_cell(c)}" for m, c in cells.items()), flush=True)
            rows.append([f"`{name}`" if not name.startswith("torchao") else name, f"{shape[0]}x{shape[1]}"]
                        + [_cell(cells.get(m)) for m in MODES])
    header = ["cast", "shape"] + [f"{label} / x*2" + (f" (<= {LIMITS[m]:g}x)" if LIMITS[m] else "")
                                  for m, label in MODES.items()]
    print(f"\nmedian (min-max) of {pairs} back-to-back pairs (cast, then x * 2) on standard-normal float32")
    print(table(rows, header))
    if args.json:
        Path(args.json).write_text(json.dumps({"pairs": pairs, "results": results,
                                               "versions": {"jax": jax.__version__, "torch": torch.__version__}},
                                              indent=1) + "\n")
    return results


if __name__ == "__main__":
    main()
