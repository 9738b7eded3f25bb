"""Each logic stays within the error bounds documented in docs/logics.md."""

from __future__ import annotations

from pathlib import Path

import pytest
from logics_helpers import SPECS

from dmxnum.logics.accuracy import DOCUMENTED_BOUNDS, measure

DOC = Path(__file__).resolve().parents[2] / "docs" / "logics.md"


@pytest.mark.parametrize("spec", SPECS)
def test_within_documented_bound(spec):
    grid_abs, grid_rel, real_abs, real_rel = DOCUMENTED_BOUNDS[spec]
    m = measure(spec)
    assert m["grid"][0] <= grid_abs and m["grid"][1] <= grid_rel, (spec, m["grid"])
    assert m["realistic"][0] <= real_abs and m["realistic"][1] <= real_rel, (spec, m["realistic"])


def test_every_logic_has_a_documented_bound_in_the_doc():
    doc = DOC.read_text()
    assert set(DOCUMENTED_BOUNDS) == set(SPECS)
    for spec, b in DOCUMENTED_BOUNDS.items():
        assert f"| `{spec}` |" in doc
        assert f"{b[0]:.2g} / {b[1]:.2g}; {b[2]:.2g} / {b[3]:.2g}" in doc, spec
