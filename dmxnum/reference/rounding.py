"""Exact rounding of a rational ``t`` to an integer, by rounding letter.

The letters are SPEC section 3's: ``N`` nearest with ties to even, ``S``
stochastic, ``U`` toward +inf, ``D`` toward -inf, ``Z`` toward zero. With
``k0 = floor(t)`` and ``phi = t - k0`` (both exact), stochastic rounding gives
``k0 + 1`` iff ``phi > (r >> 8) * 2^-24`` for the element's uint32 word ``r``.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Callable

from ..errors import MissingRandomnessError

_HALF = Fraction(1, 2)
#: Stochastic rounding compares ``phi`` with the top 24 bits of the word.
WORD_SHIFT = 8
THRESHOLD_BITS = 24


def round_half_even(t: Fraction) -> int:
    """The integer nearest to ``t``; an exact half goes to the even integer."""
    return round_to_integer(t, "N")


def stochastic_threshold(word: int) -> Fraction:
    """``(r >> 8) * 2^-24`` for the uint32 word ``r``: a value in ``[0, 1 - 2^-24]``."""
    if not 0 <= word < 1 << 32:
        raise ValueError(f"random word {word} is not a uint32 (0 .. 2^32 - 1)")
    return Fraction(word >> WORD_SHIFT, 1 << THRESHOLD_BITS)


def round_to_integer(
    t: Fraction,
    rounding: str,
    word: int | None = None,
    tie: Callable[[int], int] | None = None,
) -> int:
    """Round the exact rational ``t`` to an integer by the letter ``rounding``.

    ``N``: nearest; when ``t = k0 + 1/2`` exactly the result is ``tie(k0)``
    if ``tie`` is given (it must return ``k0`` or ``k0 + 1``), else the even one
    of ``k0``, ``k0 + 1``. ``U``: ``ceil(t)``. ``D``: ``floor(t)``. ``Z``:
    ``floor(t)`` for ``t >= 0``, ``ceil(t)`` below. ``S``: ``floor(t) + 1`` iff
    ``t - floor(t) > (word >> 8) * 2^-24``, else ``floor(t)``; ``word`` (a uint32
    as a Python int) is required and raises ``MissingRandomnessError`` when
    ``None``. Any other letter is a ``ValueError``.
    """
    k0 = math.floor(t)
    phi = t - k0
    if rounding == "N":
        if phi < _HALF:
            return k0
        if phi > _HALF:
            return k0 + 1
        if tie is not None:
            k = tie(k0)
            if k not in (k0, k0 + 1):
                raise AssertionError(f"tie rule returned {k}, not {k0} or {k0 + 1}")
            return k
        return k0 if k0 % 2 == 0 else k0 + 1
    if rounding == "D":
        return k0
    if rounding == "U":
        return k0 if phi == 0 else k0 + 1
    if rounding == "Z":
        return k0 if t >= 0 or phi == 0 else k0 + 1
    if rounding == "S":
        if word is None:
            raise MissingRandomnessError(
                "stochastic rounding (letter S) needs one random uint32 word per element; "
                "pass random_bits"
            )
        return k0 + 1 if phi > stochastic_threshold(word) else k0
    raise ValueError(f"rounding letter {rounding!r} is not one of N, S, U, D, Z")
