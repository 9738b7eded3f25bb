"""Generate the accuracy table of docs/logics.md (max abs / rel error of each logic).

Usage: ``python benchmarks/logics_accuracy.py [--write] [--bounds]``.
Prints a Markdown table; ``--write`` replaces the table between the
``<!-- accuracy:begin -->`` / ``<!-- accuracy:end -->`` markers of
docs/logics.md; ``--bounds`` prints suggested bounds (1.25x measured, two
significant digits, rounded up) for ``dmxnum.logics.accuracy.DOCUMENTED_BOUNDS``.
The inputs and the exact float64 functions are ``dmxnum.logics.accuracy``'s.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

from dmxnum.logics.grammar import all_specs
from dmxnum.logics.accuracy import DOCUMENTED_BOUNDS, REL_FLOOR, measure

DOC = Path(__file__).resolve().parents[1] / "docs" / "logics.md"
BEGIN, END = "<!-- accuracy:begin -->", "<!-- accuracy:end -->"


def bound(v: float) -> float:
    if v == 0 or not math.isfinite(v):
        return v
    v *= 1.25
    e = math.floor(math.log10(v)) - 1
    return math.ceil(v / 10**e) * 10**e


def table() -> tuple[str, dict]:
    rows = [
        "| logic | grid max abs | grid max rel | realistic max abs | realistic max rel | documented bound (abs / rel, grid; realistic) |",
        "|---|---|---|---|---|---|",
    ]
    results = {}
    for s in all_specs():
        m = measure(s)
        results[s] = m
        b = DOCUMENTED_BOUNDS.get(s)
        bt = f"{b[0]:.2g} / {b[1]:.2g}; {b[2]:.2g} / {b[3]:.2g}" if b else "-"
        rows.append(
            f"| `{s}` | {m['grid'][0]:.3g} | {m['grid'][1]:.3g} | {m['realistic'][0]:.3g} | {m['realistic'][1]:.3g} | {bt} |"
        )
    note = (
        f"\nRelative error is taken over elements whose exact value is at least {REL_FLOOR:g} in magnitude.\n"
    )
    return "\n".join(rows) + "\n" + note, results


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    text, results = table()
    print(text)
    if "--bounds" in argv:
        for s, m in results.items():
            vals = (bound(m["grid"][0]), bound(m["grid"][1]), bound(m["realistic"][0]), bound(m["realistic"][1]))
            print(f'    "{s}": ({vals[0]:.2g}, {vals[1]:.2g}, {vals[2]:.2g}, {vals[3]:.2g}),')
    if "--write" in argv:
        doc = DOC.read_text()
        start, stop = doc.index(BEGIN) + len(BEGIN), doc.index(END)
        DOC.write_text(doc[:start] + "\n" + text + doc[stop:])
        print(f"wrote {DOC}")


if __name__ == "__main__":
    main()
