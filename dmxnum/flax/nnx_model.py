"""``dmxnum.flax.NnxModel``: a Flax NNX module under a dmxnum configuration.

``dmxnum.flax.Model(module)`` returns one for an ``nnx.Module``. The wrapper
is itself an ``nnx.Module`` whose only child is the wrapped module (and the
optional ``rngs``), so ``nnx.jit``, ``nnx.grad``, ``nnx.vmap``,
``nnx.Optimizer`` and ``nnx.split``/``nnx.merge`` treat it as they treat any
module: its state *is* the wrapped module's state.

A configured call runs a private copy of the module: ``nnx.merge`` of its
current state, with the configured parameters replaced by their effective
values (``cast(sparsify(w))``, straight-through gradients to the float
originals) and every submodule's ``__call__`` running as a frame of the
session (:func:`dmxnum.flax.session.nnx_frames`), which applies the module's
slots and names its functional calls and operator sites exactly as for Linen.
What the call changes in the copy's other state (batch statistics, rng
counts) is written back to the module; the module's structure and parameters
are never changed by the wrapper.
"""

from __future__ import annotations

from typing import Any

from flax import nnx

from ..config import Report
from . import primitives, registry
from .configured import Configured, _State, count_weight_slots, effective_params
from .model import _UNTRACEABLE, _output_sqnr
from .session import Session, active, current, graph_modules, nnx_frames

_KEY_HINT = (
    "give the wrapper a stream named 'dmx': dmxnum.flax.Model(module, rngs=nnx.Rngs(dmx=seed)) "
    "(or hold an nnx.Rngs with a 'dmx' stream in the module)"
)


