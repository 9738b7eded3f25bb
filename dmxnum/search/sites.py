"""Search sites: the (module, slot) pairs a mixed-precision search assigns formats to.

A *site* is one format slot of one module (``weight_format`` of
``model.layers.0.mlp.down_proj``, ``input_format`` of the same module, ...).
Each site carries the number of elements it stores or moves, which weighs it
in the bit budget:

* a **weight site** (slot ``weight_format``) counts its parameter count;
* an **activation site** (any other format slot: ``input_format``,
  ``output_format``, ``multiplier_format``, ...) counts its elements **per
  token** (per sample for a model without tokens), i.e. the size of the
  tensor for one token. The budget therefore mixes parameters with
  per-token activation elements; a frontend that wants another weighting
  scales ``elements`` before building the table.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any, Mapping

import dmxnum
from dmxnum.config.slots import FORMAT_SLOTS


@dataclass(frozen=True)
class Site:
    """One format slot of one module.

    ``module``: the module's name in the configuration (non-empty string);
    ``slot``: a format slot (``dmxnum.config.FORMAT_SLOTS``);
    ``elements``: a positive integer, the parameter count for a weight site
    and the elements per token for an activation site (see the module doc).
    Raises ``ValueError`` (``TypeError`` for a non-integer count) otherwise.
    """

    module: str
    slot: str
    elements: int

    def __post_init__(self) -> None:
        if not isinstance(self.module, str) or not self.module:
            raise ValueError(f"Site.module must be a non-empty string, got {self.module!r}")
        if self.slot not in FORMAT_SLOTS:
            raise ValueError(
                f"Site.slot must be a format slot ({', '.join(sorted(FORMAT_SLOTS))}), got {self.slot!r}"
            )
        e = self.elements
        if isinstance(e, bool) or not isinstance(e, numbers.Integral):
            raise TypeError(f"Site.elements must be an integer, got {e!r}")
        if e <= 0:
            raise ValueError(f"Site.elements must be positive, got {e!r} for {self.module}.{self.slot}")
        object.__setattr__(self, "elements", int(e))

    @property
    def kind(self) -> str:
        """``"weight"`` for the ``weight_format`` slot, ``"activation"`` for every other slot."""
        return "weight" if self.slot == "weight_format" else "activation"

    @property
    def label(self) -> str:
        """``"module:slot"``, the site's name in tables and plots."""
        return f"{self.module}:{self.slot}"


def bits_of(fmt) -> float:
    """Storage bits per element of a format: ``dmxnum.parse(fmt).bits_per_element``.

    Block formats include their shared scale spread over the block
    (``MXFP4_E2M1`` 4.25, ``MXFP6_E2M3`` 6.25, ``MXFP8_E4M3`` 8.25,
    ``BFP16_64_LD`` 8.125). ``fmt`` is a shorthand or a parsed format;
    a malformed shorthand raises ``dmxnum``'s ``ShorthandError``.
    """
    return float(dmxnum.parse(fmt).bits_per_element)


def canonical(fmt) -> str:
    """The canonical shorthand of a format: ``str(dmxnum.parse(fmt))``."""
    return str(dmxnum.parse(fmt))


def check_pairs(sites: Any, modules: Mapping[str, tuple[str, str]], aliases: Mapping[str, str] | None = None) -> list[tuple[str, str]]:
    """``sites`` (an iterable of ``(module, slot)`` pairs) checked against a
    model's ``modules`` (name -> ``(class name, kind)``): each module exists
    (after ``aliases``, e.g. Flax's ``layers.0`` -> ``layers_0``) and its kind
    has that format slot. Returns the pairs (canonical names); ``ValueError``
    naming the bad pair and the module's slots otherwise, or when empty."""
    from ..config.rules import slots_of

    out = []
    for item in sites:
        if not (isinstance(item, (tuple, list)) and len(item) == 2):
            raise ValueError(f"a site is a (module, slot) pair, got {item!r}")
        name, slot = item
        name = (aliases or {}).get(name, name)
        if name not in modules:
            raise ValueError(f"site {tuple(item)!r}: no module {item[0]!r} in the model")
        if slot not in FORMAT_SLOTS or slot not in slots_of(modules[name][1]):
            raise ValueError(f"site {tuple(item)!r}: {name!r} ({modules[name][1]}) has no format slot {slot!r}; "
                             f"its slots: {slots_of(modules[name][1])}")
        out.append((name, slot))
    if not out:
        raise ValueError(f"sites={sites!r} selects no site")
    return out


def select_sites(sites: Any, modules: Mapping[str, tuple[str, str]], weighted: list[str], default: list[str],
                 aliases: Mapping[str, str] | None = None) -> list[tuple[str, str]]:
    """The ``(module, slot)`` pairs ``sites`` names in a model's ``modules``
    (``weighted``: its Linear/Conv names): None -> the ``weight_format`` of
    ``default``; a ``ConfigRule`` -> the ``weight_format`` of the modules it
    selects that have one; a string -> a regular expression searched in the
    ``weighted`` names; else a list of pairs (:func:`check_pairs`).
    ``ValueError`` when nothing is selected."""
    import re

    from ..config.rules import ConfigRule, slots_of

    if sites is None:
        out = [(n, "weight_format") for n in default]
    elif isinstance(sites, ConfigRule):
        out = [(n, "weight_format") for n in sites.select(modules) if "weight_format" in slots_of(modules[n][1])]
    elif isinstance(sites, str):
        pattern = re.compile(sites)
        out = [(n, "weight_format") for n in weighted if pattern.search(n)]
    else:
        return check_pairs(sites, modules, aliases)
    if not out:
        raise ValueError(f"sites={sites!r} selects no site")
    return out
