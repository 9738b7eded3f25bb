"""``dmxnum.flax.Model``: a Flax Linen module under a dmxnum configuration."""

from __future__ import annotations

import math
from typing import Any, Mapping

import flax.errors
import jax
import jax.numpy as jnp
import numpy as np

from ..config import Report, sqnr_db
from . import primitives
from .configured import Configured, _lookup, _replace, _State
from .session import Record, Session, active

#: the variables collection that holds post-training quantization state (:mod:`dmxnum.flax.ptq`)
PTQ_COLLECTION = "dmx_ptq"

#: Errors of a module that needs concrete values (Python control flow on arrays), or
#: whose apply needs more than its init had (an rng stream, a collection): its names
#: are then recorded without operator sites.
_UNTRACEABLE = (
    jax.errors.ConcretizationTypeError, jax.errors.TracerBoolConversionError,
    jax.errors.TracerArrayConversionError, jax.errors.TracerIntegerConversionError,
    flax.errors.FlaxError,
)


class _Apply:
    """``model.apply`` bound to the configuration current when it was looked up.

    Two of them are equal (and hash alike) exactly when they belong to the
    same model and configuration, so ``jax.jit`` shares compiled code between
    ``jax.jit(model.apply)`` calls of one configuration and never across a
    ``transform``; a jitted one keeps its configuration for every retrace.
    """

    def __init__(self, model: "Model", state: _State) -> None:
        self._model = model
        self._state = state
        self.__name__ = "apply"
        self.__qualname__ = "Model.apply"
        self.__doc__ = Model.apply.__doc__

    def __call__(self, variables: Any, *args: Any, rngs: Any = None, **kwargs: Any) -> Any:
        return self._model._run(self._state, variables, args, rngs, kwargs)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Apply) and other._model is self._model and other._state is self._state

    def __hash__(self) -> int:
        return hash((id(self._model), id(self._state)))

    def __repr__(self) -> str:
        return f"<apply of {self._model!r:.60}>"


