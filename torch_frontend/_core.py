"""Thin calls into the dmxnum core (the frontend holds no numerics).

Every cast, sparsification and approximation goes through the registered
``torch.ops.dmxnum`` ops (``dmxnum.torch_ops``), so that compiled and
exported graphs name the format of every tensor they cast.
"""

from __future__ import annotations

from typing import Any

import torch

import dmxnum.torch_ops  # noqa: F401  (registers torch.ops.dmxnum)
from dmxnum.errors import ConfigError
from dmxnum.formats import Same

from ._words import Words

_OPS = torch.ops.dmxnum


def _words_for(x: torch.Tensor, key: Any) -> torch.Tensor:
    if not isinstance(key, Words):
        raise ConfigError(
            "a stochastic slot ran without the model's randomness: call the wrapped model "
            "(model(x)), which draws the words for each forward"
        )
    return key(x)


def cast(x: Any, fmt: Any, key: Any = None, where: str | None = None, scale: Any = None) -> Any:
    """``dmxnum.cast(x, fmt[, scale=scale])`` on a floating tensor; ``x`` itself
    for SAME/None/non-float. ``scale``: a calibrated static scale (a tensor).

    Stochastic formats take their words from ``key`` (a :class:`Words`).
    ``where`` (``"<module>: <slot>"``) turns a cast that cannot apply to
    ``x`` (a block axis ``x`` lacks, ...) into a ``ConfigError`` naming it.
    """
    if fmt is None or isinstance(fmt, Same):
        return x
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        return x
    words = _words_for(x, key) if fmt.stochastic else None
    if where is None:
        return _OPS.cast(x, str(fmt), scale, words)
    try:
        return _OPS.cast(x, str(fmt), scale, words)
    except (ValueError, IndexError) as err:
        raise ConfigError(
            f"{where} = {str(fmt)!r} cannot apply to a tensor of shape {tuple(x.shape)}: {err}"
        ) from err


def sparsify(w: torch.Tensor, spec: Any, key: Any = None) -> torch.Tensor:
    """``dmxnum.sparsify(w, spec)`` (scores |w|); ``w`` itself for DENSE/None."""
    if spec is None or str(spec) == "DENSE":
        return w
    words = _words_for(w, key) if getattr(spec, "stochastic", False) else None
    return _OPS.sparsify(w, str(spec), None, words)


def approximate(x: torch.Tensor, spec: Any, **args: Any) -> torch.Tensor:
    """``dmxnum.approximate(x, spec, **args)``."""
    shape = args.get("normalized_shape")
    if isinstance(shape, int):
        shape = (shape,)
    positional = [x, str(spec), args.get("axis", -1), None if shape is None else list(shape),
                  args.get("weight"), args.get("bias")]
    if args.get("eps") is not None:
        positional.append(float(args["eps"]))
    return _OPS.approximate(*positional)


def is_none_logic(spec: Any) -> bool:
    """True when no approximation is configured (None or ``NONE``)."""
    return spec is None or str(spec) == "NONE"


def is_same(fmt: Any) -> bool:
    """True when ``fmt`` leaves values unchanged (None or SAME)."""
    return fmt is None or isinstance(fmt, Same)


def tracing() -> bool:
    """True while Dynamo (``torch.compile``) or ``torch.export`` traces the
    forward: identity- and data-pointer-keyed caches must stay out of it."""
    return torch.compiler.is_compiling() or torch.compiler.is_exporting()
