"""Sparseness values: canonical printing, parsing, round trips and errors."""

from __future__ import annotations

import pytest
from hypothesis import given

from dmxnum.errors import FormatParameterError, ShorthandError
from dmxnum.reference.sparsity import kept_count as ref_kept_count
from dmxnum.sparsity import Bernoulli, BlockTopK, Dense, TopK, parse_sparseness
from dmxnum.testing.sparsity_strategies import sparsities


@pytest.mark.parametrize(
    "value, text",
    [
        (Dense(), "DENSE"),
        (Bernoulli(), "BERN"),
        (TopK(0.5, "U"), "TOPK{0.5}(U)"),
        (TopK(1.0, "M"), "TOPK{1}(M)"),
        (TopK(0, "M"), "TOPK{0}(M)"),
        (TopK(1e-5), "TOPK{0.00001}(U)"),
        (TopK(0.1), "TOPK{0.1}(U)"),
        (BlockTopK(2, 4, -1, "U"), "BTOPK{2:4,-1}(U)"),
        (BlockTopK(4, 8, 0, "M"), "BTOPK{4:8,0}(M)"),
        (BlockTopK(0, 1, 2, "M"), "BTOPK{0:1,2}(M)"),
    ],
)
def test_canonical_print_and_parse(value, text):
    assert str(value) == text
    assert parse_sparseness(text) == value
    assert parse_sparseness(value) is value


@pytest.mark.parametrize(
    "text, value",
    [
        ("dense", Dense()),
        (" Bern ", Bernoulli()),
        ("topk{.25}(m)", TopK(0.25, "M")),
        ("TOPK{0.50}(U)", TopK(0.5, "U")),
        ("TOPK{1e-1}(U)", TopK(0.1, "U")),
        ("btopk{ 2 : 4 , -1 }( u )", BlockTopK(2, 4, -1, "U")),
    ],
)
def test_lenient_input_parses_to_canonical(text, value):
    assert parse_sparseness(text) == value


@given(sparsities())
def test_round_trip(spec):
    assert parse_sparseness(str(spec)) == spec
    assert str(parse_sparseness(str(spec))) == str(spec)
    assert hash(parse_sparseness(str(spec))) == hash(spec)


def test_defaults_and_properties():
    assert TopK(0.5) == TopK(0.5, "U")
    assert BlockTopK(2, 4) == BlockTopK(2, 4, -1, "U")
    assert BlockTopK(2, 4).density == 0.5
    assert Bernoulli().stochastic and Bernoulli().needs_scores and Bernoulli().grad == "M"
    assert not BlockTopK(2, 4).stochastic
    assert Dense().grad == "U"


@pytest.mark.parametrize(
    "density, numel, kept",
    [(0.5, 5, 2), (0.5, 7, 4), (0.35, 10, 4), (0.25, 10, 2), (0.75, 10, 8), (0.1, 15, 2), (1.0, 3, 3), (0.0, 9, 0), (0.3, 5, 2)],
)
def test_kept_count_is_round_half_even_of_the_decimal(density, numel, kept):
    assert TopK(density).kept(numel) == kept
    assert ref_kept_count(TopK(density), numel) == kept


@pytest.mark.parametrize(
    "text, fragment, suggestion",
    [
        ("BTOPK{2:4}(U)", "BTOPK", "BTOPK{2:4,-1}(U)"),
        ("BTOPK{2,4,-1}(U)", "BTOPK", "BTOPK{2:4,-1}(U)"),
        ("BTOPK{2:4,-1}(X)", "gradient mode 'X'", "BTOPK{2:4,-1}(U)"),
        ("TOPK(0.5)", "TOPK", "TOPK{0.5}(U)"),
        ("TOPK{abc}(U)", "TOPK", "TOPK{0.5}(U)"),
        ("TOPK{0.5}", "TOPK", "TOPK{0.5}(U)"),
        ("SPARSE", "unknown sparseness keyword", None),
        ("", "unknown sparseness keyword", None),
        ("DENSE(U)", "unknown sparseness keyword", "DENSE"),
    ],
)
def test_malformed_shorthand_errors(text, fragment, suggestion):
    with pytest.raises(ShorthandError) as err:
        parse_sparseness(text)
    msg = str(err.value)
    assert repr(text) in msg and fragment in msg and "BTOPK{K:M,d}(G)" in msg
    if suggestion:
        assert f"did you mean {suggestion!r}" in msg


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("BTOPK{5:4,-1}(U)", "K = 5"),
        ("BTOPK{-1:4,-1}(U)", "K = -1"),
        ("BTOPK{0:0,-1}(U)", "M = 0"),
        ("TOPK{1.5}(U)", "1.5"),
        ("TOPK{2}(M)", "2.0"),
    ],
)
def test_out_of_range_parameters_name_the_value(text, fragment):
    with pytest.raises(FormatParameterError) as err:
        parse_sparseness(text)
    assert fragment in str(err.value) and repr(text) in str(err.value)


@pytest.mark.parametrize(
    "make, fragment",
    [
        (lambda: TopK(-0.1), "-0.1"),
        (lambda: TopK(float("nan")), "nan"),
        (lambda: TopK(0.5, "S"), "'S'"),
        (lambda: BlockTopK(3, 2), "K = 3"),
        (lambda: BlockTopK(1, 0), "M = 0"),
        (lambda: BlockTopK(1.5, 4), "1.5"),
        (lambda: BlockTopK(1, 4, 0.5), "0.5"),
        (lambda: BlockTopK(True, 4), "True"),
    ],
)
def test_constructor_errors(make, fragment):
    with pytest.raises(FormatParameterError) as err:
        make()
    assert fragment in str(err.value)


def test_parse_rejects_non_strings():
    with pytest.raises(TypeError):
        parse_sparseness(0.5)
