"""Deterministic float32 samples and bit-exact comparison for the reference tests."""

from __future__ import annotations

import numpy as np

F32 = np.float32
TINY = np.float32(2.0**-149)
MAX32 = np.finfo(np.float32).max


def edge_values() -> np.ndarray:
    """±0, ±Inf, NaN, the float32 subnormal/normal boundaries, the largest values, 1, 1/3."""
    base = [
        0.0, np.inf, np.nan, 2.0**-149, 2.0**-148, 3 * 2.0**-149, 2.0**-126 - 2.0**-149,
        2.0**-126, 2.0**-126 + 2.0**-149, 1.0, 1.0 / 3, 1.5, 2.0, float(MAX32), 2.0**127,
    ]
    vals = np.array(base, dtype=np.float32)
    return np.concatenate([vals, -vals])


def random_bit_patterns(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` float32 values with uniformly random bit patterns (all classes, NaN included)."""
    return rng.integers(0, 2**32, n, dtype=np.uint32).view(np.float32)


def near_grid(rng: np.random.Generator, emin: int, emax: int, man_bits: int, n: int) -> np.ndarray:
    """Values on, halfway between and one float32 ulp either side of the points of a grid.

    The grid is ``k * 2^(e - man_bits)`` for exponents ``e`` in ``emin - 3 .. emax + 2``
    (so subnormals, the largest binade and overflow are all hit) and
    ``0 <= k < 2^(man_bits + 1)``; half of the points are exact ties.
    """
    e = rng.integers(max(emin - 3, -149 + man_bits + 1), min(emax + 2, 127) + 1, n)
    k = rng.integers(0, 2 ** (man_bits + 2), n)  # k / 2: grid points and halves
    vals = np.ldexp(k.astype(np.float64), (e - man_bits - 1).astype(np.int64)).astype(np.float32)
    vals = vals * rng.choice(np.array([-1.0, 1.0], dtype=np.float32), n)
    up = np.nextafter(vals, np.float32(np.inf))
    down = np.nextafter(vals, np.float32(-np.inf))
    return np.concatenate([vals, up, down])


def sample(rng: np.random.Generator, emin: int, emax: int, man_bits: int, n: int = 600) -> np.ndarray:
    """Edge values + random bit patterns + grid-targeted values (about ``4 n`` in all)."""
    return np.concatenate(
        [edge_values(), random_bit_patterns(rng, n), near_grid(rng, emin, emax, man_bits, n)]
    )


def same_bits(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Elementwise: identical float32 bit patterns, or both NaN."""
    a = np.asarray(a, dtype=np.float32)
    b = np.asarray(b, dtype=np.float32)
    return (a.view(np.uint32) == b.view(np.uint32)) | (np.isnan(a) & np.isnan(b))


def assert_same_bits(actual: np.ndarray, expected: np.ndarray, x: np.ndarray | None = None) -> None:
    """Fail with the first few mismatching elements (input, actual, expected) shown."""
    ok = same_bits(actual, expected)
    if not ok.all():
        idx = np.flatnonzero(~ok.ravel())[:8]
        rows = []
        for i in idx:
            xi = "" if x is None else f"x={np.asarray(x).ravel()[i]!r} "
            rows.append(f"  [{i}] {xi}got {np.asarray(actual).ravel()[i]!r} want {np.asarray(expected).ravel()[i]!r}")
        raise AssertionError(f"{(~ok).sum()} of {ok.size} elements differ:\n" + "\n".join(rows))
