"""configs/nvfp4.yaml and configs/mxfp4.yaml on the PyTorch frontend: the
weight and the input of every Linear take the format exactly as
``dmxnum.cast`` gives it (NVFP4(T): the tensor scale per call)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import dmxnum
import torch_frontend as dmx

ROOT = Path(__file__).resolve().parents[2]


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(48, 32), nn.ReLU(), nn.Linear(32, 8)), torch.randn(5, 48) * 3


def _expected(net, x, fmt):
    h = x
    for layer in net:
        if isinstance(layer, nn.Linear):
            h = F.linear(dmxnum.cast(h, fmt), dmxnum.cast(layer.weight, fmt), layer.bias)
        else:
            h = layer(h)
    return h


@pytest.mark.parametrize("name, fmt", [("nvfp4", "NVFP4"), ("mxfp4", "MXFP4_E2M1")])
def test_config_file_casts_weights_and_inputs_of_every_linear(name, fmt):
    net, x = _net()
    model = dmx.Model(net).transform(ROOT / "configs" / f"{name}.yaml")
    with torch.no_grad():
        got, want = model(x), _expected(net, x, fmt)
    assert torch.equal(got, want)
    assert not torch.equal(got, net(x))


@pytest.mark.parametrize("fmt", ["NVFP4(T)", "NVFP4{16,-1}", "MXFP4[E2M1]{16,-1}(R)", "MXFP8_E4M3(E)"])
def test_new_formats_by_name_in_a_config(fmt):
    net, x = _net()
    config = {"rules": [{"module_types": ["linear"], "config": {"weight_format": fmt, "input_format": fmt}}]}
    model = dmx.Model(net).transform(config)
    assert dmxnum.parse(fmt) == dmxnum.config.parse_config(model.dmx_config)["0"]["weight_format"]
    with torch.no_grad():
        assert torch.equal(model(x), _expected(net, x, fmt))
