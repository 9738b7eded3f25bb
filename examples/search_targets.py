"""Targets for ``python -m torch_frontend.search --model examples.search_targets:NAME``.

Each function returns ``(model, evaluate, batches[, loss[, sites]])``:

- ``digits``: the examples' LeNet-5 trained on scikit-learn's digits;
  ``evaluate`` is the mean cross-entropy (nats) on the 450 test images (a
  smooth metric: the error rate moves in steps of 0.22 %, too coarse to
  rank single sites; ``evaluate.accuracy(model)`` gives the accuracy in
  percent); sites are the weight and
  the input format of every ``Conv``/``Linear``; proxy batches are the
  training set in batches of 256 with the cross-entropy loss;
- ``smollm2``: SmolLM2-135M, the weights of every decoder ``Linear``;
  ``evaluate`` is the perplexity on ``DMX_SEARCH_WINDOWS`` evaluation
  windows (default 2, of 512 tokens); proxy batches are calibration windows
  with the model's own next-token loss.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))


def digits(epochs: int = 30):
    """The trained digits LeNet-5 wrapped, its test cross-entropy, training batches, the loss and the sites."""
    import torch_frontend as dmx
    from digits_cnn import accuracy, trained_lenet

    net, (xtr, ytr, xte, yte) = trained_lenet(epochs=epochs)
    model = dmx.Model(net)
    with torch.no_grad():
        model(xte[:2])  # records the input shapes of the input sites

    def test_nll(m) -> float:
        with torch.no_grad():
            return float(F.cross_entropy(m(xte), yte))

    test_nll.cache_key = f"digits-test-nll-{len(yte)}-{epochs}"
    test_nll.accuracy = lambda m: accuracy(m, xte, yte)
    batches = [(xtr[i:i + 256], ytr[i:i + 256]) for i in range(0, len(ytr), 256)]

    def loss(m, batch):
        return F.cross_entropy(m(batch[0]), batch[1])

    names = [n for n, _, kind in model._info.values() if kind in ("linear", "conv")]
    sites = [(n, s) for n in names for s in ("weight_format", "input_format")]
    return model, test_nll, batches, loss, sites


def smollm2(windows: int | None = None, calib: int = 2):
    """SmolLM2-135M wrapped, its perplexity, calibration batches (labels = inputs), the sites."""
    import llm
    import torch_frontend as dmx

    count = int(os.environ.get("DMX_SEARCH_WINDOWS", "2")) if windows is None else windows
    net = llm.load_smollm2()
    model = dmx.Model(net)
    eval_windows = llm.corpus("eval", count)

    def perplexity(m) -> float:
        return llm.perplexity(m, eval_windows, progress=False)

    perplexity.cache_key = f"smollm2-perplexity-{count}"
    ids = llm.corpus("calib", calib)
    batches = [{"input_ids": ids[i:i + 1], "labels": ids[i:i + 1], "use_cache": False} for i in range(calib)]
    sites = r"layers\."
    return model, perplexity, batches, None, sites


def digits_quick():
    """``digits`` with a shorter training (8 epochs): the test suite's target."""
    return digits(epochs=8)
