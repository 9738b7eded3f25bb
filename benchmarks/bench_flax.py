"""Benchmark: jitted forward of the Flax digits CNN under BFP16 vs the plain jitted forward.

``configs/lenet5.yaml`` (BFP[8|8]{64,d}(SN) on the inputs and weights of
every convolution and Linear layer) against the unwrapped module, both under
``jax.jit``, warmed up, median of several timed runs; the same for the Flax
NNX twin (``examples/nnx_digits.py``, :func:`nnx_main`). Target: at most 2x.

Run: ``python benchmarks/bench_flax.py``.
"""

from __future__ import annotations

import importlib.util
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def _demo() -> Any:
    spec = importlib.util.spec_from_file_location("demo_flax", ROOT / "examples" / "demo_flax.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def interleaved_medians(fns: list[Callable[[], Any]], runs: int = 40, warmup: int = 3) -> list[float]:
    """Median wall time of each ``fn()`` (blocking on its result), timed in alternation.

    Alternating the calls exposes every function to the same machine load,
    so the ratio of medians stays meaningful on a shared CPU.
    """
    for fn in fns:
        for _ in range(warmup):
            jax.block_until_ready(fn())
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(runs):
        for fn, acc in zip(fns, times):
            t = time.perf_counter()
            jax.block_until_ready(fn())
            acc.append(time.perf_counter() - t)
    return [statistics.median(acc) for acc in times]


def nnx_main(batches: tuple[int, ...] = (64, 256, 1024), runs: int = 40) -> dict[int, dict[str, float]]:
    """The NNX LeNet-5 (``examples/nnx_digits.py``): wrapped under ``lenet5.yaml`` vs unwrapped.

    Each is jitted as a function of its state (``nnx.split`` once, ``jax.jit`` of
    ``nnx.merge(graphdef, state)(x)``: the compiled computation), and also called
    through ``nnx.jit`` (which adds the same graph bookkeeping to both per call).
    """
    import dmxnum.flax
    from flax import nnx

    sys.path.insert(0, str(ROOT))
    from examples.nnx_digits import LeNet5

    net = LeNet5(nnx.Rngs(0))
    model = dmxnum.flax.Model(net)
    model.trace(jnp.zeros((1, 8, 8, 1), jnp.float32))
    model.transform(ROOT / "configs" / "lenet5.yaml")

    def pure(module: Any) -> Callable:
        graphdef, state = nnx.split(module)
        fn = jax.jit(lambda st, x: nnx.merge(graphdef, st)(x))
        return lambda x: fn(state, x)

    plain, wrapped = pure(net), pure(model)
    forward = nnx.jit(lambda m, x: m(x))
    rng = np.random.default_rng(0)
    print(f"Flax NNX LeNet-5 forward ({jax.devices()[0].platform}), median of {runs} interleaved runs")
    print(f"{'batch':>6} {'plain FP32 ms':>14} {'BFP16 ms':>10} {'ratio':>7}   {'nnx.jit ratio':>13}")
    results = {}
    for batch in batches:
        x = jnp.asarray(rng.random((batch, 8, 8, 1), dtype=np.float32))
        t_plain, t_bfp, n_plain, n_bfp = interleaved_medians(
            [lambda: plain(x), lambda: wrapped(x), lambda: forward(net, x), lambda: forward(model, x)], runs
        )
        results[batch] = {"plain_s": t_plain, "bfp16_s": t_bfp, "ratio": t_bfp / t_plain, "nnx_jit_ratio": n_bfp / n_plain}
        print(f"{batch:>6} {1e3 * t_plain:>14.3f} {1e3 * t_bfp:>10.3f} {t_bfp / t_plain:>6.2f}x   {n_bfp / n_plain:>12.2f}x")
    return results


def main(batches: tuple[int, ...] = (64, 256, 1024), runs: int = 40) -> dict[int, dict[str, float]]:
    """Time both forwards for each batch size of 8x8 images; print and return the numbers."""
    import dmxnum.flax

    demo = _demo()
    net = demo.LeNet5()
    rng = np.random.default_rng(0)
    variables = net.init(jax.random.key(0), jnp.zeros((1, 8, 8, 1), jnp.float32))
    plain = jax.jit(net.apply)
    model = dmxnum.flax.Model(net)
    model.trace(jnp.zeros((1, 8, 8, 1), jnp.float32))
    model.transform(ROOT / "configs" / "lenet5.yaml")
    wrapped = jax.jit(model.apply)
    print(f"Flax LeNet-5 forward under jax.jit ({jax.devices()[0].platform}), median of {runs} interleaved runs")
    print(f"{'batch':>6} {'plain FP32 ms':>14} {'BFP16 ms':>10} {'ratio':>7}   (lenet5.yaml; target <= 2x)")
    results = {}
    for batch in batches:
        x = jnp.asarray(rng.random((batch, 8, 8, 1), dtype=np.float32))
        t_plain, t_bfp = interleaved_medians([lambda: plain(variables, x), lambda: wrapped(variables, x)], runs)
        results[batch] = {"plain_s": t_plain, "bfp16_s": t_bfp, "ratio": t_bfp / t_plain}
        print(f"{batch:>6} {1e3 * t_plain:>14.3f} {1e3 * t_bfp:>10.3f} {t_bfp / t_plain:>6.2f}x")
    return results


if __name__ == "__main__":
    main()
    nnx_main()
