"""Custom logics: approximations of softmax, GELU, SiLU, layer norm, RMS norm, exp, 1/x and 1/sqrt(x).

``approximate(x, spec, **args)`` applies a logic (SPEC section 5) to a NumPy,
JAX or PyTorch array; ``parse_logic`` reads a shorthand into a :class:`Logic`
value. See ``docs/logics.md`` for every algorithm, its constants, valid
input range, gradient and measured error.
"""

from __future__ import annotations

from .api import approximate
from .grammar import ALGORITHMS, NFS, NONE, Logic, parse_logic

__all__ = ["ALGORITHMS", "NFS", "NONE", "Logic", "approximate", "parse_logic"]
