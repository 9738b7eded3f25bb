"""Real models: MiniLM under all-BFP16 and the digits CNN under the LeNet config."""

from __future__ import annotations

from pathlib import Path

import torch_frontend as dmx
from examples.digits_cnn import accuracy
from examples.minilm import embed, mean_cosine

ROOT = Path(__file__).resolve().parents[2]


def test_minilm_all_bfp16_cosine(minilm):
    net, batch = minilm
    model = dmx.Model(net).transform(ROOT / "configs" / "bfp16_transformer.yaml")
    names = model.dmx_config
    assert names.count("instance: Linear") == 37  # 6 layers x (q, k, v, o, up, down) + pooler
    cos = mean_cosine(embed(net, batch), embed(model, batch))
    assert cos >= 0.99, cos


def test_digits_cnn_lenet_bfp16_accuracy(lenet):
    net, (_, _, xte, yte) = lenet
    fp32 = accuracy(net, xte, yte)
    model = dmx.Model(net).transform(ROOT / "configs" / "lenet5.yaml")
    bfp16 = accuracy(model, xte, yte)
    assert fp32 > 90.0
    assert abs(bfp16 - fp32) <= 1.0, (fp32, bfp16)
