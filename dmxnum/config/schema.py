"""YAML configuration: parsing, validation against a model, canonical export.

A configuration file is a YAML mapping from module name to a mapping of
slots (see :mod:`dmxnum.config.slots`)::

    conv1:
      instance: Conv2d
      weight_format: BFP[8|8]{64,-1}(SN)
      input_format: BFP[8|8]{64,-1}(SN)

One top-level key is reserved: ``rules``, holding a *list* of rules, each a
mapping with ``module_types`` (class names, canonical instance names or
kinds), ``name_re`` (a regular expression searched in the module name) and
``config`` (slots). It is how a file addresses every module of a type::

    rules:
      - module_types: [linear]
        config:
          weight_format: BFP[8|8]{64,-1}(SN)

Entries apply in file order; a later setting of a slot overrides an earlier
one (see :func:`dmxnum.config.rules.apply_rules`). A module that is itself
named ``rules`` can still be configured: its value is a mapping, not a list.

The data flow is one-directional: text -> :func:`parse_config` (slot values
parsed into format / sparseness / logic values) -> :func:`validate` against
the model's ``modules`` (name -> ``(class name, kind)``) -> a frontend.
"""

from __future__ import annotations

import difflib
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError, ConfigWarning
from .slots import APPROXIMATION_FAMILY, FORMAT_SLOTS, KIND_SLOTS, SCALE_SLOTS, SLOTS, canonical_instance

#: Keys of mltools configuration files that carry no numerics; accepted and
#: ignored (with one ``ConfigWarning`` per configuration).
IGNORED_KEYS = frozenset({"state_dict_url"})

#: slot -> the value that changes nothing (accepted on any module).
NO_OP = {
    "weight_sparseness": "DENSE", "approximation_function": "NONE", "weight_scale": "NONE",
    "input_scale": "NONE",
}


def is_no_op_value(slot: str, value: Any) -> bool:
    """True when ``value`` is ``slot``'s no-op: ``SAME`` for a format slot,
    ``DENSE`` for ``weight_sparseness``, ``NONE`` for ``approximation_function``."""
    if slot in FORMAT_SLOTS:
        return str(value) == "SAME"
    return slot in NO_OP and str(value) == NO_OP[slot]

#: The reserved top-level key holding a file's list of rules.
RULES_KEY = "rules"

#: A parsed configuration: module name -> {slot: parsed value}; the optional
#: ``rules`` key holds a tuple of :class:`~dmxnum.config.rules.ConfigRule`.
Config = dict[str, Any]


def closest(name: str, candidates: Any, n: int = 3) -> list[str]:
    """Up to ``n`` candidates closest to ``name`` (difflib ratio >= 0.4)."""
    return difflib.get_close_matches(name, list(candidates), n=n, cutoff=0.4)


def _suggest(name: str, candidates: Any) -> str:
    near = closest(name, candidates)
    if near:
        return "closest valid names: " + ", ".join(repr(c) for c in near)
    return "valid names: " + ", ".join(repr(c) for c in sorted(candidates)[:12]) + (
        ", ..." if len(list(candidates)) > 12 else ""
    )


def _parser(slot: str):
    import dmxnum

    if slot in FORMAT_SLOTS:
        return dmxnum.parse, "format"
    if slot == "weight_sparseness":
        return dmxnum.parse_sparseness, "sparseness"
    if slot == "approximation_function":
        return dmxnum.parse_logic, "approximation function"
    if slot in SCALE_SLOTS:
        from ..ptq.scale_spec import parse_scale_spec

        return parse_scale_spec, "static scale"
    raise AssertionError(slot)  # pragma: no cover


def parse_value(where: str, slot: str, value: Any) -> Any:
    """Parse one slot value (a shorthand string or an already parsed value).

    ``instance`` stays a string. Format slots go through ``dmxnum.parse``,
    ``weight_sparseness`` through ``dmxnum.parse_sparseness`` and
    ``approximation_function`` through ``dmxnum.parse_logic``; a non-string
    value is parsed from its ``str()`` (so a value of the wrong kind, e.g. a
    format given as a sparseness, is rejected). Errors are ``ConfigError``
    naming ``where`` (the module or rule), the slot and the bad value.
    """
    if slot not in SLOTS:
        raise ConfigError(f"{where}: unknown slot {slot!r}; {_suggest(slot, SLOTS)}")
    if value is None or (isinstance(value, str) and not value.strip()):
        raise ConfigError(f"{where}: slot {slot!r} has no value")
    if slot == "instance":
        if not isinstance(value, str):
            raise ConfigError(
                f"{where}: instance must be a class name string, got {value!r}"
            )
        return value.strip()
    text = value if isinstance(value, str) else str(value)
    parse, what = _parser(slot)
    try:
        parsed = parse(text.strip())
    except (ValueError, TypeError) as err:
        raise ConfigError(
            f"{where}: {slot} = {text!r} is not a valid {what}: {err}"
        ) from err
    if slot == "weight_sparseness" and str(parsed).startswith("BERN"):
        raise ConfigError(
            f"{where}: {slot} = {text!r}: BERN needs keep probabilities (scores), which a "
            "configuration cannot give; call dmxnum.sparsify(w, 'BERN', scores=p, key=...) "
            "instead, or use DENSE, TOPK{density}(G) or BTOPK{K:M,d}(G)"
        )
    return parsed


