"""``dmxnum.flax``: the dmxnum configuration schema on Flax Linen and NNX models.

``model = dmxnum.flax.Model(module)``; ``variables = model.init(key, x)``;
``model.transform("config.yaml", *rules)``; ``model.apply(variables, x,
rngs={"dmx": key})``; for an ``nnx.Module``, ``model = dmxnum.flax.Model(module,
rngs=nnx.Rngs(dmx=0))``, ``model.transform(...)``, ``y = model(x)``
(:class:`NnxModel`). One configuration file serves PyTorch and Flax: names
are Flax module paths joined with ``.`` (``layers_0`` may be written
``layers.0``), and block axes are written in PyTorch layouts and translated
by meaning (:mod:`dmxnum.flax.layouts`). Post-training quantization:
``variables = dmxnum.flax.calibrate(model, variables, batches)`` sets the
configured static scales, ``dmxnum.flax.gptq(model, variables, batches)``
quantizes kernels by GPTQ (:mod:`dmxnum.flax.ptq`). Mixed precision:
``dmxnum.flax.sensitivity`` / ``dmxnum.flax.search`` (:mod:`dmxnum.flax.search`,
the twin of ``torch_frontend.search``). See ``docs/flax.md``.
"""

from __future__ import annotations

from ..config import ConfigRule
from ..errors import ConfigWarning, NotCalibratedError, SlotNotAppliedWarning
from .layouts import torch_axis_to_flax, torch_shape, translate
from .model import PTQ_COLLECTION, Model
from .nnx_model import NnxModel
from .ptq import calibrate, gptq, ptq_state
from .search import SearchReport, search, sensitivity

__all__ = [
    "Model", "NnxModel", "ConfigRule", "SlotNotAppliedWarning", "ConfigWarning", "NotCalibratedError", "torch_axis_to_flax",
    "torch_shape", "translate", "calibrate", "gptq", "ptq_state", "PTQ_COLLECTION",
    "sensitivity", "search", "SearchReport",
]
