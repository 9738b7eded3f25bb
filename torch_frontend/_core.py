"""Thin calls into the dmxnum core (the frontend holds no numerics)."""

from __future__ import annotations

from typing import Any

import torch

import dmxnum
from dmxnum.errors import ConfigError
from dmxnum.formats import Same


def cast(x: Any, fmt: Any, key: Any = None, where: str | None = None) -> Any:
    """``dmxnum.cast(x, fmt)`` on a floating tensor; ``x`` itself for SAME/None/non-float.

    ``where`` (``"<module>: <slot>"``) turns a cast that cannot apply to
    ``x`` (a block axis ``x`` lacks, ...) into a ``ConfigError`` naming it.
    """
    if fmt is None or isinstance(fmt, Same):
        return x
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        return x
    if where is None:
        return dmxnum.cast(x, fmt, key=key if fmt.stochastic else None)
    try:
        return dmxnum.cast(x, fmt, key=key if fmt.stochastic else None)
    except (ValueError, IndexError) as err:
        raise ConfigError(
            f"{where} = {str(fmt)!r} cannot apply to a tensor of shape {tuple(x.shape)}: {err}"
        ) from err


def sparsify(w: torch.Tensor, spec: Any, key: Any = None) -> torch.Tensor:
    """``dmxnum.sparsify(w, spec)`` (scores |w|); ``w`` itself for DENSE/None."""
    if spec is None or str(spec) == "DENSE":
        return w
    return dmxnum.sparsify(w, spec, key=key)


def approximate(x: torch.Tensor, spec: Any, **args: Any) -> torch.Tensor:
    """``dmxnum.approximate(x, spec, **args)``."""
    return dmxnum.approximate(x, spec, **args)


def is_none_logic(spec: Any) -> bool:
    """True when no approximation is configured (None or ``NONE``)."""
    return spec is None or str(spec) == "NONE"


def is_same(fmt: Any) -> bool:
    """True when ``fmt`` leaves values unchanged (None or SAME)."""
    return fmt is None or isinstance(fmt, Same)
