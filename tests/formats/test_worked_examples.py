"""SPEC section 3 worked examples, verbatim, on every backend."""

from __future__ import annotations

import numpy as np
import pytest

import dmxnum
from dmxnum.testing.backends import BACKENDS, to_backend

INF = np.inf


def _block(values: list[float], size: int = 32) -> np.ndarray:
    out = np.zeros(size, dtype=np.float32)
    out[: len(values)] = values
    return out


CASES = [
    ("FP[1|4|3,7](_NE)", [448, 464, 465, -1e9, INF], [448, 448, 448, -448, 448]),
    ("FP[1|2|1,1](_NA)", [0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5], [0, 1, 1, 2, 2, 4, 4]),
    ("FP[1|5|10,15](_NI)", [65519.99, 65520, 2.0**-25, 1.5 * 2.0**-24], [65504, INF, 0, 2.0**-23]),
    ("FP[1|5|10,15](_N)", [65520], [65504]),
    ("FP[1|5|10,15](FN)", [2.0**-15], [0]),
    (
        "MXFP4[E2M1]{32,-1}",
        _block([6, 5, 2.5, 0.25, 0.75, 1.25, -5, -0.25]),
        _block([6, 4, 2, 0, 1, 1, -4, -0.0]),
    ),
    (
        "MXFP8[E4M3]{32,-1}",
        _block([485, 475, 400, -485, -475, -450, 2.0**-6, -(2.0**-6)]),
        _block([448, 448, 384, -448, -448, -448, 2.0**-6, -(2.0**-6)]),
    ),
    (
        "BFP[4|8]{4,-1}(SN)",
        [1.0, 0.3, -0.26, 0.1, 3.0, -0.7, 0.0, -0.0, 0.001],
        [1.0, 0.25, -0.25, 0, 3.0, -0.5, 0, -0.0, 0.0009765625],
    ),
    ("XP[4,1](CSN)", [0.25, 0.75, -5, INF], [0, 1, -3.5, 3.5]),
    ("XP[4,1](C_N)", [-5], [-4]),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shorthand,inputs,expected", CASES, ids=[c[0] for c in CASES])
def test_worked_example(backend: str, shorthand: str, inputs, expected) -> None:
    x = np.asarray(inputs, dtype=np.float32)
    want = np.asarray(expected, dtype=np.float32)
    got = np.asarray(dmxnum.cast(to_backend(x, backend), shorthand))
    assert np.array_equal(got.view(np.uint32), want.view(np.uint32)), (got, want)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan])
@pytest.mark.parametrize("shorthand", ["MXFP8[E4M3]{32,-1}", "MXFP4[E2M1]{32,-1}", "BFP[8|8]{32,-1}(SN)", "MXINT8{32,-1}"])
def test_non_finite_makes_block_nan(backend: str, bad: float, shorthand: str) -> None:
    x = np.ones(64, dtype=np.float32)
    x[40] = bad
    got = np.asarray(dmxnum.cast(to_backend(x, backend), shorthand))
    assert np.all(np.isnan(got[32:])) and np.all(got[:32] == 1)


@pytest.mark.parametrize("shorthand", ["BFP[8|8]{64,-1}(SN)", "FP[1|5|10,15](FN)", "XP[8,0](CSN)"])
def test_seed_shorthands_print_back(shorthand: str) -> None:
    assert str(dmxnum.parse(shorthand)) == shorthand
