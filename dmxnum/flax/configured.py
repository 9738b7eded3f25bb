"""The configuration schema of a wrapped Flax model, shared by Linen and NNX.

:class:`Configured` holds what a wrapped model knows independently of how it
runs: the recorded configurable names (``_records``), the current
configuration (``_state``, a :class:`_State`) and everything that reads or
changes them (``transform``, ``configuration``, ``dmx_config``, validation,
the slot audit). :func:`effective_params` computes one module's effective
weight and bias. ``dmxnum.flax.Model`` (Linen) and
``dmxnum.flax.NnxModel`` run modules on top of it.
"""

from __future__ import annotations

import warnings
from typing import Any, Mapping

import jax.numpy as jnp

from ..config import (
    RULES_KEY, ConfigRule, Report, apply_rules, audit_message, audited_slots, canonical_instance,
    check_fits, make_row, parse_config, selects_nothing, slots_of, to_yaml,
)
from ..errors import ConfigError, ConfigWarning, SlotNotAppliedWarning
from ..formats.same import Same
from . import registry
from .layouts import torch_shape, translate
from .session import Record, Session

_NO_NAMES = (
    "no configurable names recorded yet: call model.trace(...) or run the model on example inputs "
    "first (Linen: model.init(...) or model.apply(...); NNX: model(...))"
)


class _Records(dict):
    """The recorded names (name -> :class:`Record`), in recording order.

    Equal and hashed by identity: an NNX wrapper keeps it as a static attribute,
    and its ``GraphDef`` must stay hashable.
    """

    __hash__ = object.__hash__

    def __eq__(self, other: object) -> bool:
        return self is other

    def __ne__(self, other: object) -> bool:
        return self is not other


class _State:
    """One configuration of a model; every ``transform`` makes a new one.

    ``config``: name -> {slot: value}, never changed once resolved;
    ``pending``: ``(parsed file, rules)`` pairs given to ``transform`` before
    any name was recorded, validated and merged in order at the first
    ``init`` / ``trace`` / ``apply``; ``warned``: ``(name, slot)`` already
    reported as not applied; ``traces``: apply traces run with it;
    ``applied_slots``: name -> the slots the last of them applied (None before
    any).
    """

    def __init__(self, config: dict | None = None, pending: tuple = ()) -> None:
        self.config: dict[str, dict[str, Any]] = config or {}
        self.pending = pending
        self.warned: set[tuple[str, str]] = set()
        self.traces = 0
        self.applied_slots: dict[str, set[str]] | None = None


class Configured:
    """The configuration schema on recorded names (base of the Flax wrappers).

    Subclasses record names into ``_records`` as their module runs and call
    :meth:`_audit` after each configured run.
    """

    _RECORDED_BY = "a run"

    def _init_configuration(self) -> None:
        self._records: dict[str, Record] = _Records()
        self._state = _State()

    def __repr__(self) -> str:
        head = f"dmxnum.flax.Model({type(self.module).__name__}"
        state = self._state
        if state.pending:
            return head + f", configuration pending until {self._RECORDED_BY} records the names)"
        if not state.config:
            return head + ", nothing configured)"
        return head + f", {len(state.config)} configured)\n" + str(self.dmx_report())

    # ------------------------------------------------------------------ configuration
    def transform(self, config_or_path: Any = None, *rules: Any) -> "Configured":
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

    # ------------------------------------------------------------------ internals
    def _report(
        self, state: _State, sqnr: Mapping[str, tuple[float, ...]], held: Mapping[str, tuple[str, ...]] | None = None
    ) -> Report:
        """The report of configuration ``state``: per configured name, the slots the last
        run applied, ``sqnr`` (per call) and ``held`` (PTQ state)."""
        held = held or {}
        applied = state.applied_slots or {}
        config = self._with_instances(self.configuration)
        rows = tuple(
            make_row(n, s, tuple(applied.get(n, ())), sqnr.get(n, ()), held.get(n, ())) for n, s in config.items()
        )
        return Report(rows, forwards=state.traces)

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
        state.applied_slots = applied

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
        """Linen ``variables`` with configured weights/biases replaced (new dicts along
        changed paths; :func:`effective_params` per module)."""
        if not isinstance(variables, Mapping) or "params" not in variables:
            return variables
        params = variables["params"]
        changes: dict[tuple[str, ...], Any] = {}
        before = set(session.applied)
        for name, slots in config.items():
            rec = self._records.get(name)
            if rec is None or rec.path is None or rec.kind not in registry.WEIGHTED_KINDS:
                continue
            node = _lookup(params, rec.path)
            if node is None:
                for slot in ("weight_sparseness", "weight_format", "bias_format"):
                    session.why[(name, slot)] = f"variables['params'] has no entry {'/'.join(rec.path)!r}"
                continue
            ptq = _lookup(session.ptq, rec.path) if session.ptq is not None else None
            for param, value in effective_params(session, name, slots, rec, node, ptq).items():
                changes[rec.path + (param,)] = value
        count_weight_slots(session, before)
        if not changes:
            return variables
        new = dict(variables)
        new["params"] = _replace(params, changes)
        return new


