"""Benchmark: all-MiniLM-L6-v2 forward (batch 8, sequence 128), all-BFP16
(``configs/bfp16_transformer.yaml``: ``BFP[8|8]{64,-1}(SN)`` on the input and
weight of every Linear) versus the unwrapped model. Target: at most 2x.

Eval mode under ``torch.no_grad()``: the effective (cast) weights are cached
after the first call, so the steady state pays the 37 input casts per
forward; the first call (weights cast too) is reported apart.

Run: ``.venv/bin/python benchmarks/bench_torch.py``.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch_frontend as dmx  # noqa: E402
from examples.minilm import SENTENCES, load_minilm  # noqa: E402

BATCH, SEQ, REPEATS = 8, 128, 7


def _interleaved(fns, repeats: int = REPEATS) -> list[list[float]]:
    """Seconds of each ``fn`` per round, the functions alternating within a
    round (so load drift on a shared machine hits both alike)."""
    for fn in fns:
        fn()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for fn, out in zip(fns, times):
            t0 = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t0)
    return times


def main() -> dict[str, float]:
    """Time both forwards; print and return the medians (seconds) and the ratio."""
    net, tokenizer = load_minilm()
    batch = dict(tokenizer(SENTENCES[:BATCH], padding="max_length", max_length=SEQ,
                           truncation=True, return_tensors="pt"))
    model = dmx.Model(net).transform(ROOT / "configs" / "bfp16_transformer.yaml").eval()
    # the frontend alone: hooks on every Linear, formats SAME (no casts)
    hooks_only = dmx.Model(net).transform(
        None, dmx.ConfigRule(module_types="linear", config={"input_format": "SAME", "output_format": "SAME"}))
    with torch.no_grad():
        t0 = time.perf_counter()
        model(**batch)
        first = time.perf_counter() - t0
        plain_t, wrapped_t, hooks_t = _interleaved(
            [lambda: net(**batch), lambda: model(**batch), lambda: hooks_only(**batch)])
    plain, wrapped, hooks = (statistics.median(t) for t in (plain_t, wrapped_t, hooks_t))
    ratio = statistics.median(w / p for w, p in zip(wrapped_t, plain_t))
    print(f"MiniLM forward, batch {BATCH} x seq {SEQ}, torch threads {torch.get_num_threads()}")
    print(f"  unwrapped (FP32)              {plain * 1e3:9.1f} ms")
    print(f"  all-BFP16, steady state       {wrapped * 1e3:9.1f} ms   "
          f"ratio {ratio:.2f}x (median of paired rounds; target <= 2x)")
    print(f"  frontend only (formats SAME)  {hooks * 1e3:9.1f} ms   ratio {hooks / plain:.2f}x")
    print(f"  all-BFP16, first call         {first * 1e3:9.1f} ms   (casts the weights once)")
    return {"unwrapped_s": plain, "bfp16_s": wrapped, "first_call_s": first, "ratio": ratio,
            "frontend_only_s": hooks}


if __name__ == "__main__":
    main()
