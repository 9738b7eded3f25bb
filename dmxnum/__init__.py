"""dmxnum: hardware-aware numerics for neural-network compression.

Pure functions over NumPy, JAX and PyTorch arrays (each returns the kind it
was given):

* formats: :func:`cast`, :func:`parse`, :func:`encode`, :func:`decode`,
  :func:`kernel_paths` (which kernel path runs, and why);
* sparsity: :func:`sparsify`, :func:`mask`, :func:`is_sparse`,
  :func:`compress_nm`, :func:`decompress_nm`;
* logics: :func:`approximate`.

Frontends: ``torch_frontend`` (``import torch_frontend as dmx``) and
``dmxnum.flax``; property-testing helpers: ``dmxnum.testing``.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it (imported on first use, so that the
# core stays importable without JAX or PyTorch installed)
_EXPORTS = {
    "cast": "dmxnum.casting",
    "parse": "dmxnum.formats.grammar",
    "encode": "dmxnum.encoding",
    "decode": "dmxnum.encoding",
    "Encoded": "dmxnum.encoding",
    "sparsify": "dmxnum.sparsity",
    "mask": "dmxnum.sparsity",
    "is_sparse": "dmxnum.sparsity",
    "compress_nm": "dmxnum.sparsity",
    "decompress_nm": "dmxnum.sparsity",
    "parse_sparseness": "dmxnum.sparsity",
    "approximate": "dmxnum.logics",
    "parse_logic": "dmxnum.logics",
    "kernel_paths": "dmxnum.kernels.families",
}

# submodules importable as attributes (``dmxnum.reference.cast``)
_SUBMODULES = ("reference", "testing", "flax", "config", "kernels", "ptq", "search")

__all__ = sorted(_EXPORTS) + ["formats", "errors"]


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"dmxnum.{name}")
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'dmxnum' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The module's names plus the lazily imported ones (``cast``, ``parse``, ...)."""
    return sorted(set(globals()) | set(_EXPORTS) | set(_SUBMODULES))


from . import errors, formats  # noqa: E402  (light, no backend imports)

# With PyTorch installed, the ``dmxnum`` operator namespace (torch.ops.dmxnum.cast,
# .sparsify, .approximate) exists from here on: graphs name formats, and saved
# ExportedPrograms that use them load after ``import dmxnum``.
if importlib.util.find_spec("torch") is not None:
    from . import torch_ops  # noqa: E402,F401
