"""``dmxnum.flax.Model``: a Flax Linen module under a dmxnum configuration."""

from __future__ import annotations

import math
import warnings
from typing import Any, Mapping

import flax.errors
import jax
import jax.numpy as jnp
import numpy as np

from ..config import (
    RULES_KEY, ConfigRule, Report, apply_rules, audit_message, audited_slots, canonical_instance,
    check_fits, make_row, parse_config, selects_nothing, slots_of, sqnr_db, to_yaml,
)
from ..errors import ConfigError, ConfigWarning, SlotNotAppliedWarning
from ..formats.same import Same
from . import primitives, registry
from .layouts import torch_shape, translate
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

_NO_NAMES = (
    "no configurable names recorded yet: call model.init(...), model.trace(...) "
    "or model.apply(...) on example inputs first"
)


class _State:
    """One configuration of a model; every ``transform`` makes a new one.

    ``config``: name -> {slot: value}, never changed once resolved;
    ``pending``: ``(parsed file, rules)`` pairs given to ``transform`` before
    any name was recorded, validated and merged in order at the first
    ``init`` / ``trace`` / ``apply``; ``warned``: ``(name, slot)`` already
    reported as not applied; ``traces``: apply traces run with it.
    """

    def __init__(self, config: dict | None = None, pending: tuple = ()) -> None:
        self.config: dict[str, dict[str, Any]] = config or {}
        self.pending = pending
        self.warned: set[tuple[str, str]] = set()
        self.traces = 0


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


