"""Property-testing helpers for dmxnum and for users' own numerics (SPEC section 9).

Hypothesis strategies (need the ``hypothesis`` package, extra ``test``):

* :func:`formats` -- valid format values of every family;
* :func:`float32_values`, :func:`float32_arrays` -- float32 data favouring
  edge values (±0, subnormals, powers of two, ties, format limits, ±Inf, NaN);
* :func:`shapes_for`, :func:`arrays_for` -- shapes / arrays a given
  (blocked) format accepts, with partial last blocks;
* :func:`sparsities` -- valid sparsity patterns (``dmxnum.testing.sparsity_strategies``);

and :func:`assert_bit_exact` (``dmxnum.testing.assertions``), which checks a
result against the bit-exact reference.

Every name is imported on first use, so ``assert_bit_exact`` works without
Hypothesis installed.
"""

from __future__ import annotations

import importlib
from typing import Any

# public name -> module that defines it (imported on first use)
_EXPORTS = {
    "FAMILIES": "dmxnum.testing.strategies",
    "formats": "dmxnum.testing.strategies",
    "float32_values": "dmxnum.testing.strategies",
    "float32_arrays": "dmxnum.testing.strategies",
    "shapes_for": "dmxnum.testing.strategies",
    "arrays_for": "dmxnum.testing.strategies",
    "sparsities": "dmxnum.testing.sparsity_strategies",
    "assert_bit_exact": "dmxnum.testing.assertions",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'dmxnum.testing' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