def count_weight_slots(session: Session, before: set) -> None:
    """Move the slots cast since ``before`` (parameters, cast up front) from
    ``session.applied`` to ``session.weight_slots``: they count as applied once
    their module runs."""
    for name, slot in session.applied - before:
        session.weight_slots.setdefault(name, []).append(slot)
    session.applied = before


def effective_params(
    session: Session, name: str, slots: Mapping[str, Any], rec: Record, node: Mapping[str, Any],
    ptq: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The effective parameters of module ``name`` (configured ``slots``): its weight
    ``cast(sparsify(w))`` and bias ``cast(b)``, as ``{parameter name: new value}``.

    ``node``: the module's parameters (name -> array); ``ptq``: its ``dmx_ptq``
    entries (a GPTQ kernel replaces the weight before the cast). A module whose
    ``accum_format`` splits the bias add gets a zero bias here and its cast bias
    in ``session.biases[name]``. A configured parameter the module lacks is
    recorded in ``session.why``.
    """
    import dmxnum

    info = rec.info
    out: dict[str, Any] = {}
    sparse = slots.get("weight_sparseness")
    wfmt = slots.get("weight_format")
    if info.weight not in node:
        for slot in ("weight_sparseness", "weight_format"):
            session.why[(name, slot)] = f"the module has no {info.weight!r} parameter"
    elif sparse is not None or wfmt is not None:
        w = node[info.weight]
        if ptq is not None and info.weight in ptq and wfmt is not None and not isinstance(wfmt, Same):
            w = ptq[info.weight]  # GPTQ's kernel (dmxnum.flax.gptq): on the grid, cast to itself
        if sparse is not None and str(sparse) != "DENSE":
            w = _sparsify(dmxnum, w, sparse, info.weight_layout, rec.spatial, name)
            session.weight_slots.setdefault(name, []).append("weight_sparseness")
        spec = slots.get("weight_scale")
        scale = None
        if spec is not None and not spec.is_none and wfmt is not None and not isinstance(wfmt, Same):
            scale = session.static_scale(name, rec.path, "weight_scale", spec)
        out[info.weight] = session.cast(
            w, wfmt, info.weight_layout, name, "weight_format", rec.spatial, scale=scale,
            scale_slot="weight_scale",
        )
    if info.bias is None or info.bias not in node:
        session.why[(name, "bias_format")] = f"the module has no {info.bias or 'bias'!r} parameter"
        return out
    bfmt = slots.get("bias_format")
    accum = slots.get("accum_format")
    split = rec.kind in registry.PRODUCT_KINDS and accum is not None and not isinstance(accum, Same)
    if bfmt is None and not split:
        return out
    b = session.cast(node[info.bias], bfmt, "features", name, "bias_format")
    if split:
        session.biases[name] = b
        b = jnp.zeros_like(b)
    out[info.bias] = b
    return out


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
