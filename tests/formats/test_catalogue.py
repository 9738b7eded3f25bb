"""The format catalogue (SPEC section 3, "Packing, static scales and the
catalogue"), the new shorthands of NVFP4 and the MX scale modes, and their
properties."""

from __future__ import annotations

import subprocess
import sys

import pytest

import dmxnum
from dmxnum.errors import ShorthandError
from dmxnum.formats import NVFP4, FormatInfo, MXFloat, catalogue
from dmxnum.formats.aliases import ALIASES
from dmxnum.formats.catalogue import catalogue_table


@pytest.mark.parametrize(
    "text, canonical",
    [
        ("NVFP4", "NVFP4{16,-1}"),
        ("nvfp4(t)", "NVFP4{16,-1}(T)"),
        ("NVFP4{32}", "NVFP4{32,-1}"),
        ("NVFP4{ 1 , 0 }(T)", "NVFP4{1,0}(T)"),
        ("MXFP4_E2M1(R)", "MXFP4[E2M1]{32,-1}(R)"),
        ("mxfp8_e4m3(c)", "MXFP8[E4M3]{32,-1}(C)"),
        ("MXFP6[E3M2]{16}(E)", "MXFP6[E3M2]{16,-1}(E)"),
        ("MXFP4[E2M1]{16,-1}(F)", "MXFP4[E2M1]{16,-1}"),
        ("MXFP8_E5M2(F)", "MXFP8[E5M2]{32,-1}"),
    ],
)
def test_new_shorthands_parse_and_print_canonically(text, canonical):
    fmt = dmxnum.parse(text)
    assert str(fmt) == canonical
    assert dmxnum.parse(canonical) == fmt


def test_scale_mode_and_level_fields():
    assert dmxnum.parse("MXFP4_E2M1(R)") == MXFloat(2, 1, 32, -1, "R")
    assert dmxnum.parse("MXFP4_E2M1(R)").scale_mode_name == "RCEIL"
    assert dmxnum.parse("MXFP4_E2M1") == MXFloat(2, 1, 32, -1, "F")
    assert dmxnum.parse("NVFP4(T)") == NVFP4(16, -1, True)
    assert dmxnum.parse("NVFP4") != dmxnum.parse("NVFP4(T)")


@pytest.mark.parametrize(
    "text, fragments",
    [
        ("NVFP8", ["'NVFP8'", "NVFP4"]),
        ("NVFP4(X)", ["'X'", "T two level"]),
        ("NVFP4{16,-1}(T", ["')'", "NVFP4{16,-1}(T)"]),
        ("MXFP4_E2M1(Q)", ["'Q'", "C CEIL", "R RCEIL"]),
        ("MXFP4[E2M1]{32,-1}(T)", ["'T'", "E EVEN"]),
        ("NVFP4{0,-1}", ["block size b = 0", ">= 1"]),
    ],
)
def test_new_shorthand_errors_name_the_problem(text, fragments):
    with pytest.raises(ShorthandError) as info:
        dmxnum.parse(text)
    for fragment in fragments:
        assert fragment in str(info.value)


@pytest.mark.parametrize(
    "text, bits, top, smallest",
    [
        ("NVFP4", 4.5, 2688.0, 2.0**-7),
        ("NVFP4{32,-1}(T)", 4.25, 2688.0, 2.0**-7),
        ("NVFP4{1,0}", 12.0, 2688.0, 2.0**-7),
        ("MXFP4[E2M1]{16,-1}(R)", 4.5, 6 * 2.0**127, 2.0**-128),
    ],
)
def test_properties(text, bits, top, smallest):
    fmt = dmxnum.parse(text)
    assert (fmt.bits_per_element, fmt.max_value, fmt.min_positive) == (bits, top, smallest)


def test_catalogue_lists_every_alias_with_its_limits():
    rows = catalogue()
    assert all(isinstance(row, FormatInfo) for row in rows)
    names = [row.name for row in rows]
    assert names[: len(ALIASES)] == list(ALIASES) and "NVFP4(T)" in names
    for row in rows:
        fmt = dmxnum.parse(row.name)
        assert row == (row.name, str(fmt), fmt.bits_per_element, fmt.max_value, fmt.min_positive)
    by_name = {row.name: row for row in rows}
    assert by_name["NVFP4"] == ("NVFP4", "NVFP4{16,-1}", 4.5, 2688.0, 2.0**-7)
    assert by_name["FP8_E4M3FN"] == ("FP8_E4M3FN", "FP[1|4|3,7](_NE)", 8, 448.0, 2.0**-9)
    assert by_name["INT4"] == ("INT4", "XP[4,0](CSN)", 4, 7.0, 1.0)
    assert by_name["MXFP4_E2M1"][2] == 4.25


def test_describe_gives_one_row_and_never_raises():
    assert dmxnum.parse("fp16").describe() == ("FP16", "FP[1|5|10,15](_NI)", 16, 65504.0, 2.0**-24)
    assert dmxnum.parse("XP[8,3](CSN)").describe() == (None, "XP[8,3](CSN)", 8, 127 / 8, 1 / 8)
    assert dmxnum.parse("SAME").describe() == (None, "SAME", None, None, None)
    assert str(dmxnum.parse("NVFP4").describe()) == "NVFP4  NVFP4{16,-1}  4.5  2688  0.0078125"


def test_python_m_dmxnum_formats_prints_the_table():
    out = subprocess.run([sys.executable, "-m", "dmxnum.formats"], capture_output=True, text=True, check=True).stdout
    assert out.strip() == catalogue_table()
    lines = out.strip().splitlines()
    assert lines[0] == "| alias | shorthand | bits/element | max value | min positive |"
    assert "| NVFP4(T) | NVFP4{16,-1}(T) | 4.5 | 2688 | 0.0078125 |" in lines
    assert "| FP4_E2M1 | FP[1\\|2\\|1,1](_NA) | 4 | 6 | 0.5 |" in lines
    assert len(lines) == 2 + len(ALIASES) + 1
