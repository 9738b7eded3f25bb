"""The slow, exact reference: every format, sparsity pattern and logic again.

Element by element, with exact arithmetic (Python ints and
``fractions.Fraction`` on decoded float bits; NumPy scalar IEEE operations
for logics). It shares no numeric code with the kernels; the fast paths are
proven bit-exact against it. Module names mirror ``dmxnum/formats``.
"""

from __future__ import annotations

from .cast import cast
from .float32 import round_to_float32

__all__ = ["cast", "round_to_float32"]

# sparsity and logics helpers: add one import line each below
from . import sparsity  # noqa: E402,F401  (dmxnum.reference.sparsity.mask / sparsify / is_sparse / compress_nm / decompress_nm)
from . import logics  # noqa: E402,F401  (dmxnum.reference.logics.approximate / softmax / gelu / layernorm / exp / recip / rsqrt)
