"""Benchmark: a 2:4 mask on a 4096x4096 float32 weight versus ``x * 2``.

Prints, for JAX under ``jax.jit`` (the acceptance number: target at most 6x)
and for PyTorch (eager, plus the mask under ``torch.compile``), the median time of ``mask(|w|, BTOPK{2:4,-1})``,
``sparsify(w, BTOPK{2:4,-1})`` and ``x * 2`` on the same array (each warmed
up first), and their ratios. Also TOPK{0.5} (a sort) for scale.

Run: ``.venv/bin/python benchmarks/bench_sparsity.py``.
"""

from __future__ import annotations

import statistics
import time
from typing import Any, Callable

import numpy as np

SHAPE = (4096, 4096)
REPEATS = 7


def _medians(fns: dict[str, Callable[[], Any]], sync: Callable[[Any], Any], repeats: int = REPEATS) -> dict[str, float]:
    """Median seconds of each function; rounds interleave the functions so that load
    from other processes hits them alike. Each is warmed up (compiled) twice first."""
    for fn in fns.values():
        sync(fn())
        sync(fn())
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            sync(fn())
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(ts) for name, ts in times.items()}


def bench_jax(w_np: np.ndarray) -> dict[str, float]:
    """Median seconds of jitted 2:4 mask / sparsify / TOPK and ``x * 2`` on JAX."""
    import jax
    import jax.numpy as jnp

    from dmxnum.sparsity import mask, sparsify
    from dmxnum.sparsity.api import magnitude

    w = jnp.asarray(w_np)
    double = jax.jit(lambda x: x * 2)
    nm_mask = jax.jit(lambda x: mask(magnitude(x), "BTOPK{2:4,-1}(U)"))
    nm_sparsify = jax.jit(lambda x: sparsify(x, "BTOPK{2:4,-1}(U)"))
    topk = jax.jit(lambda x: sparsify(x, "TOPK{0.5}(U)"))
    sync = jax.block_until_ready
    times = _medians(
        {"x * 2": lambda: double(w), "mask 2:4": lambda: nm_mask(w), "sparsify 2:4": lambda: nm_sparsify(w)}, sync
    )
    times.update(_medians({"sparsify TOPK{0.5}": lambda: topk(w)}, sync, repeats=3))
    return times


def bench_torch(w_np: np.ndarray) -> dict[str, float]:
    """Median seconds of eager 2:4 mask / sparsify, a torch.compile'd mask and ``x * 2`` on PyTorch (CPU)."""
    import torch

    from dmxnum.sparsity import mask, sparsify
    from dmxnum.sparsity.api import magnitude

    w = torch.from_numpy(w_np)
    sync = lambda r: r  # noqa: E731 (CPU eager is synchronous)
    compiled_mask = torch.compile(lambda x: mask(magnitude(x), "BTOPK{2:4,-1}(U)"), dynamic=False)
    with torch.no_grad():
        return _medians(
            {
                "x * 2": lambda: w * 2,
                "mask 2:4": lambda: mask(magnitude(w), "BTOPK{2:4,-1}(U)"),
                "sparsify 2:4": lambda: sparsify(w, "BTOPK{2:4,-1}(U)"),
                "mask 2:4 (compiled)": lambda: compiled_mask(w),
            },
            sync,
        )


def _report(name: str, times: dict[str, float]) -> None:
    base = times["x * 2"]
    print(f"{name}:")
    for label, t in times.items():
        print(f"  {label:<20} {t * 1e3:9.2f} ms   ratio to x*2: {t / base:6.2f}x")


def main() -> dict[str, dict[str, float]]:
    """Run the benchmark, print a table and return the timings (seconds)."""
    w_np = np.random.default_rng(0).standard_normal(SHAPE, dtype=np.float32)
    results = {"jax.jit": bench_jax(w_np)}
    _report("JAX (jax.jit)", results["jax.jit"])
    try:
        results["torch eager"] = bench_torch(w_np)
        _report("PyTorch (eager; last row torch.compile)", results["torch eager"])
    except ImportError:  # pragma: no cover
        print("PyTorch not installed; skipped")
    jit = results["jax.jit"]
    print(f"2:4 mask, {SHAPE[0]}x{SHAPE[1]} float32, jax.jit: {jit['mask 2:4'] / jit['x * 2']:.2f}x the time of x * 2 (target <= 6x)")
    return results


if __name__ == "__main__":
    main()
