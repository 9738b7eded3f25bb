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
