"""The main demo (``make demo``): every capability on real data, in one run.

1. formats: cast digits images and a trained weight into many formats;
2. sparsity: prune a trained weight 2:4 / 4:8;
3. logics: approximated softmax / GELU / layer norm on real activations;
4. PyTorch: a digits CNN and the real all-MiniLM-L6-v2 under the example configs;
5. Flax: the same digits CNN in Flax (Linen) under the same config files, and
   its NNX twin trained with quantization-aware fine-tuning (MXFP4/MXFP8);
6. LLM: SmolLM2-135M perplexity under the LLM configs (one window).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from examples import (  # noqa: E402
    demo_flax, demo_formats, demo_llm, demo_logics, demo_sparsity, demo_torch, nnx_digits,
)

SECTIONS = [
    ("Formats", demo_formats.run),
    ("Sparsity", demo_sparsity.run),
    ("Logics", demo_logics.run),
    ("PyTorch frontend", demo_torch.run),
    ("Flax frontend", demo_flax.run),
    ("Flax NNX: quantization-aware training", lambda: nnx_digits.main(epochs=12, qat_epochs=2)),
    ("LLM: SmolLM2-135M", demo_llm.run),
]

if __name__ == "__main__":
    for title, fn in SECTIONS:
        start = time.perf_counter()
        print(f"\n{'=' * 20} {title} {'=' * 20}", flush=True)
        fn()
        print(f"({time.perf_counter() - start:.1f} s)", flush=True)
