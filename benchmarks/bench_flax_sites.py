"""Benchmark: what the Flax operator-site interpreter costs after ``jax.jit``.

A transformer block (attention with ``q @ k^T`` and ``p @ v``, a gated MLP
with ``act(gate) * up``, two residual additions) wrapped in
``dmxnum.flax.Model`` with every operator site configured (``+``: input and
residual formats, ``*`` and ``@``: input, multiplier and output formats),
against a hand-written twin that applies the same casts with explicit
``dmxnum.cast`` calls. The interpreter binds the traced equations unchanged,
so the compiled HLO should be the twin's: the number of HLO instructions of
the compiled module (``jax.jit(f).lower(...).compile().as_text()``) must be at
most 1.2x the twin's (issue 19). The same for the Flax NNX twin of the block
(:class:`NnxBlock`). Also times both compiled Linen forwards.

Run: ``python benchmarks/bench_flax_sites.py``.
"""

from __future__ import annotations

import math
import re
import statistics
import time
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import nnx

import dmxnum

D, H, FF = 64, 4, 128
BFP8 = "BFP[8|8]{16,-1}(SN)"
BFP8_T = "BFP[8|8]{16,-2}(SN)"

#: every operator site of :class:`Block`, configured
CONFIG = {
    "matmul_0": {"input_format": BFP8, "multiplier_format": BFP8_T, "output_format": "FP16"},
    "matmul_1": {"input_format": BFP8, "multiplier_format": BFP8_T, "output_format": "FP16"},
    "add_0": {"input_format": "BF16", "residual_format": BFP8},
    "mul_0": {"input_format": BFP8, "multiplier_format": BFP8, "output_format": "BF16"},
    "add_1": {"input_format": "BF16", "residual_format": BFP8},
}


def _cast(x: Any, fmt: str | None) -> Any:
    return x if fmt is None else dmxnum.cast(x, fmt)


def _site(f: dict, name: str, a: Any, b: Any, op: Callable[[Any, Any], Any]) -> Any:
    """The twin's explicit casts around one site: first operand, second operand, result."""
    slots = f.get(name, {})
    second = slots.get("residual_format", slots.get("multiplier_format"))
    return _cast(op(_cast(a, slots.get("input_format")), _cast(b, second)), slots.get("output_format"))


