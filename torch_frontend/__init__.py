"""PyTorch frontend of dmxnum, used as ``import torch_frontend as dmx``.

::

    import torch_frontend as dmx

    dmx.aware()                          # name and configure functional ops
    model = dmx.Model(net)               # net itself is never modified
    model.transform("configs/lenet5.yaml", dmx.ConfigRule(module_types="Linear",
                                                          config={"output_format": "SAME"}))
    out = model(x)

    dmx.calibrate(model, batches)        # static scales (input_scale / weight_scale)
    dmx.smoothquant(model, batches)      # SmoothQuant factors
    dmx.gptq(model, batches)             # GPTQ weights

See ``docs/torch.md``. The frontend holds no numerics: every cast,
sparsification and approximation is a ``dmxnum`` core call.
"""

from __future__ import annotations

from dmxnum.config import ConfigRule
from dmxnum.errors import ConfigError, ConfigWarning, NotCalibratedError, SlotNotAppliedWarning

from ._aware import aware, is_aware
from .model import Model
from .ptq import PTQWarning, calibrate, gptq, smoothquant
from .search import search, sensitivity

__all__ = [
    "aware", "is_aware", "Model", "ConfigRule", "ConfigError", "ConfigWarning",
    "SlotNotAppliedWarning", "NotCalibratedError", "PTQWarning", "calibrate", "gptq", "smoothquant",
    "sensitivity", "search",
]
