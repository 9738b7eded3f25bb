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
  windows (default 2, of 512 tokens; :class:`ResumingPerplexity`, which
  reruns only the layers from the first configured one); proxy batches are calibration windows
  with the model's own next-token loss.
"""

from __future__ import annotations

import math
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


class ResumingPerplexity:
    """Perplexity of a SmolLM2 ``dmx.Model`` on fixed ``windows``, the
    same float64 value as ``llm.perplexity(model, windows)``, computed
    faster for a configuration that only casts decoder weights: the hidden
    states entering every decoder layer of the unconfigured network are
    kept from one baseline pass, and only the layers from the first
    configured one on run again (on average half the network for a single
    site). Any other configuration takes the whole forward."""

    def __init__(self, net, windows: torch.Tensor, batch_size: int = 4):
        import llm

        self.net, self.windows, self.batch_size = net, windows, batch_size
        self.layers = net.model.layers
        self.inputs: list[list[tuple]] = []  # per batch: per layer (hidden, kwargs)
        self.baseline = None
        handles = []
        current: list[tuple] = []
        for layer in self.layers:
            handles.append(layer.register_forward_pre_hook(
                lambda mod, args, kwargs: current.append((args[0], dict(kwargs))), with_kwargs=True))
        try:
            for start in range(0, windows.shape[0], batch_size):
                current.clear()
                with torch.no_grad():
                    net(input_ids=windows[start:start + batch_size], use_cache=False)
                self.inputs.append(list(current))
        finally:
            for h in handles:
                h.remove()
        self.full = llm.perplexity

    def _first_layer(self, model) -> int | None:
        """The first decoder layer a weight-only configuration changes, or
        None when the configuration is not weight-only within the decoder."""
        if model._op_config or any(set(slots) - {"instance", "weight_format"} for slots in model._config.values()):
            return None
        if next(iter(model.dmx_ptq.items()), None) is not None:
            return None
        first = None
        for name in model._config:
            head, _, rest = name.partition("model.layers.")
            if head or not rest:
                return None
            index = int(rest.split(".")[0])
            first = index if first is None else min(first, index)
        return first

    def __call__(self, model) -> float:
        first = self._first_layer(model)
        if first is None:
            return self.full(model, self.windows, self.batch_size, progress=False)
        import llm

        params = model.effective_parameters()
        total, count = 0.0, 0
        with torch.no_grad():
            for b, start in enumerate(range(0, self.windows.shape[0], self.batch_size)):
                batch = self.windows[start:start + self.batch_size]
                hidden = self.inputs[b][first][0]
                for j in range(first, len(self.layers)):
                    prefix = f"model.layers.{j}."
                    local = {k[len(prefix):]: v for k, v in params.items() if k.startswith(prefix)}
                    kwargs = self.inputs[b][j][1]
                    out = (torch.func.functional_call(self.layers[j], local, (hidden,), kwargs, tie_weights=False)
                           if local else self.layers[j](hidden, **kwargs))
                    hidden = out[0] if isinstance(out, tuple) else out
                part, n = llm.next_token_nll(self.net.lm_head(self.net.model.norm(hidden)), batch)
                total += part
                count += n
        return math.exp(total / count)


def smollm2(windows: int | None = None, calib: int = 2):
    """SmolLM2-135M wrapped, its perplexity, calibration batches (labels = inputs), the sites."""
    import llm
    import torch_frontend as dmx

    count = int(os.environ.get("DMX_SEARCH_WINDOWS", "2")) if windows is None else windows
    net = llm.load_smollm2()
    model = dmx.Model(net)
    eval_windows = llm.corpus("eval", count)

    perplexity = ResumingPerplexity(net, eval_windows)
    perplexity.cache_key = f"smollm2-perplexity-{count}"
    ids = llm.corpus("calib", calib)
    batches = [{"input_ids": ids[i:i + 1], "labels": ids[i:i + 1], "use_cache": False} for i in range(calib)]
    sites = r"layers\."
    return model, perplexity, batches, None, sites


def digits_quick():
    """``digits`` with a shorter training (8 epochs): the test suite's target."""
    return digits(epochs=8)