class Block(nn.Module):
    """Pre-norm transformer block; ``fmt``: the hand-written twin's casts (name -> slots)."""

    fmt: tuple = ()

    @nn.compact
    def __call__(self, x):  # (B, T, D)
        f = {k: dict(v) for k, v in self.fmt}
        b, t, _ = x.shape
        h = nn.LayerNorm(name="ln1")(x)

        def heads(name):
            return jnp.swapaxes(nn.Dense(D, name=name)(h).reshape(b, t, H, -1), 1, 2)

        q, k, v = heads("q"), heads("k"), heads("v")
        s = _site(f, "matmul_0", q, jnp.swapaxes(k, -1, -2), jnp.matmul) * (1.0 / math.sqrt(D // H))
        a = _site(f, "matmul_1", nn.softmax(s, axis=-1), v, jnp.matmul)
        a = jnp.swapaxes(a, 1, 2).reshape(b, t, D)
        x = _site(f, "add_0", x, nn.Dense(D, name="o")(a), jnp.add)
        h = nn.LayerNorm(name="ln2")(x)
        g = _site(f, "mul_0", nn.silu(nn.Dense(FF, name="gate")(h)), nn.Dense(FF, name="up")(h), jnp.multiply)
        return _site(f, "add_1", x, nn.Dense(D, name="down")(g), jnp.add)


class NnxBlock(nnx.Module):
    """The Flax NNX twin of :class:`Block` (same names); ``fmt`` as there."""

    def __init__(self, rngs: nnx.Rngs, fmt: dict | None = None) -> None:
        self.ln1, self.ln2 = nnx.LayerNorm(D, rngs=rngs), nnx.LayerNorm(D, rngs=rngs)
        self.q, self.k, self.v, self.o = (nnx.Linear(D, D, rngs=rngs) for _ in range(4))
        self.gate, self.up = nnx.Linear(D, FF, rngs=rngs), nnx.Linear(D, FF, rngs=rngs)
        self.down = nnx.Linear(FF, D, rngs=rngs)
        self.fmt = fmt or {}

    def __call__(self, x):
        f = self.fmt
        b, t, _ = x.shape
        h = self.ln1(x)

        def heads(layer):
            return jnp.swapaxes(layer(h).reshape(b, t, H, -1), 1, 2)

        q, k, v = heads(self.q), heads(self.k), heads(self.v)
        s = _site(f, "matmul_0", q, jnp.swapaxes(k, -1, -2), jnp.matmul) * (1.0 / math.sqrt(D // H))
        a = _site(f, "matmul_1", nnx.softmax(s, axis=-1), v, jnp.matmul)
        a = jnp.swapaxes(a, 1, 2).reshape(b, t, D)
        x = _site(f, "add_0", x, self.o(a), jnp.add)
        h = self.ln2(x)
        g = _site(f, "mul_0", nnx.silu(self.gate(h)), self.up(h), jnp.multiply)
        return _site(f, "add_1", x, self.down(g), jnp.add)


def hlo_op_count(fn: Callable, *args: Any) -> int:
    """Instructions of the compiled HLO module of ``jax.jit(fn)(*args)`` (every computation)."""
    text = jax.jit(fn).lower(*args).compile().as_text()
    return sum(1 for line in text.splitlines() if re.match(r"\s*(ROOT\s+)?%?[\w.\-]+\s*=\s", line))


def _setup(batch: int = 4, seq: int = 32) -> tuple:
    import dmxnum.flax

    x = jax.random.normal(jax.random.key(1), (batch, seq, D))
    model = dmxnum.flax.Model(Block())
    variables = model.init(jax.random.key(0), x)
    model.transform(CONFIG)
    twin = Block(fmt=tuple((k, tuple(v.items())) for k, v in CONFIG.items()))
    return model, twin, variables, x


def hlo_counts(batch: int = 4, seq: int = 32) -> dict[str, int]:
    """HLO instruction counts: the wrapped model, its hand-written twin, the plain block."""
    model, twin, variables, x = _setup(batch, seq)
    return {
        "wrapped": hlo_op_count(model.apply, variables, x),
        "twin": hlo_op_count(twin.apply, variables, x),
        "plain": hlo_op_count(Block().apply, variables, x),
    }


def nnx_hlo_counts(batch: int = 4, seq: int = 32) -> dict[str, int]:
    """As :func:`hlo_counts` for the NNX twins: the wrapped ``NnxBlock``, its hand-written
    twin and the plain one (each jitted as a function of its state)."""
    import dmxnum.flax

    x = jax.random.normal(jax.random.key(1), (batch, seq, D))
    model = dmxnum.flax.Model(NnxBlock(nnx.Rngs(0))).transform(CONFIG)
    model.trace(x)

    def count(module: Any) -> int:
        graphdef, state = nnx.split(module)
        return hlo_op_count(lambda st, x: nnx.merge(graphdef, st)(x), state, x)

    return {"wrapped": count(model), "twin": count(NnxBlock(nnx.Rngs(0), CONFIG)), "plain": count(model.module)}


def main(runs: int = 30) -> dict[str, float]:
    counts = hlo_counts()
    nnx_counts = nnx_hlo_counts()
    model, twin, variables, x = _setup()
    wrapped, hand = jax.jit(model.apply), jax.jit(twin.apply)
    times: dict[str, list[float]] = {"wrapped": [], "twin": []}
    for fn in (wrapped, hand):
        jax.block_until_ready(fn(variables, x))
    for _ in range(runs):  # interleaved: both see the same machine load
        for key, fn in (("wrapped", wrapped), ("twin", hand)):
            t0 = time.perf_counter()
            jax.block_until_ready(fn(variables, x))
            times[key].append(time.perf_counter() - t0)
    t_w, t_t = statistics.median(times["wrapped"]), statistics.median(times["twin"])
    ratio = counts["wrapped"] / counts["twin"]
    print(f"Flax operator sites under jax.jit ({jax.devices()[0].platform}), block B=4 T=32 D={D}")
    print(f"compiled HLO instructions: wrapped {counts['wrapped']}, hand-written twin {counts['twin']}, "
          f"plain (no casts) {counts['plain']}; ratio {ratio:.3f} (target <= 1.2)")
    nnx_ratio = nnx_counts["wrapped"] / nnx_counts["twin"]
    print(f"NNX twin: wrapped {nnx_counts['wrapped']}, hand-written twin {nnx_counts['twin']}, "
          f"plain {nnx_counts['plain']}; ratio {nnx_ratio:.3f} (target <= 1.2)")
    print(f"median of {runs} interleaved runs: wrapped {1e3 * t_w:.3f} ms, twin {1e3 * t_t:.3f} ms, "
          f"ratio {t_w / t_t:.2f}x")
    return {
        "hlo_ratio": ratio, "nnx_hlo_ratio": nnx_ratio, "time_ratio": t_w / t_t,
        **{f"hlo_{k}": v for k, v in counts.items()}, **{f"nnx_hlo_{k}": v for k, v in nnx_counts.items()},
    }


if __name__ == "__main__":
    main()
