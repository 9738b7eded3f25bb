"""Configuration rules: select modules by type and name, merge slots in order.

``ConfigRule(module_types=("Linear",), name_re=r"attention", config={...})``
selects every module whose type matches one of ``module_types`` (empty: any
type) and whose name contains a match of ``name_re`` (``re.search``; None:
any name). A type matches a module when it equals the module's class name,
its canonical instance name (so ``Dense`` selects a ``torch.nn.Linear`` and
``Linear`` a Flax ``Dense``), or its kind (``linear`` also selects Hugging
Face ``Conv1D``; ``softmax`` selects ``nn.Softmax`` modules and recorded
``F.softmax`` calls alike).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError, ConfigWarning
from .schema import RULES_KEY, _check_module, check_static_scales, closest, is_no_op_value, parse_slots, validate
from .slots import INSTANCE_NAMES, KIND_SLOTS, SLOTS, canonical_instance

_RULE_KEYS = ("module_types", "name_re", "config")


@dataclass(frozen=True, eq=True)
class ConfigRule:
    """Apply ``config`` (slot -> value) to every module the rule selects.

    ``module_types``: a class name, canonical instance name or kind, or a
    sequence of them; empty selects every type. ``name_re``: a regular
    expression searched (``re.search``) in the module name; None selects
    every name. ``config``: slot -> shorthand or parsed value, parsed on
    construction (a malformed value raises ``ConfigError`` at once).
    """

    module_types: tuple[str, ...] = ()
    name_re: str | None = None
    config: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        types = self.module_types
        if isinstance(types, str):
            types = (types,)
        elif isinstance(types, type):
            types = (types.__name__,)
        types = tuple(t.__name__ if isinstance(t, type) else t for t in types)
        for t in types:
            if not isinstance(t, str):
                raise ConfigError(f"rule module_types must be class names or kinds, got {t!r}")
        object.__setattr__(self, "module_types", types)
        if self.name_re is not None:
            if not isinstance(self.name_re, str):
                raise ConfigError(f"rule name_re must be a string, got {self.name_re!r}")
            try:
                re.compile(self.name_re)
            except re.error as err:
                raise ConfigError(
                    f"rule name_re {self.name_re!r} is not a valid regular expression: {err}"
                ) from err
        where = f"rule(module_types={list(types)}, name_re={self.name_re!r})"
        object.__setattr__(self, "config", parse_slots(where, self.config))

    def __hash__(self) -> int:
        return hash((self.module_types, self.name_re, tuple(self.config.items())))

    @classmethod
    def from_mapping(cls, raw: Any, where: str = "rule") -> "ConfigRule":
        """A rule from a mapping with keys ``module_types``, ``name_re``, ``config``."""
        if not isinstance(raw, Mapping):
            raise ConfigError(
                f"{where}: a rule must be a mapping with keys {', '.join(_RULE_KEYS)}, got {raw!r}"
            )
        for key in raw:
            if key not in _RULE_KEYS:
                import difflib

                near = difflib.get_close_matches(str(key), _RULE_KEYS, n=1, cutoff=0.4)
                hint = f"; did you mean {near[0]!r}?" if near else ""
                raise ConfigError(
                    f"{where}: unknown rule key {key!r} (valid: {', '.join(_RULE_KEYS)}){hint}"
                )
        types = raw.get("module_types", ())
        if types is None:
            types = ()
        return cls(module_types=types, name_re=raw.get("name_re"), config=raw.get("config") or {})

    def to_plain(self) -> dict[str, Any]:
        """The rule as plain YAML data (values as canonical shorthands)."""
        plain: dict[str, Any] = {}
        if self.module_types:
            plain["module_types"] = list(self.module_types)
        if self.name_re is not None:
            plain["name_re"] = self.name_re
        plain["config"] = {s: str(v) for s, v in self.config.items()}
        return plain

    def selects(self, name: str, cls: str, kind: str) -> bool:
        """True when the module ``name`` of class ``cls`` and ``kind`` is selected."""
        if self.module_types:
            own = {cls, canonical_instance(cls), kind}
            wanted = set(self.module_types) | {canonical_instance(t) for t in self.module_types}
            if not own & wanted:
                return False
        return self.name_re is None or re.search(self.name_re, name) is not None

    def select(self, modules: Mapping[str, tuple[str, str]]) -> list[str]:
        """The names in ``modules`` this rule selects, in ``modules`` order."""
        return [n for n, (cls, kind) in modules.items() if self.selects(n, cls, kind)]

    def describe(self) -> str:
        """``ConfigRule(module_types=[...], name_re=...)`` as text for messages."""
        return f"rule(module_types={list(self.module_types)}, name_re={self.name_re!r})"

    def check_types(self, modules: Mapping[str, tuple[str, str]]) -> None:
        """Raise ``ConfigError`` for a type name that is neither a kind, nor a
        canonical instance name, nor the class name of a module in ``modules``
        (a typo such as ``"Linaer"`` would otherwise select nothing)."""
        known = set(KIND_SLOTS) | set(INSTANCE_NAMES) | set(INSTANCE_NAMES.values())
        here = {cls for cls, _ in modules.values()}
        for t in self.module_types:
            if t in known or t in here:
                continue
            valid = sorted(here | {canonical_instance(c) for c in here} | {k for _, k in modules.values()})
            near = closest(t, set(valid) | known)
            hint = f"; did you mean {', '.join(map(repr, near))}?" if near else ""
            raise ConfigError(
                f"{self.describe()}: module type {t!r} is not a kind, an instance name or a "
                f"class in this model{hint} (types in this model: {', '.join(valid)})"
            )

    def check(self, modules: Mapping[str, tuple[str, str]]) -> None:
        """Raise ``ConfigError`` for an unknown type name (see
        :meth:`check_types`) or if a selected module lacks one of the rule's
        slots. A rule that selects no module is not an error here (one file
        may serve several models); :func:`apply_rules` warns about it.
        """
        self.check_types(modules)
        for name in self.select(modules):
            cls, kind = modules[name]
            where = f"rule(module_types={list(self.module_types)}, name_re={self.name_re!r})"
            try:
                _check_module(where, self.config, cls, kind, name)
            except ConfigError as err:
                raise ConfigError(
                    f"{err} (narrow the rule with module_types or name_re)"
                ) from None


def _as_rule(rule: Any) -> ConfigRule:
    if isinstance(rule, ConfigRule):
        return rule
    return ConfigRule.from_mapping(rule)


def _merge(
    into: dict[str, dict[str, Any]],
    name: str,
    slots: Mapping[str, Any],
    modules: Mapping[str, tuple[str, str]],
) -> None:
    allowed = KIND_SLOTS.get(modules[name][1], KIND_SLOTS["module"]) if name in modules else SLOTS
    merged = dict(into.get(name, {}))
    # a no-op value on a slot the module lacks (mltools files list every
    # slot on every module) is accepted and changes nothing
    merged.update({s: v for s, v in slots.items() if s in allowed or not is_no_op_value(s, v)})
    into[name] = {s: merged[s] for s in SLOTS if s in merged}


def selects_nothing(
    config: Mapping[str, Any], rules: Any, modules: Mapping[str, tuple[str, str]]
) -> list[str]:
    """Why a configuration probably does not do what was meant: one message
    per rule of ``rules`` that selects no module in ``modules``, plus one when
    ``config`` (a file) holds rules and configures nothing as a whole."""
    out = [
        f"{r.describe()} selects no module of this model"
        for r in (_as_rule(r) for r in rules)
        if not r.select(modules)
    ]
    file_rules = config.get(RULES_KEY) if isinstance(config.get(RULES_KEY), tuple) else ()
    entries = [n for n in config if not (n == RULES_KEY and isinstance(config[n], tuple))]
    if file_rules and not entries and not any(r.select(modules) for r in file_rules):
        out.append(
            f"the configuration's {len(file_rules)} rule(s) select no module of this model"
        )
    return out


def apply_rules(
    config: Mapping[str, Any],
    rules: Any,
    modules: Mapping[str, tuple[str, str]],
    base: Mapping[str, Mapping[str, Any]] | None = None,
    warn: bool = True,
) -> dict[str, dict[str, Any]]:
    """Merge a parsed configuration and rules into per-module slots.

    Starting from ``base`` (an already effective per-module configuration,
    default empty), apply the entries of ``config`` in order — a module entry
    sets its slots, a ``rules`` entry applies its rules in order to every
    module they select — then each of ``rules`` in order. A later setting of
    a slot overrides an earlier one. Everything is validated first (see
    :func:`~dmxnum.config.schema.validate`); on error nothing is returned
    and the inputs are not modified. Returns ``{name: {slot: value}}`` with
    slots in ``SLOTS`` order, holding only modules that have a slot set.
    A no-op value (``SAME``, ``NONE``, ``DENSE``) on a slot the module lacks
    is dropped. With ``warn`` a ``ConfigWarning`` is emitted for each
    message of :func:`selects_nothing`.
    """
    rules = tuple(_as_rule(r) for r in rules)
    validate(config, modules)
    for rule in rules:
        rule.check(modules)
    out: dict[str, dict[str, Any]] = {n: dict(s) for n, s in (base or {}).items()}
    for name, slots in config.items():
        if name == RULES_KEY and isinstance(slots, tuple):
            for rule in slots:
                for target in rule.select(modules):
                    _merge(out, target, rule.config, modules)
            continue
        _merge(out, name, slots, modules)
    for rule in rules:
        for target in rule.select(modules):
            _merge(out, target, rule.config, modules)
    check_static_scales(out)
    if warn:
        for message in selects_nothing(config, rules, modules):
            warnings.warn(message, ConfigWarning, stacklevel=3)
    return {n: s for n, s in out.items() if s}


def slots_of(kind: str) -> tuple[str, ...]:
    """The slots of a module kind, in ``SLOTS`` order (``module`` for unknown kinds)."""
    allowed = KIND_SLOTS.get(kind, KIND_SLOTS["module"])
    return tuple(s for s in SLOTS if s in allowed)
