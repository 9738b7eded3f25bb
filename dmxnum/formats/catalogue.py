"""The format catalogue: every alias with its canonical shorthand and limits.

``catalogue()`` returns one :class:`FormatInfo` row per alias (and the
two-level ``NVFP4(T)``); ``fmt.describe()`` returns the row of one format;
``python -m dmxnum.formats`` prints the table.
"""

from __future__ import annotations

from typing import NamedTuple

from .aliases import ALIASES
from .base import Format


class FormatInfo(NamedTuple):
    """One catalogue row. ``name`` is the alias (``None`` for a format that
    has none); the limits are ``None`` where not meaningful (``SAME``)."""

    name: str | None
    shorthand: str
    bits_per_element: float | None
    max_value: float | None
    min_positive: float | None

    def __str__(self) -> str:
        return "  ".join(_cells(self))


#: extra names listed with the aliases: forms an alias takes with a suffix
_SUFFIXED = ("NVFP4(T)",)


def alias_of(fmt: Format) -> str | None:
    """The first alias (in table order) whose value equals ``fmt``, else ``None``."""
    return next((name for name, value in ALIASES.items() if value == fmt), None)


def describe(fmt: Format, name: str | None = None) -> FormatInfo:
    """The catalogue row of ``fmt`` (``name`` defaults to its alias, if any)."""
    return FormatInfo(name if name is not None else alias_of(fmt), str(fmt), fmt.bits_per_element,
                      fmt.max_value, fmt.min_positive)


def catalogue() -> list[FormatInfo]:
    """Every alias (and ``NVFP4(T)``) with its canonical shorthand, bits per
    element (amortized shared bits included), largest finite value and
    smallest positive value, in the alias table's order."""
    from .grammar import parse

    rows = [describe(fmt, name) for name, fmt in ALIASES.items()]
    rows += [describe(parse(name), name) for name in _SUFFIXED]
    return rows


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    if float(value).is_integer() and abs(value) < 1e6:
        return str(int(value))
    return f"{value:.6g}"


def _cells(row: FormatInfo) -> tuple[str, ...]:
    return (row.name or "-", row.shorthand, _number(row.bits_per_element), _number(row.max_value),
            _number(row.min_positive))


def catalogue_table(rows: list[FormatInfo] | None = None) -> str:
    """The catalogue as a Markdown table (what ``python -m dmxnum.formats`` prints)."""
    rows = catalogue() if rows is None else rows
    header = ("alias", "shorthand", "bits/element", "max value", "min positive")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in _cells(row)) + " |" for row in rows]
    return "\n".join(lines)