def parse_slots(where: str, slots: Any) -> dict[str, Any]:
    """Parse a mapping of slots into ``{slot: value}`` ordered as ``SLOTS``."""
    if slots is None:
        return {}
    if not isinstance(slots, Mapping):
        raise ConfigError(
            f"{where}: expected a mapping of slots ({', '.join(SLOTS)}), got {slots!r}"
        )
    parsed = {}
    for slot, value in slots.items():
        if not isinstance(slot, str):
            raise ConfigError(f"{where}: slot names must be strings, got {slot!r}")
        if slot in IGNORED_KEYS:
            continue
        parsed[slot] = parse_value(where, slot, value)
    return {s: parsed[s] for s in SLOTS if s in parsed}


def _load(config_or_path: Any) -> Any:
    if isinstance(config_or_path, Mapping):
        return config_or_path
    if isinstance(config_or_path, os.PathLike):
        path = Path(config_or_path)
    elif isinstance(config_or_path, str):
        text = config_or_path
        looks_like_path = "\n" not in text and text.strip().lower().endswith((".yaml", ".yml"))
        if not looks_like_path:
            try:
                return yaml.safe_load(text)
            except yaml.YAMLError as err:
                raise ConfigError(f"the configuration is not valid YAML: {err}") from err
        path = Path(text.strip())
    else:
        raise ConfigError(
            "a configuration must be a mapping, YAML text or a path to a .yaml/.yml "
            f"file, got {type(config_or_path).__name__}"
        )
    if not path.is_file():
        raise ConfigError(f"configuration file {str(path)!r} does not exist")
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{str(path)!r} is not valid YAML: {err}") from err


def parse_config(config_or_path: Any) -> Config:
    """Read a configuration into ``{module name: {slot: parsed value}}``.

    ``config_or_path`` is a mapping, YAML text, or a path (``str`` ending in
    ``.yaml``/``.yml``, or a ``pathlib.Path``). An empty file is an empty
    configuration. Slot values are parsed (see :func:`parse_value`) and each
    module's slots come back in ``SLOTS`` order; module order is the file's.
    A ``rules`` key holding a list becomes a tuple of ``ConfigRule``.
    Raises ``ConfigError`` for anything malformed (unknown slot, bad value,
    wrong structure), naming the module, the key and the closest valid names.
    Whether the names exist in a model is checked later by :func:`validate`.
    """
    from .rules import ConfigRule

    raw = _load(config_or_path)
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ConfigError(
            f"a configuration must map module names to slot mappings, got {raw!r}"
        )
    config: Config = {}
    ignored = sorted(
        {f"{name}.{key}" for name, slots in raw.items() if isinstance(slots, Mapping)
         for key in slots if key in IGNORED_KEYS}
    )
    for name, slots in raw.items():
        if not isinstance(name, str):
            raise ConfigError(f"module names must be strings, got {name!r}")
        if name == RULES_KEY and isinstance(slots, (list, tuple)):
            config[name] = tuple(
                r if isinstance(r, ConfigRule) else ConfigRule.from_mapping(r, where=f"rules[{i}]")
                for i, r in enumerate(slots)
            )
            continue
        config[name] = parse_slots(name, slots)
    if ignored:
        warnings.warn(
            f"ignored {len(ignored)} mltools key(s) that carry no numerics: "
            + ", ".join(ignored[:4]) + (", ..." if len(ignored) > 4 else "")
            + " (dmxnum loads no state dicts from a configuration)",
            ConfigWarning,
            stacklevel=3,
        )
    return config


