"""Shape checks of slot values against the tensors they will be applied to.

A blocked format or an N:M sparseness names an axis; :func:`check_fits`
tells, before anything runs, whether that axis exists for a tensor of a
given shape (and, for N:M, whether the group size divides it), so that a
frontend can fail at ``transform`` with the module and slot named instead
of deep inside a forward.
"""

from __future__ import annotations

from typing import Any, Sequence

from ..errors import ConfigError


def _axis(value: Any) -> int | None:
    if getattr(value, "blocked", False) or type(value).__name__ == "BlockTopK":
        axis = getattr(value, "axis", None)
        return axis if isinstance(axis, int) else None
    return None


def fit_problem(value: Any, shape: Sequence[int]) -> str | None:
    """Why ``value`` (a format or sparseness) cannot apply to a tensor of
    ``shape``, or None when it can: a block axis outside ``[-ndim, ndim)``,
    or an N:M group ``M`` that does not divide the length of its axis."""
    axis = _axis(value)
    if axis is None:
        return None
    ndim = len(shape)
    if not -ndim <= axis < ndim:
        return f"its block axis {axis} does not exist for a tensor of shape {tuple(shape)} (valid axes: {-ndim}..{ndim - 1})"
    m = getattr(value, "m", None)
    if type(value).__name__ == "BlockTopK" and m and shape[axis] % m:
        return (
            f"its group size M = {m} does not divide axis {axis} of length {shape[axis]} "
            f"(shape {tuple(shape)})"
        )
    return None


def check_fits(name: str, slot: str, value: Any, shape: Sequence[int], what: str = "tensor") -> None:
    """Raise ``ConfigError`` naming module ``name`` and ``slot`` when
    :func:`fit_problem` finds one for ``value`` on a ``what`` of ``shape``."""
    problem = fit_problem(value, shape)
    if problem:
        raise ConfigError(f"{name}: {slot} = {str(value)!r} does not fit its {what}: {problem}")
