"""Framework-neutral configuration shared by both frontends (SPEC section 6).

* :mod:`.slots`: ``SLOTS`` (application order), ``KIND_SLOTS``,
  ``INSTANCE_NAMES``;
* :mod:`.schema`: ``parse_config`` (YAML/mapping/path -> parsed values),
  ``validate`` (against a model's ``{name: (class name, kind)}``),
  ``to_yaml`` (canonical export);
* :mod:`.rules`: ``ConfigRule`` and ``apply_rules`` (file, then rules, in
  order; a later setting of a slot wins).

A frontend does ``resolve(config_or_path, rules, modules, base)``: parse,
validate, merge; nothing changes on error.
"""

from __future__ import annotations

from typing import Any, Mapping

from .report import Report, ReportRow, audit_message, audited_slots, is_no_op, make_row, sqnr_db
from .rules import ConfigRule, apply_rules, selects_nothing, slots_of
from .schema import (
    IGNORED_KEYS, RULES_KEY, check_static_scales, is_no_op_value, parse_config, parse_slots, parse_value, to_plain,
    to_yaml, validate,
)
from .shapes import check_fits, fit_problem
from .slots import APPROXIMATION_FAMILY, FORMAT_SLOTS, INSTANCE_NAMES, KIND_SLOTS, SCALE_SLOTS, SLOTS, canonical_instance


def resolve(
    config_or_path: Any,
    rules: Any,
    modules: Mapping[str, tuple[str, str]],
    base: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, dict[str, Any]]:
    """Parse ``config_or_path``, validate it and ``rules`` against ``modules``,
    and merge them onto ``base``: ``apply_rules(parse_config(c), rules, modules, base)``.
    """
    return apply_rules(parse_config(config_or_path), rules, modules, base)


__all__ = [
    "SLOTS", "FORMAT_SLOTS", "KIND_SLOTS", "INSTANCE_NAMES", "APPROXIMATION_FAMILY",
    "RULES_KEY", "canonical_instance", "ConfigRule", "apply_rules", "slots_of",
    "parse_config", "parse_slots", "parse_value", "to_plain", "to_yaml", "validate", "resolve",
    "IGNORED_KEYS", "SCALE_SLOTS", "check_static_scales", "is_no_op_value", "selects_nothing", "check_fits", "fit_problem",
    "Report", "ReportRow", "audit_message", "audited_slots", "is_no_op", "make_row", "sqnr_db",
]