def _check_module(
    where: str, slots: Mapping[str, Any], cls: str, kind: str, name: str
) -> None:
    allowed = KIND_SLOTS.get(kind, KIND_SLOTS["module"])
    for slot, value in slots.items():
        if slot not in SLOTS:
            raise ConfigError(f"{where}: unknown slot {slot!r}; {_suggest(slot, SLOTS)}")
        if slot not in allowed:
            if is_no_op_value(slot, value):
                continue  # mltools files list every slot on every module
            valid = [s for s in SLOTS if s in allowed]
            raise ConfigError(
                f"{where}: module {name!r} ({cls}, kind {kind!r}) has no slot {slot!r}; "
                f"its slots are: {', '.join(valid)}"
            )
        if slot == "instance" and canonical_instance(value) != canonical_instance(cls):
            raise ConfigError(
                f"{where}: instance {value!r} does not match module {name!r}, which is a "
                f"{cls} (instance name {canonical_instance(cls)!r})"
            )
        if slot == "approximation_function":
            family = APPROXIMATION_FAMILY.get(kind)
            shorthand = str(value)
            if shorthand != "NONE" and family and not shorthand.startswith(family):
                raise ConfigError(
                    f"{where}: approximation_function {shorthand!r} does not fit module "
                    f"{name!r} of kind {kind!r}; use NONE or a {family}(...) logic"
                )


def check_static_scales(merged: Mapping[str, Mapping[str, Any]]) -> None:
    """Check every ``input_scale`` / ``weight_scale`` of a merged configuration
    against its module's format slot: a static scale other than ``NONE``
    needs that format set to an XP, FP or ``NVFP4(T)`` format (the formats
    that take a calibrated scale); ``ConfigError`` otherwise."""
    from ..ptq.observers import static_scale_format

    for name, slots in merged.items():
        for slot, format_slot in SCALE_SLOTS.items():
            spec = slots.get(slot)
            if spec is None or str(spec) == "NONE":
                continue
            fmt = slots.get(format_slot)
            if fmt is None or str(fmt) == "SAME":
                raise ConfigError(
                    f"{name}: {slot} = {str(spec)!r} scales the {format_slot}, which is not set; "
                    f"set {format_slot} to an XP, FP or NVFP4(T) format, or {slot} to NONE"
                )
            try:
                static_scale_format(fmt)
            except ValueError:
                raise ConfigError(
                    f"{name}: {slot} = {str(spec)!r} needs a format that takes a static scale "
                    f"(XP, FP or NVFP4(T)), but {format_slot} is {str(fmt)!r}; block formats "
                    f"carry their own scales: set {slot} to NONE"
                ) from None
            if spec.name == "MSE" and getattr(fmt, "stochastic", False):
                raise ConfigError(
                    f"{name}: {slot} = MSE needs a deterministic {format_slot}, got {str(fmt)!r}"
                )


def validate(config: Mapping[str, Any], modules: Mapping[str, tuple[str, str]]) -> None:
    """Check a parsed configuration against a model; raise ``ConfigError``.

    ``modules`` maps every configurable name to ``(class name, kind)``.
    Errors: a name not in ``modules`` (the closest names are suggested), an
    unknown slot, a slot the module's kind lacks, an ``instance`` whose
    canonical name differs from the module's, an approximation function of
    the wrong family; for each rule of a ``rules`` entry, a slot that a
    module it selects lacks. Validation changes nothing.
    """
    from .rules import ConfigRule

    for name, slots in config.items():
        if name == RULES_KEY and isinstance(slots, tuple):
            for rule in slots:
                if not isinstance(rule, ConfigRule):
                    raise ConfigError(f"rules entries must be ConfigRule, got {rule!r}")
                rule.check(modules)
            continue
        if name not in modules:
            raise ConfigError(
                f"unknown module name {name!r}; {_suggest(name, modules)}"
            )
        cls, kind = modules[name]
        _check_module(name, slots, cls, kind, name)


def to_plain(config: Mapping[str, Any]) -> dict[str, Any]:
    """The configuration with every value as its canonical shorthand string."""
    plain: dict[str, Any] = {}
    for name, slots in config.items():
        if name == RULES_KEY and isinstance(slots, tuple):
            plain[name] = [rule.to_plain() for rule in slots]
            continue
        plain[name] = {s: str(v) for s, v in slots.items()}
    return plain


def to_yaml(config: Mapping[str, Any]) -> str:
    """YAML text of a parsed configuration, values as canonical shorthands.

    ``parse_config(to_yaml(c)) == c`` for every parsed configuration ``c``.
    """
    return yaml.safe_dump(to_plain(config), sort_keys=False, default_flow_style=False)
