"""The shorthand grammar and the alias table (SPEC section 3)."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

import dmxnum
from dmxnum.errors import ShorthandError
from dmxnum.formats import (
    BlockFloatingPoint, FixedPoint, FloatingPoint, MXFloat, MXInt, Same, ScaledBFP,
)
from dmxnum.formats.aliases import ALIASES
from dmxnum.formats.grammar import parse
from dmxnum.testing import FAMILIES, formats

ALL_FORMATS = formats(families=FAMILIES)


# ------------------------------------------------------------------ round trip


@pytest.mark.parametrize("text", ["BFP[8|8]{64,-1}(SN)", "FP[1|5|10,15](FN)", "XP[8,0](CSN)"])
def test_seed_shorthands_print_back_unchanged(text):
    assert str(parse(text)) == text


@given(ALL_FORMATS)
def test_round_trip(fmt):
    text = str(fmt)
    back = parse(text)
    assert back == fmt
    assert type(back) is type(fmt)
    assert hash(back) == hash(fmt)
    assert str(back) == text
    # case and surrounding whitespace do not matter on input
    assert parse(f" \t{text.lower()}\n") == fmt


def test_parse_values_of_each_family():
    assert parse("SAME") == Same()
    assert parse("XP[8,-3](C_U)") == FixedPoint(8, -3, True, False, "U")
    assert parse("FP[0|8|0,128](_ZA)") == FloatingPoint(False, 8, 0, 128, False, "Z", "A")
    assert parse("FP[1|5|10,15](FN)") == FloatingPoint(True, 5, 10, 15, True, "N", "S")
    assert parse("BFP[8|8]{64,-1}(SN)") == BlockFloatingPoint(8, 64, -1, True, "N")
    assert parse("MXINT8{32,-1}") == MXInt(8, 32, -1)
    assert parse("MXFP6[E2M3]{16,0}") == MXFloat(2, 3, 16, 0)
    assert parse("SBFP<XP[8,0](CSN)><FP[0|8|0,127](_N)>{16,-1}") == ScaledBFP(
        FixedPoint(8, 0, True, True, "N"), FloatingPoint(False, 8, 0, 127, False, "N", "S"), 16, -1
    )


@pytest.mark.parametrize(
    "text, canonical",
    [
        ("XP[+8,-2](U_Z)", "XP[8,-2](__Z)"),
        ("XP[8,+0](CAS)", "XP[8,0](C_S)"),
        ("xp[8,0](csn)", "XP[8,0](CSN)"),
        ("BFP[4|8]{4}(AN)", "BFP[4|8]{4,-1}(_N)"),
        ("BFP[4|+8]{+4,+1}(SD)", "BFP[4|8]{4,1}(SD)"),
        ("MXINT4{16}", "MXINT4{16,-1}"),
        ("mxfp4[e2m1]{32}", "MXFP4[E2M1]{32,-1}"),
        ("FP[1|5|10,15](_NS)", "FP[1|5|10,15](_N)"),
        ("FP[+1|05|010,-0](_NA)", "FP[1|5|10,0](_NA)"),
        ("  fp[1|5|10,15](fn)\n", "FP[1|5|10,15](FN)"),
        ("SBFP<INT8><FP[0|8|0,127](_N)>{16}", "SBFP<XP[8,0](CSN)><FP[0|8|0,127](_N)>{16,-1}"),
        ("sbfp<xp[4,0](c_s)><fp8_e4m3fn>{8,0}", "SBFP<XP[4,0](C_S)><FP[1|4|3,7](_NE)>{8,0}"),
        ("same", "SAME"),
    ],
)
def test_non_canonical_input(text, canonical):
    assert str(parse(text)) == canonical


def test_format_passes_through_and_top_level_export():
    fmt = FixedPoint(8, 0)
    assert parse(fmt) is fmt
    assert dmxnum.parse is parse


# ------------------------------------------------------------------ aliases

# the SPEC table, typed as shorthand strings
SPEC_ALIASES = {
    "FP32": "FP[1|8|23,127](_NI)",
    "FP16": "FP[1|5|10,15](_NI)",
    "BF16": "FP[1|8|7,127](_NI)",
    "FP8_E4M3": "FP[1|4|3,7](_NI)",
    "FP8_E4M3FN": "FP[1|4|3,7](_NE)",
    "FP8_E5M2": "FP[1|5|2,15](_NI)",
    "FP6_E3M2": "FP[1|3|2,3](_NA)",
    "FP6_E2M3": "FP[1|2|3,1](_NA)",
    "FP4_E2M1": "FP[1|2|1,1](_NA)",
    "INT8": "XP[8,0](CSN)",
    "INT4": "XP[4,0](CSN)",
    "MXINT8": "MXINT8{32,-1}",
    "MXFP8_E4M3": "MXFP8[E4M3]{32,-1}",
    "MXFP8_E5M2": "MXFP8[E5M2]{32,-1}",
    "MXFP6_E3M2": "MXFP6[E3M2]{32,-1}",
    "MXFP6_E2M3": "MXFP6[E2M3]{32,-1}",
    "MXFP4_E2M1": "MXFP4[E2M1]{32,-1}",
    "NVFP4": "NVFP4{16,-1}",
}
for _total, _n in ((16, 8), (14, 6), (12, 4)):
    for _a, _x in (("", "S"), ("A", "_")):
        for _size in (16, 32, 64, 128):
            for _where, _d in (("LD", -1), ("FD", 1)):
                SPEC_ALIASES[f"BFP{_total}{_a}_{_size}_{_where}"] = f"BFP[{_n}|8]{{{_size},{_d}}}({_x}N)"


def test_alias_table_is_exactly_the_spec_table():
    assert set(ALIASES) == set(SPEC_ALIASES)
    assert len(ALIASES) == 18 + 48


@pytest.mark.parametrize("alias", sorted(SPEC_ALIASES))
def test_alias_parses_to_its_shorthand(alias):
    expected = SPEC_ALIASES[alias]
    for spelling in (alias, alias.lower(), alias.capitalize(), f"  {alias} "):
        fmt = parse(spelling)
        assert fmt == parse(expected)
        assert str(fmt) == expected


def test_brief_examples_of_bfp_aliases():
    assert parse("BFP16_64_LD") == BlockFloatingPoint(8, 64, -1, True, "N")
    assert parse("BFP12A_32_FD") == BlockFloatingPoint(4, 32, 1, False, "N")
    assert parse("fp16") == FloatingPoint(True, 5, 10, 15, False, "N", "I")


# ------------------------------------------------------------------ errors


def _error(text) -> str:
    with pytest.raises(ShorthandError) as info:
        parse(text)
    return str(info.value)


FP_GRAMMAR = "expected FP[s|e|m,b](XY) or FP[s|e|m,b](XYZ)"
XP_GRAMMAR = "expected XP[n,f](ABR)"
BFP_GRAMMAR = "expected BFP[n|8]{b,d}(XY) or BFP[n|8]{b}(XY)"
MXFP_GRAMMAR = "expected MXFPp[EeMm]{b,d}"
SBFP_GRAMMAR = "expected SBFP<XP[n,0](CXY)><FP[s|e|m,b](XY[Z])>{b,d}"
ANY_GRAMMAR = "expected SAME; XP[n,f](ABR); FP[s|e|m,b](XY)"


@pytest.mark.parametrize(
    "text, fragments",
    [
        # unknown identifiers, with the closest valid form
        ("BPF[8|8]{64,-1}(SN)", ["unknown format identifier 'BPF'", ANY_GRAMMAR,
                                 "did you mean BFP[8|8]{64,-1}(SN)?"]),
        ("fp61", ["unknown format name or alias 'FP61'", "did you mean FP16 (= FP[1|5|10,15](_NI))?"]),
        ("FP8", ["aliases starting with FP8: FP8_E4M3, FP8_E4M3FN, FP8_E5M2"]),
        ("BFP16", ["aliases starting with BFP16", "(16 in all)"]),
        ("MXINT4", ["MXINT4 needs its parameters", "expected MXINTn{b,d}", "did you mean MXINT4{32,-1}?"]),
        ("FP", ["FP needs its parameters", FP_GRAMMAR]),
        ("FP16(FN)", ["the alias FP16 takes no parameters, found '(FN)'"]),
        ("BF16[1]", ["the alias BF16 takes no parameters"]),
        ("[8|8]", ["starts with a format name, found '['"]),
        # missing brackets / parentheses
        ("FP[1|5|10,15(FN)", ["expected ']' to close FP[s|e|m,b], found '('", "column 13", FP_GRAMMAR,
                              "did you mean FP[1|5|10,15](FN)?"]),
        ("XP[8,0](CSN", ["expected ')'", "found end of string", XP_GRAMMAR, "did you mean XP[8,0](CSN)?"]),
        ("BFP[8|8]64,-1}(SN)", ["expected '{' to open the block", BFP_GRAMMAR]),
        ("BFP[8|8]{64,-1(SN)", ["expected '}' to close the block", "did you mean BFP[8|8]{64,-1}(SN)?"]),
        ("MXFP8E4M3]{32,-1}", ["expected '[' to open the element", MXFP_GRAMMAR]),
        ("SBFP<XP[8,0](CSN)<FP[0|8|0,127](_N)>{16}", ["SBFP block format", SBFP_GRAMMAR,
                                                     "did you mean SBFP<XP[8,0](CSN)><FP[0|8|0,127](_N)>{16,-1}?"]),
        ("SBFP<XP[8,0](CSN)><FP[0|8|0,127](_N){16}", ["missing '>' to close the scaler format"]),
        # bad letters
        ("FP[1|5|10,15](FNX)", ["bad scheme letter 'X', expected one of S, I, E, A", FP_GRAMMAR]),
        ("FP[1|5|10,15](QN)", ["bad flush letter X 'Q', expected one of F, _"]),
        ("FP[1|5|10,15](F)", ["missing rounding letter Y", "expected one of N, S, U, D, Z"]),
        ("XP[8,0](XSN)", ["bad clamp letter A 'X', expected one of C, _, U", XP_GRAMMAR]),
        ("XP[8,0](CQN)", ["bad symmetry letter B 'Q', expected one of S, _, A"]),
        ("BFP[8|8]{64,-1}(CN)", ["bad symmetry letter X 'C', expected one of S, _, A", BFP_GRAMMAR]),
        ("SBFP<XP[8,0](CSX)><FP[0|8|0,127](_N)>{16}", ["in the SBFP block format <XP[8,0](CSX)>",
                                                      "bad rounding letter R 'X'", SBFP_GRAMMAR]),
        # out-of-range parameters keep the range message
        ("XP[26,0](CSN)", ["XP width n = 26 is out of range; allowed: 2..25", XP_GRAMMAR]),
        ("XP[8,150](CSN)", ["f must lie in -121..149"]),
        ("BFP[1|8]{4}(SN)", ["BFP mantissa width n = 1 is out of range; allowed: 2..24"]),
        ("BFP[8|7]{64,-1}(SN)", ["shared exponent width must be 8", "did you mean BFP[8|8]{64,-1}(SN)?"]),
        ("MXINT8{0,-1}", ["block size b = 0 is out of range; allowed: >= 1"]),
        ("FP[2|5|10,15](FN)", ["sign field s must be 0 (unsigned) or 1 (signed), got 2"]),
        ("FP[1|9|10,15](FN)", ["FP exponent bits e = 9 is out of range; allowed: 1..8"]),
        ("FP[1|5|24,15](FN)", ["FP mantissa bits m = 24 is out of range; allowed: 0..23"]),
        # a bias that leaves float32
        ("FP[1|5|10,141](_N)", ["FP bias 141 leaves float32", "the bias must lie in -97..140", FP_GRAMMAR]),
        ("FP[1|8|7,-1](_N)", ["FP bias -1 leaves float32", "largest exponent 255 must be <= 127"]),
        # MX and SBFP rules
        ("MXFP9[E4M3]{32,-1}", ["p = 9 must equal 1 + e + m = 8", MXFP_GRAMMAR,
                                "did you mean MXFP8[E4M3]{32,-1}?"]),
        ("MXFP7[E3M3]{32,-1}", ["E3M3 is not an OCP MX element; valid: E4M3, E5M2, E3M2, E2M3, E2M1"]),
        ("SBFP<XP[8,0](_SN)><FP[0|8|0,127](_N)>{16,-1}", ["SBFP block format must be a clamped XP[n,0]",
                                                         SBFP_GRAMMAR]),
        ("SBFP<XP[8,1](CSN)><FP[0|8|0,127](_N)>{16,-1}", ["SBFP block format must be a clamped XP[n,0]"]),
        ("SBFP<XP[8,0](CSN)><FP[1|5|10,15](_NI)>{16,-1}", ["SBFP scaler must be an FP format with scheme S, E or A"]),
        ("SBFP<XP[8,0](CSN)><FP[0|8|0,127](_S)>{16,-1}", ["must not round stochastically"]),
        ("SBFP<FP16><FP16>{4}", ["the SBFP block format must be an XP format"]),
        ("SBFP<FP[1|5|10,15](_N)><FP16>{4}", ["in the SBFP block format <FP[1|5|10,15](_N)>: expected an XP shorthand",
                                              SBFP_GRAMMAR]),
        ("SBFP<XP[8,0](CSN)><>{4}", ["in the SBFP scaler format <>: expected an FP shorthand, found ''"]),
        # FP special-value scheme rules
        ("FP[1|1|3,1](_N)", ["e = 1 and scheme S has no normal exponent codes", "use scheme A"]),
        ("FP[1|1|3,1](_NI)", ["e = 1 and scheme I"]),
        ("FP[1|4|0,7](_NE)", ["scheme E needs m >= 1"]),
        # empty, whitespace, junk
        ("", ["the shorthand is empty", ANY_GRAMMAR]),
        ("   ", ["the shorthand is empty"]),
        # whitespace is ignored; columns count in the text as given
        ("BFP[8|8]{64, -1}(S Q)", ["bad rounding letter Y 'Q'", "(column 20)"]),
        ("XP[8,0](CSN)x", ["unexpected trailing text 'X'", "did you mean XP[8,0](CSN)?"]),
        ("XP[99999999999999999999,0](CSN)", ["has 20 digits; at most 12 are accepted"]),
        ("FP[1|5|10,-" + "9" * 5000 + "](_N)", ["has 5000 digits"]),
        ("\u017fame", ["non-ASCII character"]),
        ("XP[8,\u0661](CSN)", ["non-ASCII character"]),
    ],
)
def test_malformed_shorthand_messages(text, fragments):
    message = _error(text)
    quoted = repr(text) if len(text) <= 300 else repr(text[:100]) + f"... ({len(text)} characters)"
    assert message.startswith(f"invalid format shorthand {quoted}: ")
    for fragment in fragments:
        assert fragment in message, (fragment, message)


@pytest.mark.parametrize("value", [None, 5, 1.5, b"FP16", ["FP16"], FloatingPoint])
def test_non_string_input(value):
    message = _error(value)
    assert "must be a string or a Format value" in message
    assert type(value).__name__ in message


def test_errors_are_value_errors():
    assert issubclass(ShorthandError, ValueError)
    with pytest.raises(ValueError):
        parse("nonsense")


# ------------------------------------------------------------------ fuzzing

_ALPHABET = "[]{}()<>|,+-_0123456789ABCDEFIMNPSUXZaefmnpsx \t\u00e9"


@st.composite
def _mutated(draw) -> str:
    """A valid shorthand (or alias) with a few random edits."""
    text = draw(st.one_of(ALL_FORMATS.map(str), st.sampled_from(sorted(ALIASES))))
    for _ in range(draw(st.integers(1, 3))):
        pos = draw(st.integers(0, len(text)))
        kind = draw(st.sampled_from(["insert", "delete", "replace", "swap", "digits", "repeat"]))
        if kind == "insert":
            text = text[:pos] + draw(st.sampled_from(_ALPHABET)) + text[pos:]
        elif kind == "delete":
            text = text[:pos] + text[pos + 1:]
        elif kind == "replace":
            text = text[:pos] + draw(st.sampled_from(_ALPHABET)) + text[pos + 1:]
        elif kind == "swap" and pos + 1 < len(text):
            text = text[:pos] + text[pos + 1] + text[pos] + text[pos + 2:]
        elif kind == "digits":
            text = text[:pos] + draw(st.sampled_from(["9" * 30, "-" + "9" * 13, "+0", "-1", "0"])) + text[pos:]
        elif kind == "repeat":
            text = text[:pos] + text[pos:] * 2
    return text


def _only_shorthand_errors(text: str) -> None:
    try:
        fmt = parse(text)
    except ShorthandError as err:
        assert repr(text)[1:40] in str(err)  # the input is quoted (long inputs shortened)
        return
    # whatever parses must round-trip
    assert parse(str(fmt)) == fmt


@given(_mutated())
def test_fuzz_mutated_shorthands(text):
    _only_shorthand_errors(text)


@given(st.text(max_size=40) | st.text(alphabet=_ALPHABET, max_size=40))
def test_fuzz_random_text(text):
    _only_shorthand_errors(text)
