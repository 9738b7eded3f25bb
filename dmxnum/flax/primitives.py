"""Operator sites: ``+``, ``*`` and ``@`` between activations, found in the jaxpr.

JAX has no hook for operators: ``x + y`` binds the ``add`` primitive
directly. The frontend therefore traces a wrapped run to a jaxpr
(``jax.make_jaxpr``) while its session has ``scopes`` on, so that every module
method call runs under a ``jax.named_scope`` token of its own and everything
the frontend itself computes (casts, approximations, hooked ops) under the
opaque scope (:mod:`dmxnum.flax.session`). Every equation's name stack then
says which module method's own body made it. :func:`find_sites` lists the
*operator sites* of the jaxpr and :func:`evaluate` binds every equation of it
unchanged, except that a configured site's operands and result are cast
(``Session.cast``, the calls the PyTorch frontend makes). The interpreter runs
while JAX traces, so under ``jax.jit`` the compiled function holds the same
equations as a hand-written model with the same casts; it composes with
``jax.grad`` (casts are straight-through), ``jax.vmap`` and sharding, since
each equation is bound under whatever transformation is running.

A site is an equation

* in the own body of a method of a module of kind ``module`` (a user module,
  the top-level one included; the internals of a Flax layer such as a
  ``Dense`` bias add or a ``LayerNorm``'s ``var + eps`` are its
  implementation), outside the opaque scope (a hooked op such as
  ``jax.nn.gelu`` is one op);
* whose two operands are floating arrays that both derive from the run's
  inputs (the positional and keyword arguments of ``apply``, or an array the
  module captures, such as a rotary table): not literals (``x * 0.5``,
  ``jnp.ones_like(x)``), and not computed from the variables or rngs alone;
* ``add`` or ``mul`` with operands of the same shape (op ``add``, ``mul``;
  ``x + bias``, which broadcasts, and ``x * 0.5`` are not sites), or
  ``dot_general`` (op ``matmul``: ``@``, ``jnp.matmul``, ``jnp.einsum``).

Sites are named ``<module path>.<op>_<i>``, ``i`` counting that op's sites in
that method call's own body in equation order (which is call order), as the
hooked ops are counted. The equations of a ``jax.jit`` function called in a
body belong to that body; other higher-order primitives (``custom_jvp`` /
``custom_vjp`` functions, ``scan``, ``cond``, ``while``, ``remat``) are opaque.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Iterable

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend import core as jcore
from jax.extend import source_info_util

from . import registry
from .session import FRAME_SCOPE, OPAQUE_SCOPE, Record, Session, active

#: Slot of each operand of a site's op (the PyTorch frontend's: input = first operand,
#: residual = second operand of ``+``, multiplier = second operand of ``*`` and ``@``).
OPERAND_SLOTS = {
    "add": ("input_format", "residual_format"),
    "mul": ("input_format", "multiplier_format"),
    "matmul": ("input_format", "multiplier_format"),
}

_TOKEN = re.compile(rf"({re.escape(FRAME_SCOPE)}\d+|{re.escape(OPAQUE_SCOPE)})")
_CALLS = frozenset({"jit", "pjit", "closed_call", "core_call"})

# A marker equation for recording traces only (never evaluated, never lowered):
# ``dmx_mark[index=k]`` stands where the k-th name of the trace was recorded.
_MARK = jcore.Primitive("dmx_mark")
_MARK.multiple_results = True
_MARK.def_abstract_eval(lambda **_: [])
_MARK.def_impl(lambda **_: [])


def mark(index: int) -> None:
    """Bind the marker of the ``index``-th recorded name (recording traces only)."""
    _MARK.bind(index=index)


class Site:
    """One operator site: its configurable ``name``, ``op`` and the path of
    equation indices (through inlined ``jit`` calls) where it is."""

    __slots__ = ("name", "op", "where")

    def __init__(self, name: str, op: str, where: tuple[int, ...]) -> None:
        self.name, self.op, self.where = name, op, where

    def __repr__(self) -> str:
        return f"Site({self.name!r}, {self.op!r}, {self.where})"


def _sub_jaxpr(eqn: Any) -> Any:
    """The closed jaxpr of a ``jit``-like call equation, else None."""
    if eqn.primitive.name not in _CALLS:
        return None
    sub = eqn.params.get("jaxpr", eqn.params.get("call_jaxpr"))
    if isinstance(sub, jcore.ClosedJaxpr):
        return sub
    if isinstance(sub, jcore.Jaxpr):
        return jcore.ClosedJaxpr(sub, ())
    return None


def _floating(v: Any) -> bool:
    aval = getattr(v, "aval", None)
    return aval is not None and hasattr(aval, "dtype") and jnp.issubdtype(aval.dtype, jnp.floating)


def find_sites(
    closed: Any, data: Iterable[bool], scopes: dict[str, tuple[str, bool]]
) -> tuple[list[Site], list[tuple[str, Any]]]:
    """The operator sites of a traced run, in equation order, and its events.

    ``data``: per input of ``closed``, whether it is a run input (an argument of
    ``apply``); ``scopes``: the session's scope tokens (token -> (module path,
    whether its own body's operators are sites)). Events: ``("mark", k)`` for the
    marker of the k-th recorded name, ``("site", name)`` for a site, in order.
    """
    sites: list[Site] = []
    events: list[tuple[str, Any]] = []
    counts: dict[tuple[str, str], int] = {}
    _walk(closed.jaxpr, list(data), (), (), scopes, sites, events, counts)
    return sites, events


def _walk(jaxpr, data_in, prefix, where, scopes, sites, events, counts) -> list[bool]:
    # captured array constants (a module attribute, a rotary table) count as run inputs,
    # as PyTorch counts ``q * cos`` with a buffer; literals and values computed from
    # literals alone (``jnp.ones_like(x)``) do not
    derived = {v for v, d in zip(jaxpr.invars, data_in) if d} | set(jaxpr.constvars)

    def is_data(v: Any) -> bool:
        return not isinstance(v, jcore.Literal) and v in derived

    for idx, eqn in enumerate(jaxpr.eqns):
        if eqn.primitive is _MARK:
            events.append(("mark", eqn.params["index"]))
            continue
        ins = [is_data(v) for v in eqn.invars]
        tokens = prefix + tuple(_TOKEN.findall(str(eqn.source_info.name_stack)))
        sub = _sub_jaxpr(eqn)
        if sub is not None:
            outs = _walk(sub.jaxpr, ins, tokens, where + (idx,), scopes, sites, events, counts)
            derived.update(v for v, d in zip(eqn.outvars, outs) if d)
            continue
        if any(ins):
            derived.update(eqn.outvars)
        info = registry.SITE_OPS.get(eqn.primitive.name)
        if info is None or OPAQUE_SCOPE in tokens or len(eqn.invars) != 2 or not all(ins):
            continue
        frame = next((t for t in reversed(tokens) if t in scopes), None)
        if frame is None:
            continue
        path, counted = scopes[frame]
        a, b = eqn.invars
        if not counted or not (_floating(a) and _floating(b)):
            continue
        if info.op != "matmul" and tuple(a.aval.shape) != tuple(b.aval.shape):
            continue
        i = counts.get((frame, info.op), 0)
        counts[(frame, info.op)] = i + 1
        name = f"{path}.{info.op}_{i}" if path else f"{info.op}_{i}"
        sites.append(Site(name, info.op, where + (idx,)))
        events.append(("site", name))
    return [is_data(v) for v in jaxpr.outvars]


# ---------------------------------------------------------------------- evaluation
def evaluate(closed: Any, sites: list[Site], session: Session, args: list[Any]) -> list[Any]:
    """Evaluate ``closed`` on ``args`` under the current JAX transformation, casting the
    operands and results of the configured ``sites`` (``session.config``)."""
    by_where = {s.where: s for s in sites}
    calls = {s.where[:k] for s in sites for k in range(1, len(s.where))}
    return _eval(closed.jaxpr, closed.consts, args, (), by_where, calls, session)


def _eval(jaxpr, consts, args, where, by_where, calls, session) -> list[Any]:
    env: dict[Any, Any] = {}

    def read(v: Any) -> Any:
        return v.val if isinstance(v, jcore.Literal) else env[v]

    env.update(zip(jaxpr.constvars, consts))
    env.update(zip(jaxpr.invars, args))
    for idx, eqn in enumerate(jaxpr.eqns):
        here = where + (idx,)
        invals = [read(v) for v in eqn.invars]
        if here in calls:  # a jit call holding sites: its equations are evaluated inline
            sub = _sub_jaxpr(eqn)
            outs = _eval(sub.jaxpr, sub.consts, invals, here, by_where, calls, session)
        else:
            site = by_where.get(here)
            if site is None:
                outs = _bind(eqn, invals)
            else:
                outs = [_site(session, site, eqn, invals)]
        for v, o in zip(eqn.outvars, outs):
            if not isinstance(v, jcore.DropVar):
                env[v] = o
    return [read(v) for v in jaxpr.outvars]


def _bind(eqn: Any, invals: list[Any]) -> list[Any]:
    params = eqn.primitive.get_bind_params(eqn.params)
    subfuns: tuple = ()
    if isinstance(params, tuple):  # older JAX: (subfuns, params)
        subfuns, params = params
    name_stack = source_info_util.current_name_stack() + eqn.source_info.name_stack
    ctx = getattr(getattr(eqn, "ctx", None), "manager", None)
    with source_info_util.user_context(eqn.source_info.traceback, name_stack=name_stack):
        if ctx is None:
            out = eqn.primitive.bind(*subfuns, *invals, **params)
        else:
            with ctx:
                out = eqn.primitive.bind(*subfuns, *invals, **params)
    return list(out) if eqn.primitive.multiple_results else [out]


def _site(session: Session, site: Site, eqn: Any, invals: list[Any]) -> Any:
    """One site: its operands cast by their slots, the primitive, its result cast."""
    session.called.add(site.name)
    slots = session.config.get(site.name) or {}
    invals = [
        session.cast(x, slots.get(slot), "features", site.name, slot)
        for x, slot in zip(invals, OPERAND_SLOTS[site.op])
    ]
    (y,) = _bind(eqn, invals)
    y = session.cast(y, slots.get("output_format"), "features", site.name, "output_format")
    return session.captured(site.name, y)


# ---------------------------------------------------------------------- running and recording
def _is_array(x: Any) -> bool:
    return isinstance(x, (jax.Array, np.ndarray, np.generic, jax.ShapeDtypeStruct))


def _trace(session: Session, fn: Callable, context: Any, data: Any) -> tuple:
    """``jax.make_jaxpr`` of ``fn(context, data)`` with ``session``'s scopes on.

    Array leaves of ``context`` and ``data`` are the jaxpr's inputs (those of
    ``data`` are the run inputs); other leaves are static. ``fn`` returns a pytree
    of arrays. Returns ``(closed jaxpr, its inputs, data flags, output tree, scopes)``.
    """
    leaves, tree = jax.tree_util.tree_flatten((context, data))
    n_context = len(jax.tree_util.tree_leaves(context))
    dyn = [i for i, x in enumerate(leaves) if _is_array(x)]

    def traced(*vals: Any) -> Any:
        full = list(leaves)
        for i, v in zip(dyn, vals):
            full[i] = v
        return fn(*jax.tree_util.tree_unflatten(tree, full))

    session.scopes = {}
    try:
        closed, shapes = jax.make_jaxpr(traced, return_shape=True)(*[leaves[i] for i in dyn])
        scopes = session.scopes
    finally:
        session.scopes = None
    flags = [i >= n_context for i in dyn]
    return closed, [leaves[i] for i in dyn], flags, jax.tree_util.tree_structure(shapes), scopes


def needed(session: Session, records: dict[str, Record]) -> bool:
    """Whether a run must go through the interpreter: an operator site is
    configured, or outputs are captured and the model has sites."""
    def is_site(name: str) -> bool:
        rec = records.get(name)
        return rec is not None and rec.path is None and rec.op in OPERAND_SLOTS

    if any(is_site(n) for n in session.config):
        return True
    return session.capture is not None and any(is_site(n) for n in records)


def run(session: Session, body: Callable, variables: Any, args: tuple, rngs: Any, kwargs: dict) -> Any:
    """``body(variables, args, rngs, kwargs)`` (which activates ``session``) with its
    operator sites cast as ``session.config`` says.

    The run is traced to a jaxpr and evaluated by :func:`evaluate`. Values the
    session collects while tracing (captured outputs, calibration inputs, grabbed
    statistics) are returned by the jaxpr and put back in place as the values of
    this run.
    """
    start = {key: len(lst) for key, lst in _collected(session)}
    keys: list[tuple[str, str]] = []

    def fn(context: Any, data: Any) -> Any:
        (variables, rngs), (args, kwargs) = context, data
        out = body(variables, args, rngs, kwargs)
        extra = []
        for key, lst in _collected(session):
            keys.append(key)
            extra.append(list(lst[start.get(key, 0):]))
        return out, extra

    closed, inputs, flags, out_tree, scopes = _trace(session, fn, (variables, rngs), (args, kwargs))
    sites, _ = find_sites(closed, flags, scopes)
    out, extra = jax.tree_util.tree_unflatten(out_tree, evaluate(closed, sites, session, inputs))
    lists = dict(_collected(session))
    for key, values in zip(keys, extra):
        lists[key][start.get(key, 0):] = values
    return out


def _collected(session: Session) -> list[tuple[tuple[str, str], list]]:
    """The lists a session appends traced values to: ``((what, name), list)``."""
    out = []
    for what, table in (("capture", session.capture), ("observe", session.observe)):
        for name, lst in (table or {}).items():
            out.append(((what, name), lst))
    for name, (_, lst) in (session.grab or {}).items():
        out.append((("grab", name), lst))
    return out


def record(records: dict[str, Record], fn: Callable, context: Any, data: Any) -> None:
    """Record the configurable names of one run of ``fn(context, data)`` into ``records``.

    ``fn`` runs the plain module (``module.apply``) and is only traced (shapes, no
    compute; ``jax.ShapeDtypeStruct`` leaves are fine). Module and hooked-op names are recorded as the
    session sees them, operator sites from the jaxpr; new names are added to
    ``records`` in the order the run reaches them.
    """
    found: dict[str, Record] = {}
    session = Session({}, found)
    session.marks = []

    def call(context: Any, data: Any) -> Any:
        with active(session):
            return fn(context, data)

    closed, _, flags, _, scopes = _trace(session, call, context, data)
    sites, events = find_sites(closed, flags, scopes)
    for site in sites:
        info = next(o for o in registry.SITE_OPS.values() if o.op == site.op)
        found.setdefault(site.name, Record(info.op, info.kind, op=info.op))
    for name in _merged(session.marks, events):
        if name not in records:
            records[name] = found[name]


def _merged(marks: list[str], events: list[tuple[str, Any]]) -> list[str]:
    """Recorded names in run order: each marked name at its marker, sites in between
    (a name whose marker is not in the walked jaxpr comes with the next marked one)."""
    out: list[str] = []
    done = 0
    for what, value in events:
        if what == "mark":
            if value >= done:
                out.extend(marks[done:value + 1])
                done = value + 1
        else:
            out.append(value)
    out.extend(marks[done:])
    return out