class NnxModel(nnx.Module, Configured):
    """A Flax NNX module with the dmxnum configuration schema (SPEC sections 6, 8).

    ``model = dmxnum.flax.Model(module, rngs=nnx.Rngs(dmx=0))``;
    ``model.transform("config.yaml")``; ``y = model(x)`` calls the module under
    the configuration. Names are the module's graph paths joined with ``.``
    (attribute names and list indices: ``layers.0.linear``), and
    ``<path>.<op>_<i>`` for functional calls and operator sites; the slots,
    rules and YAML are those of the Linen and PyTorch frontends (block axes in
    PyTorch layouts, translated). Functional calls and operator sites are
    recorded by the first call (or :meth:`trace`), so a ``transform`` before
    it is pending, validated by that call, as for Linen.

    Stochastic formats draw one key per call from the ``dmx`` stream of
    ``rngs`` (else of the first ``nnx.Rngs`` in the module that has one).
    With an empty configuration a call is ``module(*args, **kwargs)``.
    """

    def __init__(self, module: nnx.Module, *, rngs: nnx.Rngs | None = None) -> None:
        if not isinstance(module, nnx.Module):
            raise TypeError(f"dmxnum.flax.NnxModel wraps a flax.nnx.Module, got {type(module).__name__}")
        if rngs is not None and not (isinstance(rngs, nnx.Rngs) and "dmx" in rngs):
            if isinstance(rngs, nnx.Rngs):
                streams = [k for k, v in vars(rngs).items() if isinstance(v, nnx.RngStream)]
                got = f"an nnx.Rngs with streams {', '.join(repr(k) for k in streams) or 'none'}"
            else:
                got = type(rngs).__name__
            raise TypeError(
                f"rngs must be an nnx.Rngs with a stream named 'dmx' (for example nnx.Rngs(dmx=0)), got {got}"
            )
        self.module = module
        self.rngs = rngs
        self._init_configuration()

    #: what records the names, for ``repr`` of a pending configuration
    _RECORDED_BY = "the first call or model.trace"
    __repr__ = Configured.__repr__  # not nnx.Module's tree display

    # ------------------------------------------------------------------ running
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """``module(*args, **kwargs)`` under the configuration.

        Parameters are replaced by effective ones and activations are cast at
        module boundaries, functional calls and operator sites. Each call
        counts the configured slots that ran and emits a
        ``SlotNotAppliedWarning`` for each one that did not.
        """
        state = self._state
        self._prepare(state, args, kwargs)
        if not state.config:
            if not self._records:
                try:
                    self._record(args, kwargs)
                except _UNTRACEABLE:  # a concrete run records all but the operator sites
                    return self._run(state, args, kwargs)
            return self.module(*args, **kwargs)
        return self._run(state, args, kwargs)

    def trace(self, *args: Any, **kwargs: Any) -> dict[str, tuple[str, ...]]:
        """Record the configurable names from example inputs, without computing.

        The module's call is traced to a jaxpr (``jax.ShapeDtypeStruct`` inputs
        are fine); a module that needs concrete values is run once on a copy
        instead (its state is not changed). Validates a pending configuration.
        Returns :meth:`dmx_module_names`.
        """
        try:
            self._record(args, kwargs)
        except _UNTRACEABLE:
            self._run(_State(), args, kwargs, write_back=False)
        self._resolve(self._state, stacklevel=4)
        return self.dmx_module_names()

    def effective_state(self) -> nnx.State:
        """The module's parameters as it computes with them under the configuration
        (``nnx.State`` of ``nnx.Param``; configured weights ``cast(sparsify(w))`` and
        biases ``cast(b)``, the others unchanged). A stochastic parameter format uses
        the next key of the ``dmx`` stream (the key the next call will draw) and
        leaves the stream as it was."""
        config = self._current_config()
        session = self._session(config, advance=False)
        copy = nnx.merge(*nnx.split(self.module))
        modules = graph_modules(copy)
        self._use_effective_params(session, modules, config)
        for name, b in session.biases.items():  # split bias adds: report the cast bias
            rec = self._records[name]
            getattr(modules[rec.path], rec.info.bias).set_value(b)
        return nnx.state(copy, nnx.Param)

    def dmx_report(self, *args: Any, reference: bool = False, **kwargs: Any) -> Report:
        """What the configuration did: one row per configured module or op.

        As ``dmxnum.flax.Model.dmx_report``; with the model's inputs
        (``*args``, ``**kwargs``) it first runs once eagerly (the module's state
        is not changed by these runs), with ``reference=True`` also unconfigured,
        and reports the SQNR of every configured module's and op's output.
        """
        state = self._state
        sqnr: dict[str, tuple[float, ...]] = {}
        if args or kwargs:
            got: dict[str, list] = {}
            self._run(state, args, kwargs, capture=got, write_back=False)
            if reference:
                plain: dict[str, list] = {}
                self._run(_State(), args, kwargs, capture=plain, write_back=False)
                sqnr = {
                    n: tuple(_output_sqnr(r, a) for r, a in zip(plain.get(n, ()), got.get(n, ())))
                    for n in state.config
                }
        elif reference:
            raise ValueError("dmx_report(reference=True) needs the model's inputs")
        return self._report(state, sqnr)

    # ------------------------------------------------------------------ internals
    def _prepare(self, state: _State, args: tuple, kwargs: dict) -> None:
        """Resolve a pending configuration ``state``, recording the names first (from a
        traced call, no compute) when none are."""
        if state.pending:
            if not self._records:
                self._record(args, kwargs)
            self._resolve(state, stacklevel=5)

    def _record(self, args: tuple, kwargs: dict) -> None:
        """Record the names of one plain call (traced only, no compute)."""
        graphdef, st = nnx.split(self.module)

        def fn(context: Any, data: Any) -> Any:
            (st,), (args, kwargs) = context, data
            copy = nnx.merge(graphdef, st)
            with nnx_frames(current(), graph_modules(copy)):
                return copy(*args, **kwargs)

        primitives.record(self._records, fn, (st,), (args, kwargs))

    def _session(self, config: dict, advance: bool = True) -> Session:
        session = Session(config, self._records, self._draw_key(config, advance))
        session.key_hint = _KEY_HINT
        return session

    def _draw_key(self, config: dict, advance: bool = True) -> Any:
        """One key from the ``dmx`` stream when a configured value is stochastic, else None
        (``advance=False``: the next key, the stream's count left as it was)."""
        if not any(getattr(v, "stochastic", False) for slots in config.values() for v in slots.values()):
            return None
        rngs = self.rngs
        if rngs is None:
            rngs = next(
                (n for _, n in nnx.iter_graph(self.module) if isinstance(n, nnx.Rngs) and "dmx" in n), None
            )
        if rngs is None:
            return None
        count = rngs.dmx.count.get_value()
        key = rngs.dmx()
        if not advance:
            rngs.dmx.count.set_value(count)
        return key

    def _run(
        self, state: _State, args: tuple, kwargs: dict, capture: dict | None = None, write_back: bool = True
    ) -> Any:
        """One call under configuration ``state`` on a private copy of the module; its
        changed state is written back to the module unless ``write_back`` is false."""
        self._prepare(state, args, kwargs)
        config = state.config
        session = self._session(config, advance=write_back)
        session.capture = capture
        graphdef, st = nnx.split(self.module)

        def body(st: Any, args: tuple, _rngs: Any, kwargs: dict) -> Any:
            copy = nnx.merge(graphdef, st)
            modules = graph_modules(copy)
            originals = self._use_effective_params(session, modules, config)
            with active(session), nnx_frames(session, modules):
                y = copy(*args, **kwargs)
            for var, value in originals:  # the module's own parameters go back unchanged
                var.set_value(value)
            return y, nnx.state(copy)

        if primitives.needed(session, self._records):
            y, new = primitives.run(session, body, st, args, None, kwargs)
        else:
            y, new = body(st, args, None, kwargs)
        if write_back:
            nnx.update(self.module, new)
        if config:
            self._audit(state, session)
        return y

    def _use_effective_params(self, session: Session, modules: dict[tuple, nnx.Module], config: dict) -> list:
        """Set the configured parameters of the copy whose modules are ``modules`` (by
        path) to their effective values; return ``(variable, original value)`` pairs."""
        originals = []
        before = set(session.applied)
        for name, slots in config.items():
            rec = self._records.get(name)
            if rec is None or rec.path is None or rec.kind not in registry.WEIGHTED_KINDS:
                continue
            module = modules.get(rec.path)
            if module is None:
                for slot in ("weight_sparseness", "weight_format", "bias_format"):
                    session.why[(name, slot)] = f"the module has no submodule at {name!r}"
                continue
            node = {
                p: v.get_value() for p in (rec.info.weight, rec.info.bias)
                if p is not None and isinstance(v := getattr(module, p, None), nnx.Variable)
            }
            for param, value in effective_params(session, name, slots, rec, node).items():
                var = getattr(module, param)
                originals.append((var, var.get_value()))
                var.set_value(value)
        count_weight_slots(session, before)
        return originals


def is_nnx_module(module: Any) -> bool:
    """Whether ``module`` is a Flax NNX module."""
    return isinstance(module, nnx.Module)


__all__ = ["NnxModel", "is_nnx_module"]