class Model:
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

    def __init__(self, module: Any) -> None:
        import flax.linen as nn

        if not isinstance(module, nn.Module):
            raise TypeError(
                f"dmxnum.flax.Model wraps a flax.linen.Module, got {type(module).__name__}"
            )
        self.module = module
        self._records: dict[str, Record] = {}
        self._state = _State()
        self._last: tuple[_State, dict[str, set[str]]] | None = None

    def __repr__(self) -> str:
        head = f"dmxnum.flax.Model({type(self.module).__name__}"
        state = self._state
        if state.pending:
            return head + ", configuration pending until model.init/trace/apply records the names)"
        if not state.config:
            return head + ", nothing configured)"
        return head + f", {len(state.config)} configured)\n" + str(self.dmx_report())

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

    # ------------------------------------------------------------------ configuration
    def transform(self, config_or_path: Any = None, *rules: Any) -> "Model":
        """Apply a configuration file (or YAML text / mapping / None), then each rule; return the model.

        ``transform(rule)`` with a :class:`ConfigRule` as the only argument
        applies the rule. Names may be spelled as recorded
        (``layers_0.softmax_0``) or as PyTorch spells them
        (``layers.0.softmax_0``; ``scaled_dot_product_attention_<i>`` for
        ``dot_product_attention_<i>``). Everything is validated first: an
        unknown name (closest names suggested), an unknown slot, a slot the
        module lacks, an ``instance`` mismatch, a malformed value, an unknown
        rule type or a weight/bias format whose block axis does not exist for
        the parameter (or whose N:M group does not divide it) raises
        ``ConfigError`` and the model is left as it was. A rule that selects
        no module emits a ``ConfigWarning``. Settings merge onto the current
        configuration; a later setting of a slot overrides an earlier one.

        Before any name is recorded (a Linen module has no submodules until it
        runs), the configuration is parsed (malformed values raise at once)
        and kept pending; the first ``init``/``trace``/``apply`` validates it
        and raises ``ConfigError`` there if it is invalid (it is then
        discarded: nothing of it is ever applied in part).
        """
        if isinstance(config_or_path, ConfigRule):
            config_or_path, rules = None, (config_or_path, *rules)
        parsed = {} if config_or_path is None else parse_config(config_or_path)
        rules = tuple(r if isinstance(r, ConfigRule) else ConfigRule.from_mapping(r) for r in rules)
        state = self._state
        if state.pending or not self._records:
            self._state = _State(pending=state.pending + ((parsed, rules),))
            return self
        self._state = _State(self._merge(parsed, rules, state.config, stacklevel=3))
        return self

    @property
    def configuration(self) -> dict[str, dict[str, Any]]:
        """The current configuration: name -> {slot: parsed value} (a copy), in recording order."""
        config = self._current_config()
        order = {n: i for i, n in enumerate(self._records)}
        names = sorted(config, key=lambda n: order.get(n, len(order)))
        return {n: dict(config[n]) for n in names}

    @property
    def dmx_config(self) -> str:
        """The current configuration as YAML text (canonical shorthands), as the PyTorch side exports it.

        Every configured name carries its ``instance`` (the canonical instance
        name, e.g. ``Linear`` for a ``Dense``, so the check holds in both
        frameworks); ``Model(module).transform(text)`` on a recorded model
        reproduces the configuration.
        """
        return to_yaml(self._with_instances(self.configuration))

    def dmx_module_names(self) -> dict[str, tuple[str, ...]]:
        """Every recorded configurable name -> its slots (in application order)."""
        return {n: slots_of(r.kind) for n, r in self._records.items()}

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
        config = self._with_instances(self.configuration)
        applied = self._last[1] if self._last is not None and self._last[0] is state else {}
        from .ptq import ptq_state

        held = ptq_state(self, variables) if variables is not None else {}
        rows = tuple(
            make_row(n, s, tuple(applied.get(n, ())), sqnr.get(n, ()), held.get(n, ())) for n, s in config.items()
        )
        return Report(rows, forwards=state.traces)

    # ------------------------------------------------------------------ internals
    def _modules(self) -> dict[str, tuple[str, str]]:
        return {n: (r.cls, r.kind) for n, r in self._records.items()}

    def _with_instances(self, config: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        out = {}
        for name, slots in config.items():
            rec = self._records.get(name)
            if rec is not None and "instance" not in slots:
                slots = {"instance": canonical_instance(rec.cls), **slots}
            out[name] = slots
        return out

    def _current_config(self) -> dict[str, dict[str, Any]]:
        state = self._state
        if state.pending:
            if not self._records:
                raise ConfigError(f"the configuration is pending: {_NO_NAMES}")
            self._resolve(state, stacklevel=5)
        return state.config

    def _resolve(self, state: _State, stacklevel: int) -> None:
        """Validate and merge a pending configuration now that names are recorded
        (``stacklevel``: of the user's call, for warnings)."""
        if not state.pending:
            return
        try:
            config: dict[str, dict[str, Any]] = {}
            for parsed, rules in state.pending:
                config = self._merge(parsed, rules, config, stacklevel)
        except ConfigError as err:
            if self._state is state:
                self._state = _State()
            raise ConfigError(
                f"{err} [this configuration was given to transform before any name was recorded "
                "and validated by the first init/trace/apply; it was discarded and the model is "
                "unconfigured]"
            ) from None
        state.config = config
        state.pending = ()

    def _merge(self, parsed: dict[str, Any], rules: tuple, base: dict[str, dict[str, Any]], stacklevel: int) -> dict:
        """Validate ``parsed`` and ``rules`` and merge them onto ``base``; warn (``ConfigWarning``,
        pointing ``stacklevel`` frames up) for rules that select nothing."""
        modules = self._modules()
        parsed = self._canonical_keys(parsed, modules)
        config = apply_rules(parsed, rules, modules, base, warn=False)
        self._check_shapes(config)
        for message in selects_nothing(parsed, rules, modules):
            warnings.warn(message, ConfigWarning, stacklevel=stacklevel)
        return config

    def _check_shapes(self, config: dict[str, dict[str, Any]]) -> None:
        """``ConfigError`` for a weight/bias slot whose block axis or N:M group does not fit
        the recorded parameter (checked in PyTorch layout, as :func:`translate` moves it)."""
        for name, slots in config.items():
            rec = self._records.get(name)
            if rec is None or rec.info is None or not rec.shapes:
                continue
            info = rec.info
            shape = rec.shapes.get(info.weight)
            if shape is not None:
                tshape = torch_shape(shape, info.weight_layout, rec.spatial)
                what = f"weight {info.weight!r} (Flax shape {shape}, PyTorch layout {tshape})"
                for slot in ("weight_sparseness", "weight_format"):
                    if slot in slots:
                        check_fits(name, slot, slots[slot], tshape, what)
            shape = rec.shapes.get(info.bias) if info.bias else None
            if shape is not None and "bias_format" in slots:
                check_fits(name, "bias_format", slots["bias_format"], shape, f"bias {info.bias!r}")

    def _audit(self, state: _State, session: Session) -> None:
        """Count the configured slots this run applied; warn once per slot that did not run."""
        state.traces += 1
        applied: dict[str, set[str]] = {}
        for name, slots in state.config.items():
            audited = audited_slots(slots)
            applied[name] = {s for s in audited if (name, s) in session.applied}
            for slot in audited:
                if slot in applied[name] or (name, slot) in state.warned:
                    continue
                state.warned.add((name, slot))
                why = session.why.get((name, slot))
                if why is None and name not in session.called:
                    what = "op" if self._records.get(name, Record("", "")).op else "module"
                    why = f"the {what} was not called"
                warnings.warn(
                    audit_message(name, slot, slots[slot], why or ""), SlotNotAppliedWarning, stacklevel=4
                )
        self._last = (state, applied)

    def _aliases(self) -> dict[str, str]:
        aliases: dict[str, str] = {}
        for name, rec in self._records.items():
            alias = registry.torch_alias(name, rec.op)
            if alias != name and alias not in self._records:
                aliases.setdefault(alias, name)
        return aliases

    def _canonical_keys(self, parsed: dict[str, Any], modules: Mapping[str, Any]) -> dict[str, Any]:
        aliases = self._aliases()
        out: dict[str, Any] = {}
        for name, slots in parsed.items():
            if name == RULES_KEY and isinstance(slots, tuple):
                out[name] = slots
                continue
            canon = aliases.get(name, name)
            if canon not in modules:
                self._explain_unknown(name, modules, aliases)
            merged = dict(out.get(canon, {}))
            merged.update(slots)
            out[canon] = merged
        return out

    def _explain_unknown(self, name: str, modules: Mapping[str, Any], aliases: Mapping[str, str]) -> None:
        from ..config.schema import _suggest

        candidates = list(modules) + list(aliases)
        op = registry.split_op_name(name)
        if op is not None:
            path = aliases.get(op[0], op[0])
            if path == "" or path in modules:
                recorded = [
                    n for n, r in self._records.items() if r.path is None and n.rpartition(".")[0] == path
                ]
                raise ConfigError(
                    f"unknown module name {name!r}: no call of {op[1]!r} number {op[2]} was recorded "
                    f"in {path or 'the top-level module'!r} (recorded there: "
                    f"{', '.join(repr(n) for n in recorded) or 'none'}); functional calls are recorded by "
                    f"model.init/model.trace/model.apply on example inputs (hooked: jax.nn.*, "
                    f"flax.linen activations, dot_product_attention; operator sites: + and * of two "
                    f"activations of the same shape, @ / dot_general of two activations); "
                    f"{_suggest(name, candidates)}"
                )
        raise ConfigError(f"unknown module name {name!r}; {_suggest(name, candidates)}")

    def _effective_variables(self, variables: Any, session: Session, config: dict) -> Any:
        """``variables`` with configured weights/biases replaced (new dicts along changed paths).

        The parameter slots cast here count as applied when their module runs
        (``session.weight_slots``); a configured parameter that is missing is
        recorded in ``session.why``.
        """
        import dmxnum

        if not isinstance(variables, Mapping) or "params" not in variables:
            return variables
        params = variables["params"]
        changes: dict[tuple[str, ...], Any] = {}
        before = set(session.applied)
        for name, slots in config.items():
            rec = self._records.get(name)
            if rec is None or rec.path is None or rec.kind not in registry.WEIGHTED_KINDS:
                continue
            info = rec.info
            node = _lookup(params, rec.path)
            if node is None:
                for slot in ("weight_sparseness", "weight_format", "bias_format"):
                    session.why[(name, slot)] = f"variables['params'] has no entry {'/'.join(rec.path)!r}"
                continue
            sparse = slots.get("weight_sparseness")
            wfmt = slots.get("weight_format")
            if info.weight not in node:
                for slot in ("weight_sparseness", "weight_format"):
                    session.why[(name, slot)] = f"the module has no {info.weight!r} parameter"
            elif sparse is not None or wfmt is not None:
                w = node[info.weight]
                ptq = _lookup(session.ptq, rec.path) if session.ptq is not None else None
                if ptq is not None and info.weight in ptq and wfmt is not None and not isinstance(wfmt, Same):
                    w = ptq[info.weight]  # GPTQ's kernel (dmxnum.flax.gptq): on the grid, cast to itself
                if sparse is not None and str(sparse) != "DENSE":
                    w = _sparsify(dmxnum, w, sparse, info.weight_layout, rec.spatial, name)
                    session.weight_slots.setdefault(name, []).append("weight_sparseness")
                spec = slots.get("weight_scale")
                scale = None
                if spec is not None and not spec.is_none and wfmt is not None and not isinstance(wfmt, Same):
                    scale = session.static_scale(name, rec.path, "weight_scale", spec)
                w = session.cast(
                    w, wfmt, info.weight_layout, name, "weight_format", rec.spatial, scale=scale,
                    scale_slot="weight_scale",
                )
                changes[rec.path + (info.weight,)] = w
            if info.bias is None or info.bias not in node:
                session.why[(name, "bias_format")] = f"the module has no {info.bias or 'bias'!r} parameter"
                continue
            bfmt = slots.get("bias_format")
            accum = slots.get("accum_format")
            split = rec.kind in registry.PRODUCT_KINDS and accum is not None and not isinstance(accum, Same)
            if bfmt is None and not split:
                continue
            b = session.cast(node[info.bias], bfmt, "features", name, "bias_format")
            if split:
                session.biases[name] = b
                b = jnp.zeros_like(b)
            changes[rec.path + (info.bias,)] = b
        for name, slot in session.applied - before:  # applied once the module runs
            session.weight_slots.setdefault(name, []).append(slot)
        session.applied = before
        if not changes:
            return variables
        new = dict(variables)
        new["params"] = _replace(params, changes)
        return new


def _sparsify(dmxnum: Any, w: Any, sparse: Any, layout: str, spatial: int | None, name: str) -> Any:
    try:
        return dmxnum.sparsify(w, translate(sparse, w.ndim, layout, spatial))
    except ConfigError:
        raise
    except ValueError as err:
        raise ConfigError(
            f"{name}: weight_sparseness = {str(sparse)!r} cannot be applied to its weight of Flax "
            f"shape {tuple(w.shape)}: {err}"
        ) from err


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


def _lookup(tree: Any, path: tuple[str, ...]) -> Any:
    for p in path:
        if not isinstance(tree, Mapping) or p not in tree:
            return None
        tree = tree[p]
    return tree if isinstance(tree, Mapping) else None


def _replace(tree: Mapping, changes: dict[tuple[str, ...], Any], prefix: tuple[str, ...] = ()) -> dict:
    out = dict(tree)
    heads = {k[len(prefix)] for k in changes if k[: len(prefix)] == prefix and len(k) > len(prefix)}
    for h in heads:
        key = prefix + (h,)
        if key in changes:
            out[h] = changes[key]
        else:
            out[h] = _replace(tree[h], changes, key)
    return out
