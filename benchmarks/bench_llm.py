"""SmolLM2-135M forward: the wrapped model with BFP16 weights and inputs
(``configs/llm_bfp16.yaml``) against the unwrapped float32 model, eval mode,
``no_grad``, one sequence of 512 tokens, cached effective weights; median of
back-to-back pairs (goal: at most 1.5x)."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from _timing import paired_times, ratio_summary  # noqa: E402


def main(pairs: int = 11) -> dict:
    """Time the pairs and print the summary; returns it."""
    import torch_frontend as dmx
    from examples.llm import corpus, load_smollm2

    net = load_smollm2()
    ids = corpus("eval", 1)
    wrapped = dmx.Model(net).transform(str(HERE.parent / "configs" / "llm_bfp16.yaml"))
    with torch.no_grad():
        times = paired_times(
            lambda: wrapped(input_ids=ids, use_cache=False).logits,
            lambda: net(input_ids=ids, use_cache=False).logits,
            pairs=pairs,
        )
    summary = ratio_summary(times)
    fp32 = sorted(b for _, b in times)[len(times) // 2]
    print(
        f"SmolLM2-135M, 1 x 512 tokens, BFP16 W+A wrapped / FP32 unwrapped: median "
        f"{summary['median']:.2f}x (min {summary['min']:.2f}, max {summary['max']:.2f}, "
        f"{pairs} pairs; FP32 forward {fp32 * 1000:.0f} ms)"
    )
    return summary


if __name__ == "__main__":
    main()