class Model(Configured):
    """A Flax Linen module with the dmxnum configuration schema (SPEC sections 6, 8).

    ``Model(module)`` wraps ``module`` without changing it. ``init`` and
    ``apply`` have the signatures of ``module.init`` / ``module.apply`` and
    return what they return. Configurable names (module paths joined with
    ``.``, and ``<path>.<op>_<i>`` for functional calls) are recorded by every
    ``init``, ``apply`` or ``trace`` call; a ``transform`` before any is kept
    pending and validated by the first of them.
    ``configuration`` holds the parsed configuration, ``dmx_config`` its YAML.

    With an empty configuration ``apply`` is ``module.apply`` (bitwise
    identical outputs and gradients). ``model.apply`` is bound to the
    configuration of the moment it is looked up: ``jax.jit(model.apply)``
    after a ``transform`` uses the new configuration, and a function jitted
    before keeps the old one, for every input shape.
    """

    def __new__(cls, module: Any = None, *args: Any, **kwargs: Any) -> Any:
        from .nnx_model import NnxModel, is_nnx_module

        if cls is Model and is_nnx_module(module):  # an NNX module: its own wrapper
            return NnxModel(module, *args, **kwargs)
        return super().__new__(cls)

    def __init__(self, module: Any) -> None:
        import flax.linen as nn

        if not isinstance(module, nn.Module):
            raise TypeError(
                f"dmxnum.flax.Model wraps a flax.linen.Module or a flax.nnx.Module, got {type(module).__name__}"
            )
        self.module = module
        self._init_configuration()

    #: what records the names, for ``repr`` of a pending configuration
    _RECORDED_BY = "model.init/trace/apply"

    # ------------------------------------------------------------------ running
    def init(self, rngs: Any, *args: Any, **kwargs: Any) -> Any:
        """``module.init(rngs, *args, **kwargs)``, recording the configurable names.

        Initialization runs the plain module (no casts), so the variables are
        exactly ``module.init``'s; the names (modules, functional calls and
        operator sites, :mod:`dmxnum.flax.primitives`) come from ``module.apply``
        on them, traced to a jaxpr (no compute). A configuration given to ``transform``
        before any name was recorded is validated here (``ConfigError`` if
        invalid; it is then discarded).
        """
        seen: dict[str, Record] = {}
        with active(Session({}, seen)):
            variables = self.module.init(rngs, *args, **kwargs)
        self._record_from_apply(variables, rngs, args, kwargs, seen)
        self._resolve(self._state, stacklevel=4)
        return variables

    def trace(self, *args: Any, rngs: Any = None, **kwargs: Any) -> dict[str, tuple[str, ...]]:
        """Record the configurable names from example inputs, without computing.

        Runs ``module.init`` under ``jax.eval_shape`` and traces ``module.apply``
        on its result to a jaxpr (shapes only, no compute); ``rngs``
        defaults to ``jax.random.key(0)``. Validates a pending configuration
        (as :meth:`init`). Returns :meth:`dmx_module_names`.
        """
        rngs = jax.random.key(0) if rngs is None else rngs
        seen: dict[str, Record] = {}
        with active(Session({}, seen)):
            variables = jax.eval_shape(lambda: self.module.init(rngs, *args, **kwargs))
        self._record_from_apply(variables, rngs, args, kwargs, seen)
        self._resolve(self._state, stacklevel=4)
        return self.dmx_module_names()

    @property
    def apply(self) -> _Apply:
        """``module.apply(variables, *args, rngs=rngs, **kwargs)`` under the configuration.

        Parameters are replaced by effective ones (``cast(sparsify(w))``, with
        straight-through gradients to the float originals) and activations
        are cast at module boundaries and functional calls. Stochastic formats
        draw from ``rngs["dmx"]`` (a JAX key); the other streams reach the
        module unchanged. The callable is bound to the configuration current
        when ``model.apply`` is looked up (see :class:`Model`). Each run
        (each trace under ``jax.jit``) counts the configured slots that ran and
        emits a ``SlotNotAppliedWarning`` for each one that did not.
        """
        return _Apply(self, self._state)

    #: ``model(variables, *args, **kwargs)`` is ``model.apply(...)``.
    __call__ = apply

    def effective_variables(self, variables: Any, rngs: Any = None) -> Any:
        """The variables the module computes with: configured weights ``cast(sparsify(w))``
        and biases ``cast(b)`` (new dicts along changed paths; the rest shared).

        A module whose ``accum_format`` splits the bias add keeps its cast bias
        here (``apply`` adds it after the accumulation cast). ``rngs``: as for
        :meth:`apply` (``rngs["dmx"]`` for stochastic weight formats).
        """
        config = self._current_config()
        session = self._session(config, variables, rngs)
        out = self._effective_variables(variables, session, config)
        if not session.biases:
            return out
        changes = {}
        for name, b in session.biases.items():
            rec = self._records[name]
            changes[rec.path + (rec.info.bias,)] = b
        out = dict(out)
        out["params"] = _replace(out["params"], changes)
        return out

    def _run(
        self, state: _State, variables: Any, args: tuple, rngs: Any, kwargs: dict,
        capture: dict[str, list] | None = None,
    ) -> Any:
        """One apply with configuration ``state`` (``capture``: collect every output)."""
        self._prepare(state, variables, args, rngs, kwargs)
        config = state.config
        if not config and capture is None:
            if self._records:
                return self.module.apply(variables, *args, rngs=rngs, **kwargs)
            try:
                self._record_apply(variables, args, rngs, kwargs)
            except _UNTRACEABLE:
                pass  # as in init: the concrete run records all but the operator sites
            with active(Session({}, self._records)):
                return self.module.apply(variables, *args, rngs=rngs, **kwargs)
        session = self._session(config, variables, rngs)
        session.capture = capture
        out = self._apply_in(session, variables, args, rngs, kwargs)
        if config:
            self._audit(state, session)
        return out

    def _prepare(self, state: _State, variables: Any, args: tuple, rngs: Any, kwargs: dict) -> None:
        """Resolve a pending configuration ``state``, recording the names first
        (from a traced plain apply, no compute) when none are."""
        if state.pending:
            if not self._records:
                self._record_apply(variables, args, rngs, kwargs)
            self._resolve(state, stacklevel=6)

    def _record_from_apply(self, variables: Any, rngs: Any, args: tuple, kwargs: dict, seen: dict) -> None:
        """Record the names of ``init(rngs, *args, **kwargs)`` from a traced apply on the
        ``variables`` it made (every collection mutable, ``rngs`` as the init's ``params``
        stream), since operator sites are named as ``apply`` will meet them. A module that
        cannot be traced or applied so keeps ``seen``, the names its init recorded, without
        operator sites."""
        rngs = rngs if isinstance(rngs, Mapping) else {"params": rngs}
        kwargs = {**kwargs, "mutable": True}
        try:
            self._record_apply(variables, args, rngs, kwargs)
        except _UNTRACEABLE:
            for name, rec in seen.items():
                self._records.setdefault(name, rec)

    def _record_apply(self, variables: Any, args: tuple, rngs: Any, kwargs: dict) -> None:
        """Record the names from one plain apply (traced only, no compute)."""
        module = self.module
        primitives.record(
            self._records, lambda c, d: module.apply(c[0], *d[0], rngs=c[1], **d[1]),
            (_without_ptq(variables), rngs), (args, kwargs),
        )

    def _session(self, config: dict, variables: Any, rngs: Any) -> Session:
        """A session for one configured run on ``variables`` (its ``dmx_ptq`` collection included)."""
        key = rngs.get("dmx") if isinstance(rngs, Mapping) else None
        session = Session(config, self._records, key)
        if isinstance(variables, Mapping):
            session.ptq = variables.get(PTQ_COLLECTION)
        return session

    def _apply_in(self, session: Session, variables: Any, args: tuple, rngs: Any, kwargs: dict) -> Any:
        """``module.apply`` within ``session``: effective parameters, the ``dmx_ptq``
        collection removed (the module never sees it)."""
        if primitives.needed(session, self._records):  # operator sites: through the interpreter
            return primitives.run(session, self._apply_plain(session), variables, args, rngs, kwargs)
        return self._apply_plain(session)(variables, args, rngs, kwargs)

    def _apply_plain(self, session: Session) -> Any:
        def body(variables: Any, args: tuple, rngs: Any, kwargs: dict) -> Any:
            variables = self._effective_variables(_without_ptq(variables), session, session.config)
            with active(session):
                return self.module.apply(variables, *args, rngs=rngs, **kwargs)

        return body

    def dmx_report(self, variables: Any = None, *args: Any, reference: bool = False, **kwargs: Any) -> Report:
        """What the configuration did: one row per configured module or op.

        Each row (:class:`dmxnum.config.ReportRow`) lists the slots configured
        (no-op values excluded), those applied in the last apply trace of the
        current configuration, the formats and the bits per element. With
        ``variables`` and the model's inputs (``*args``, ``**kwargs`` as for
        :meth:`apply`), the model runs once (eagerly) first. With
        ``reference=True`` it also runs the unconfigured module on the same
        inputs and reports, per module and per call, the SQNR in dB
        (:func:`dmxnum.config.sqnr_db`) of the configured model's output of
        that module against the unconfigured model's, end to end (``inf``:
        identical). With ``variables``, each row's ``ptq`` lists the
        post-training quantization state they hold for the module
        (``input_scale``, ``weight_scale``, ``gptq``).
        """
        state = self._state
        sqnr: dict[str, tuple[float, ...]] = {}
        if variables is None:
            if reference:
                raise ValueError("dmx_report(reference=True) needs the variables and the model's inputs")
        else:
            rngs = kwargs.pop("rngs", None)
            got: dict[str, list] = {}
            self._run(state, variables, args, rngs, kwargs, capture=got)
            if reference:
                plain: dict[str, list] = {}
                self._run(_State(), variables, args, rngs, kwargs, capture=plain)
                sqnr = {
                    n: tuple(_output_sqnr(r, a) for r, a in zip(plain.get(n, ()), got.get(n, ())))
                    for n in state.config
                }
        from .ptq import ptq_state

        held = ptq_state(self, variables) if variables is not None else {}
        return self._report(state, sqnr, held)

def _output_sqnr(reference: Any, actual: Any) -> float:
    """:func:`sqnr_db` over the floating leaves of two outputs (NaN when they do not match)."""
    def leaves(tree: Any) -> list[np.ndarray]:
        return [
            np.ravel(np.asarray(x, dtype=np.float64)) for x in jax.tree_util.tree_leaves(tree)
            if hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jnp.floating)
        ]

    ref, act = leaves(reference), leaves(actual)
    if not ref or [r.shape for r in ref] != [a.shape for a in act]:
        return math.nan
    return sqnr_db(np.concatenate(ref), np.concatenate(act))


def _without_ptq(variables: Any) -> Any:
    """``variables`` without the ``dmx_ptq`` collection (a new dict when it had one)."""
    if isinstance(variables, Mapping) and PTQ_COLLECTION in variables:
        return {k: v for k, v in variables.items() if k != PTQ_COLLECTION}
    return variables


