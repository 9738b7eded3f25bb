"""Exception types raised by dmxnum.

Every error is a subclass of a built-in exception, so callers may catch the
built-in type (``ValueError``/``TypeError``) or the specific one.
"""

from __future__ import annotations


class ShorthandError(ValueError):
    """A shorthand string (format, sparseness, logic) is malformed."""


class FormatParameterError(ValueError):
    """A format parameter is outside its allowed range."""


class UnsupportedDtypeError(TypeError):
    """An array has a dtype the operation does not accept (integers, bool)."""


class MissingRandomnessError(ValueError):
    """A stochastic operation was called without ``key`` or ``random_bits``."""


class ConfigError(ValueError):
    """A configuration (YAML or rules) is invalid; the model is left unchanged."""


class SlotNotAppliedWarning(UserWarning):
    """A configured slot did not run in the last forward (or trace) of a
    wrapped model; the message names the module and the slot."""


class ConfigWarning(UserWarning):
    """A configuration is valid but probably not what was meant (a rule that
    selects no module, an ignored mltools key such as ``state_dict_url``)."""


class NotCalibratedError(RuntimeError):
    """A configured static scale (``input_scale`` / ``weight_scale``) was used
    before calibration set it; run the frontend's ``calibrate`` first."""


class PTQWarning(ConfigWarning):
    """Post-training quantization state (a calibrated scale, a GPTQ weight)
    was dropped because the configuration or the module changed, or could
    not be set; the message names the modules and what to rerun."""


class DistributedError(ValueError):
    """A ``torch.distributed.tensor.DTensor`` operation cannot be mapped onto
    its shards (a companion array of the wrong shape, another device mesh,
    an unknown placement); the message names the value and what is valid."""


class DistributedWarning(UserWarning):
    """A ``DTensor`` operation gathers a sharded dimension (all-gather and a
    full copy of that dimension on every rank) because it cannot run
    shard-locally; emitted once per operation, shape and placements."""
