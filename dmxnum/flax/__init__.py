"""``dmxnum.flax``: the dmxnum configuration schema on Flax Linen models.

``model = dmxnum.flax.Model(module)``; ``variables = model.init(key, x)``;
``model.transform("config.yaml", *rules)``; ``model.apply(variables, x,
rngs={"dmx": key})``. One configuration file serves PyTorch and Flax: names
are Flax module paths joined with ``.`` (``layers_0`` may be written
``layers.0``), and block axes are written in PyTorch layouts and translated
by meaning (:mod:`dmxnum.flax.layouts`). See ``docs/flax.md``.
"""

from __future__ import annotations

from ..config import ConfigRule
from ..errors import ConfigWarning, SlotNotAppliedWarning
from .layouts import torch_axis_to_flax, torch_shape, translate
from .model import Model

__all__ = [
    "Model", "ConfigRule", "SlotNotAppliedWarning", "ConfigWarning", "torch_axis_to_flax", "torch_shape",
    "translate",
]
