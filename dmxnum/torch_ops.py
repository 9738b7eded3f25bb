"""The ``dmxnum`` operator namespace of PyTorch: ``torch.ops.dmxnum.cast``,
``torch.ops.dmxnum.sparsify`` and ``torch.ops.dmxnum.approximate``.

Registered when ``dmxnum`` is imported (with PyTorch installed), so that a
graph can name the format of every tensor it casts::

    dmxnum::cast(Tensor x, str fmt, Tensor? scale=None, Tensor? random_bits=None,
                 str gradient="ste", str? path=None) -> Tensor
    dmxnum::sparsify(Tensor w, str spec, Tensor? scores=None,
                     Tensor? random_bits=None) -> Tensor
    dmxnum::approximate(Tensor x, str spec, int axis=-1, int[]? normalized_shape=None,
                        Tensor? weight=None, Tensor? bias=None, float? eps=None) -> Tensor

The schema carries everything that changes the result: the shorthand (as
given; the frontends pass canonical ones, ``str(parse(text))``), the static scale, the random words (int32 or uint32, one per
element) and the gradient rule; ``path`` only chooses how the result is
computed. Each op is ``CompositeImplicitAutograd``: its implementation is
the ordinary ``dmxnum`` call (straight-through gradients included), so

* ``torch.export`` (strict and non-strict) keeps ``dmxnum.cast.default``
  nodes, with the shorthand as a string argument, and
  ``ep.run_decompositions(decompositions())`` keeps them too (the default
  table would inline them into primitive ops);
* ``torch.compile`` (inductor) inlines the kernel and fuses it with its
  neighbours: no opaque call, no eager-speed island;
* a saved ``ExportedProgram`` loads after ``import dmxnum``.

The ops compute exactly what :func:`dmxnum.cast`, :func:`dmxnum.sparsify`
and :func:`dmxnum.approximate` compute on the same arguments; a result that
would be the input itself (``SAME``, ``DENSE``, ``NONE``) is a copy, since a
registered op must not alias its input.
"""

from __future__ import annotations

from typing import Any

import torch

NAMESPACE = "dmxnum"

_SCHEMAS = {
    "cast": (
        "cast(Tensor x, str fmt, Tensor? scale=None, Tensor? random_bits=None, "
        "str gradient=\"ste\", str? path=None) -> Tensor"
    ),
    "sparsify": "sparsify(Tensor w, str spec, Tensor? scores=None, Tensor? random_bits=None) -> Tensor",
    "approximate": (
        "approximate(Tensor x, str spec, int axis=-1, int[]? normalized_shape=None, "
        "Tensor? weight=None, Tensor? bias=None, float? eps=None) -> Tensor"
    ),
}


def _fresh(out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return out.clone() if out is x else out


def _cast(x, fmt, scale=None, random_bits=None, gradient="ste", path=None):
    from .casting import cast

    return _fresh(cast(x, fmt, random_bits=random_bits, gradient=gradient, path=path, scale=scale), x)


def _sparsify(w, spec, scores=None, random_bits=None):
    from .sparsity import sparsify

    return _fresh(sparsify(w, spec, scores, random_bits=random_bits), w)


def _approximate(x, spec, axis=-1, normalized_shape=None, weight=None, bias=None, eps=None):
    from .logics import approximate, parse_logic

    op = parse_logic(spec).op
    shape = None if normalized_shape is None else tuple(normalized_shape)
    if op == "SOFTMAX":
        out = approximate(x, spec, axis=axis)
    elif op == "LAYERNORM":
        out = approximate(x, spec, normalized_shape=shape, weight=weight, bias=bias)
    elif op == "RMSNORM":  # no bias: a given one is approximate()'s TypeError
        extra = {} if bias is None else {"bias": bias}
        out = approximate(x, spec, normalized_shape=shape, weight=weight, eps=eps, **extra)
    else:
        out = approximate(x, spec)
    return _fresh(out, x)


_IMPLS = {"cast": _cast, "sparsify": _sparsify, "approximate": _approximate}
_LIBRARY: list[Any] = []


def register() -> None:
    """Define the three ops in the ``dmxnum`` namespace (idempotent)."""
    if _LIBRARY or hasattr(torch.ops, NAMESPACE) and hasattr(getattr(torch.ops, NAMESPACE), "cast"):
        return
    lib = torch.library.Library(NAMESPACE, "DEF")
    for name, schema in _SCHEMAS.items():
        lib.define(schema)
        lib.impl(name, _IMPLS[name], "CompositeImplicitAutograd")
    _LIBRARY.append(lib)


def ops() -> tuple[Any, ...]:
    """The registered overloads: ``(cast, sparsify, approximate)``."""
    ns = getattr(torch.ops, NAMESPACE)
    return (ns.cast.default, ns.sparsify.default, ns.approximate.default)


def decompositions() -> Any:
    """``torch.export.default_decompositions()`` without the ``dmxnum`` ops:
    ``ep.run_decompositions(decompositions())`` lowers everything else to
    the core ATen set and keeps every ``dmxnum.cast`` (``sparsify``,
    ``approximate``) node, named, in the graph."""
    table = torch.export.default_decompositions()
    for op in ops():
        table.pop(op, None)
    return table


register()
