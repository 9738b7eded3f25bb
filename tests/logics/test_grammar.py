"""Logic values: parsing, canonical printing, round trip and errors."""

from __future__ import annotations

import dataclasses

import pytest
from logics_helpers import SPECS

import dmxnum
from dmxnum.errors import ShorthandError
from dmxnum.logics import NONE, Logic, parse_logic


@pytest.mark.parametrize("text", SPECS + ["NONE"])
def test_round_trip(text):
    logic = parse_logic(text)
    assert str(logic) == text
    assert parse_logic(str(logic)) == logic
    assert parse_logic(logic) is logic
    assert hash(logic) == hash(parse_logic(text))


def test_values_and_canonical_form():
    assert parse_logic(" softmax( Base2 , float16 ) ") == Logic("SOFTMAX", "base2", "float16")
    assert str(parse_logic("layernorm(FALLBACK,4,FLOAT16)")) == "LAYERNORM(fallback,4,float16)"
    assert parse_logic("none") is NONE
    assert parse_logic("GELU(ibert)") == Logic("GELU", "ibert")
    assert Logic("LAYERNORM", "quake3", "float32").norm is None
    assert dmxnum.parse_logic is parse_logic
    with pytest.raises(dataclasses.FrozenInstanceError):
        NONE.op = "SOFTMAX"  # type: ignore[misc]


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("SOFTMAX(cubic,float16)", "unknown SOFTMAX algorithm 'cubic'; valid: poly2, base2, base2quake3, ibert"),
        ("SOFTMAX(poly2,float64)", "number format 'float64' is not accepted by SOFTMAX(poly2); valid: int, float32"),
        ("SOFTMAX(base2quake3,float32)", "valid: float16"),
        ("GELU(poly2,bfloat16)", "valid: float16"),
        ("LAYERNORM(quake3,_,bfloat16)", "valid: float16, float32"),
        ("LAYERNORM(legacy,_,int)", "valid: float32, float16, bfloat16"),
        ("RSQRT(quake3,bfloat16)", "valid: float16, float32"),
        ("RECIP(quake3,float32)", "valid: float16"),
        ("LAYERNORM(fallback,x,float16)", "NORM 'x' is not an integer; valid: 0..15"),
        ("LAYERNORM(fallback,16,float16)", "0..15"),
        ("LAYERNORM(fallback,_,float16)", "NORM '_' is not an integer"),
        ("LAYERNORM(legacy,4,float16)", "takes '_' as its second argument"),
        ("LAYERNORM(legacy,float16)", "takes 3 arguments"),
        ("SOFTMAX(poly2)", "takes 2 arguments"),
        ("SOFTMAX(ibert,float16)", "SOFTMAX(ibert) takes no further arguments"),
        ("TANH(poly2,float16)", "unknown operation 'TANH'; valid: NONE, SOFTMAX, GELU, LAYERNORM, EXP, RECIP, RSQRT"),
        ("SOFTMAX poly2", "expected OP(args...) or NONE"),
        ("", "expected OP(args...) or NONE"),
    ],
)
def test_errors_name_the_bad_part(text, fragment):
    with pytest.raises(ShorthandError) as info:
        parse_logic(text)
    message = str(info.value)
    assert fragment in message
    assert repr(text) in message
    assert "grammar:" in message


def test_direct_construction_is_validated():
    with pytest.raises(ShorthandError, match="valid: float16"):
        Logic("GELU", "poly2", "float32")
    with pytest.raises(ShorthandError, match="0..15"):
        Logic("LAYERNORM", "fallback", "float16", norm=-1)
    with pytest.raises(ShorthandError, match="NONE takes no arguments"):
        Logic("NONE", "poly2")


def test_parse_rejects_other_types():
    with pytest.raises(TypeError, match="int"):
        parse_logic(3)  # type: ignore[arg-type]
