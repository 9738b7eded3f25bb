"""Weight sparsity as pure functions (SPEC section 4).

Values: :class:`Dense` (``DENSE``), :class:`TopK` (``TOPK{density}(G)``),
:class:`BlockTopK` (``BTOPK{K:M,d}(G)``), :class:`Bernoulli` (``BERN``),
read by :func:`parse_sparseness`. Functions: :func:`mask`, :func:`sparsify`,
:func:`is_sparse`, :func:`compress_nm`, :func:`decompress_nm`. All take and
return NumPy, JAX or PyTorch arrays; see ``docs/sparsity.md``.
"""

from __future__ import annotations

from .api import is_sparse, mask, sparsify
from .compression import compress_nm, decompress_nm
from .values import Bernoulli, BlockTopK, Dense, Sparseness, SparsenessLike, TopK, parse_sparseness

__all__ = [
    "Bernoulli",
    "BlockTopK",
    "Dense",
    "Sparseness",
    "SparsenessLike",
    "TopK",
    "compress_nm",
    "decompress_nm",
    "is_sparse",
    "mask",
    "parse_sparseness",
    "sparsify",
]
