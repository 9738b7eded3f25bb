"""Post-training quantization: calibrated static scales, SmoothQuant, GPTQ.

Framework-neutral pure algorithms on NumPy, JAX and PyTorch arrays (each
result in the kind it was given; the work runs on NumPy on the host):

* :func:`observer` -- a streaming :class:`Observer` (``minmax``,
  ``percentile``, ``mse``) whose ``scale()`` is the static scale ``s`` of
  ``dmxnum.cast(x, fmt, scale=s)`` for XP, FP and ``NVFP4(T)`` formats;
* :func:`smoothquant_factors` -- SmoothQuant's per-input-channel factors;
* :func:`gptq` -- GPTQ for every format, exact on its grid, with block
  scales held per block for block formats along the input axis
  (:mod:`.block_scales`).

``docs/ptq.md`` describes the algorithms with examples.
"""

from __future__ import annotations

from .block_scales import BlockRule, block_rule, cast_by_held_scales
from .gptq import GPTQResult, gptq, layer_loss, settle
from .scale_spec import StaticScaleSpec, parse_scale_spec
from .observers import MSE_RATIOS, Observer, observer, scale_from_amax, static_scale_format
from .smoothquant import smoothquant_factors

__all__ = [
    "BlockRule", "GPTQResult", "MSE_RATIOS", "Observer", "block_rule", "cast_by_held_scales", "gptq",
    "layer_loss", "observer", "parse_scale_spec", "StaticScaleSpec", "scale_from_amax", "settle", "smoothquant_factors", "static_scale_format",
]
