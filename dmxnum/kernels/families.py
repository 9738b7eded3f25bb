"""Path selection over the family table, and the cast of float32 arrays.

The family table (:mod:`dmxnum.formats.families`) maps each format class to
its family module here; every family module declares ``PATHS``, its kernel
paths in selection order, the last one the exact integer path that always
applies.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np

from .. import _backend as B
from ..formats.base import Format
from ..formats.families import family_entry
from ..formats.grammar import parse
from . import bfp, fp, mxfp, mxint, nvfp4, sbfp, static_scale, xp
from .blocking import normalize_axis
from .paths import Ctx, Path, PathInfo, check_backend

Array = Any
#: kernel module name (the family table's second column) -> module, resolved
#: once: a lookup at cast time must stay traceable by torch.compile
_MODULES: dict[str, ModuleType] = {m.__name__.rsplit(".", 1)[1]: m for m in (bfp, fp, mxfp, mxint, nvfp4, sbfp, xp)}


def family_module(fmt: Any) -> ModuleType:
    """The kernel module of ``fmt``'s family (``TypeError`` for anything else)."""
    return _MODULES[family_entry(fmt)[1]]


def paths_of(fmt: Any) -> tuple[Path, ...]:
    """The kernel paths of ``fmt``'s family, in selection order."""
    return family_module(fmt).PATHS


def path_table(fmt: Any, ctx: Ctx) -> list[PathInfo]:
    """Every path of ``fmt``'s family with whether it applies in ``ctx`` and why (not)."""
    rows = []
    for path in paths_of(fmt):
        reason = path.applies(fmt, ctx)
        rows.append(PathInfo(path.name, reason is None, path.when if reason is None else reason))
    return rows


def choose_path(fmt: Any, ctx: Ctx, name: str | None = None) -> Path:
    """The first path of ``fmt``'s family that applies in ``ctx``, or the path
    called ``name`` (``ValueError`` naming the applicable paths when it does not
    apply or does not exist)."""
    paths = paths_of(fmt)
    if name is None:
        for path in paths:
            if path.applies(fmt, ctx) is None:
                return path
        raise AssertionError(f"no path applies to {fmt}")  # the integer path always does
    applicable = [p.name for p in paths if p.applies(fmt, ctx) is None]
    mode = "compiled" if ctx.compiled and ctx.backend == "torch" else ("eager" if ctx.eager else "jit")
    for path in paths:
        if path.name == name:
            reason = path.applies(fmt, ctx)
            if reason is not None:
                raise ValueError(
                    f"kernel path {name!r} does not apply to {fmt} on {ctx.backend} ({mode}): {reason}; "
                    f"applicable: {', '.join(applicable)}"
                )
            return path
    raise ValueError(
        f"{fmt} has no kernel path {name!r}; its paths: {', '.join(p.name for p in paths)} "
        f"(applicable on {ctx.backend} ({mode}): {', '.join(applicable)})"
    )


def kernel_paths(fmt: Any, backend: str, compiled: bool = False) -> list[PathInfo]:
    """The kernel paths of ``fmt`` on ``backend`` in selection order, as
    ``(name, applies, reason)``; the first that applies is the one ``cast`` runs.

    ``backend`` is ``"numpy"``, ``"jax"`` or ``"torch"``; ``compiled`` means
    ``torch.compile``/``torch.export`` tracing for torch and is ignored for JAX
    (whose casts are always traced) and NumPy. ``reason`` says when a path
    applies, or why it does not. Raises ``ValueError`` for an unknown backend
    and ``TypeError`` for a format without kernels (``SAME``).
    """
    check_backend(backend)
    fmt = parse(fmt) if not isinstance(fmt, Format) else fmt
    ctx = Ctx(backend, backend == "jax" or (backend == "torch" and bool(compiled)))
    return path_table(fmt, ctx)


def cast_float32(
    x: Array, fmt: Any, words: Array | None = None, path: str | None = None, scale: Array | None = None
) -> Array:
    """Cast a float32 array ``x`` to ``fmt`` by the chosen (or the named) path;
    ``words`` are the int32 ``r >> 8`` (JAX: or the raw uint32 words ``r``,
    see :func:`.._backend.as_top24`).

    ``scale``: a float32 array of positive normal values broadcasting to
    ``x`` (checked by :func:`.static_scale.as_scale`), or ``None``. Then the
    result is ``fl32(cast(fl32(x / scale)) * scale)`` (:mod:`.static_scale`;
    the words go to the inner cast unchanged); for ``NVFP4(T)`` the scale is
    the tensor scale ``g``, passed to its kernel as ``scale=``.
    """
    ctx = Ctx.of(x)
    chosen = choose_path(fmt, ctx, path)
    if getattr(fmt, "blocked", False):
        normalize_axis(x.ndim, fmt.axis, fmt)
    if B.size(x) == 0:
        return x
    if chosen.words != "raw":
        words = B.as_top24(words)
    xp_ = B.namespace(x)
    if ctx.backend == "numpy":
        with np.errstate(all="ignore"):  # Inf/NaN arithmetic is intended here
            return _run(chosen, xp_, x, fmt, words, ctx, scale)
    return _run(chosen, xp_, x, fmt, words, ctx, scale)


def _run(chosen: Path, xp_: Any, x: Array, fmt: Any, words: Array | None, ctx: Ctx, scale: Array | None) -> Array:
    if scale is None:
        return chosen.run(xp_, x, fmt, words, ctx)
    if getattr(fmt, "tensor_scale", False):
        return chosen.run(xp_, x, fmt, words, ctx, scale=scale)
    q = static_scale.divide(xp_, x, scale, ctx)
    return static_scale.multiply(xp_, chosen.run(xp_, q, fmt, words, ctx), scale, ctx)
