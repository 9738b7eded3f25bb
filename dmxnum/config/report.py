"""What a configuration did in the last forward: the slot audit and its table.

Both frontends count, in each wrapped forward (PyTorch) or trace (Flax),
which configured slots ran. :func:`audit_message` words a slot that did not
run (emitted as :class:`~dmxnum.errors.SlotNotAppliedWarning`), and
:class:`Report` is the table ``model.dmx_report()`` returns: one row per
configured module or functional op with its slots configured, the slots
applied in the last forward, the formats, bits per element and, on request,
the output SQNR against the unconfigured model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

#: Slot values that change nothing; they are never audited.
NO_OP_VALUES = frozenset({"SAME", "NONE", "DENSE"})


def is_no_op(value: Any) -> bool:
    """True when a slot value changes nothing (``SAME``, ``NONE``, ``DENSE``)."""
    return value is None or str(value) in NO_OP_VALUES


def audited_slots(slots: Mapping[str, Any]) -> tuple[str, ...]:
    """The slots of one module's configuration that a forward must apply:
    every slot but ``instance`` whose value is not a no-op."""
    return tuple(s for s, v in slots.items() if s != "instance" and not is_no_op(v))


def audit_message(name: str, slot: str, value: Any, why: str = "") -> str:
    """The text of a :class:`~dmxnum.errors.SlotNotAppliedWarning`."""
    text = f"{name}: {slot} = {str(value)!r} is configured but was not applied in the last forward"
    return text + (f" ({why})" if why else "")


def sqnr_db(reference: Any, actual: Any) -> float:
    """Signal-to-quantization-noise ratio in dB of ``actual`` against
    ``reference``: ``10 log10(sum(ref^2) / sum((ref - actual)^2))``, computed
    in float64; ``inf`` when the two are equal, NaN when either holds a NaN
    or the reference is all zeros while ``actual`` is not."""
    ref = _as_float64(reference)
    act = _as_float64(actual)
    if ref.shape != act.shape:
        raise ValueError(f"sqnr_db: shapes differ, {ref.shape} and {act.shape}")
    noise = float(np.sum((ref - act) ** 2))
    signal = float(np.sum(ref * ref))
    if math.isnan(noise) or math.isnan(signal):
        return math.nan
    if noise == 0.0:
        return math.inf
    if signal == 0.0:
        return math.nan
    return 10.0 * math.log10(signal / noise)


def _as_float64(x: Any) -> np.ndarray:
    from .._backend import to_numpy

    return np.asarray(to_numpy(x), dtype=np.float64)


@dataclass(frozen=True)
class ReportRow:
    """One configured module or functional op.

    ``configured``: its audited slots (no-op values excluded); ``applied``:
    those that ran in the last forward; ``formats``: slot -> canonical
    shorthand for every configured slot; ``bits``: bits per element of the
    weight format (else the input format), None when neither is set;
    ``sqnr_db``: the output SQNR per call against the unconfigured model
    (empty unless the report was made with ``reference=True``); ``ptq``:
    the post-training quantization state the module holds (calibrated
    scales, SmoothQuant, GPTQ).
    """

    name: str
    instance: str
    configured: tuple[str, ...]
    applied: tuple[str, ...]
    formats: Mapping[str, str]
    bits: float | None
    sqnr_db: tuple[float, ...] = ()
    ptq: tuple[str, ...] = ()

    @property
    def missing(self) -> tuple[str, ...]:
        """Configured slots that did not run in the last forward."""
        return tuple(s for s in self.configured if s not in self.applied)


def bits_of(slots: Mapping[str, Any]) -> float | None:
    """Bits per element of ``weight_format``, else ``input_format``, else None."""
    for slot in ("weight_format", "input_format"):
        value = slots.get(slot)
        if value is not None and not is_no_op(value):
            bits = getattr(value, "bits_per_element", None)
            return float(bits) if bits is not None else None
    return None


def make_row(
    name: str, slots: Mapping[str, Any], applied: Sequence[str], sqnr: Sequence[float] = (),
    ptq: Sequence[str] = (),
) -> ReportRow:
    """The report row of module ``name`` configured with ``slots`` (``ptq``:
    notes on its post-training quantization state)."""
    configured = audited_slots(slots)
    return ReportRow(
        name=name,
        instance=str(slots.get("instance", "")),
        configured=configured,
        applied=tuple(s for s in configured if s in set(applied)),
        formats={s: str(v) for s, v in slots.items() if s != "instance"},
        bits=bits_of(slots),
        sqnr_db=tuple(sqnr),
        ptq=tuple(ptq),
    )


@dataclass(frozen=True)
class Report:
    """The table of :meth:`dmx_report`: rows in model order, a readable ``str``."""

    rows: tuple[ReportRow, ...] = field(default_factory=tuple)
    #: forwards (PyTorch) or traces (Flax) run under the current configuration
    forwards: int = 0

    def __iter__(self) -> Iterator[ReportRow]:
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, name: str) -> ReportRow:
        for row in self.rows:
            if row.name == name:
                return row
        raise KeyError(f"{name!r} is not configured; configured: {[r.name for r in self.rows]}")

    @property
    def missing(self) -> list[tuple[str, str]]:
        """``(name, slot)`` for every configured slot that did not run in the
        last forward (empty before the first forward)."""
        if not self.forwards:
            return []
        return [(r.name, s) for r in self.rows for s in r.missing]

    def __str__(self) -> str:
        if not self.rows:
            return "dmx report: nothing configured"
        head = ("module", "instance", "applied", "bits", "SQNR dB", "formats")
        lines = []
        for r in self.rows:
            applied = f"{len(r.applied)}/{len(r.configured)}" if self.forwards else "-"
            if r.missing and self.forwards:
                applied += " (missing " + ", ".join(r.missing) + ")"
            bits = "-" if r.bits is None else f"{r.bits:g}"
            sqnr = ", ".join(_db(v) for v in r.sqnr_db) if r.sqnr_db else "-"
            fmts = "; ".join(f"{s}={r.formats[s]}" for s in r.configured) or "-"
            if r.ptq:
                fmts += "  [ptq: " + ", ".join(r.ptq) + "]"
            lines.append((r.name, r.instance, applied, bits, sqnr, fmts))
        widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(head[:-1])]
        def fmt(cells: Sequence[str]) -> str:
            return "  ".join(c.ljust(w) for c, w in zip(cells[:-1], widths)) + "  " + cells[-1]
        total = sum(len(r.configured) for r in self.rows)
        ran = sum(len(r.applied) for r in self.rows)
        if self.forwards:
            title = f"dmx report: {len(self.rows)} configured, {ran}/{total} slots applied in the last forward"
        else:
            title = f"dmx report: {len(self.rows)} configured, {total} slots; no forward has run yet"
        return "\n".join([title, fmt(head), *(fmt(line) for line in lines)])


def _db(value: float) -> str:
    if math.isinf(value):
        return "inf"
    if math.isnan(value):
        return "nan"
    return f"{value:.1f}"
