"""Softmax logics under jax.jit vs jax.nn.softmax, on a (64, 128, 128) float32 tensor.

``main()`` prints, for each softmax variant, the median time of several
jitted runs (after warm-up) and the ratio to ``jax.nn.softmax`` jitted in
the same run (target: at most 20x).
"""

from __future__ import annotations

import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

import dmxnum
from dmxnum.logics import ALGORITHMS

SHAPE = (64, 128, 128)


def softmax_specs() -> list[str]:
    out = []
    for alg, nfs in ALGORITHMS["SOFTMAX"].items():
        out += [f"SOFTMAX({alg})"] if nfs is None else [f"SOFTMAX({alg},{nf})" for nf in nfs]
    return out


def median_time(fn, x, repeats: int = 7) -> float:
    jax.block_until_ready(fn(x))  # compile + warm up
    jax.block_until_ready(fn(x))
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(fn(x))
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main(repeats: int = 7) -> dict[str, float]:
    x = jnp.asarray(np.random.default_rng(0).normal(0, 2, SHAPE).astype(np.float32))
    base = median_time(jax.jit(lambda v: jax.nn.softmax(v, axis=-1)), x, repeats)
    print(f"device: {jax.devices()[0].device_kind}; shape {SHAPE}; jax.nn.softmax {base * 1e3:.2f} ms")
    ratios = {}
    for spec in softmax_specs():
        t = median_time(jax.jit(lambda v, s=spec: dmxnum.approximate(v, s)), x, repeats)
        ratios[spec] = t / base
        print(f"{spec:30s} {t * 1e3:9.2f} ms  {t / base:6.2f}x")
    return ratios


if __name__ == "__main__":
    main()
